"""PNG text chunks (atomic write, tEXt/zTXt/iTXt read), PNG loading via load_any, A1111 parameters."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.formats import FormatError, load_any
from engine.formats.a1111 import parse_parameters
from engine.formats.a1111 import to_prompt as a1111_prompt
from engine.formats.native import from_prompt
from engine.formats.png import read_png_chunks, read_png_text, write_png
from tests.test_formats_native import TXT2IMG, make_registry

FIXTURES = Path(__file__).parent / "fixtures" / "comfy_ui"


@pytest.fixture(scope="module")
def reg():
    return make_registry()


def _image() -> Image.Image:
    img = Image.new("RGB", (8, 6), (10, 200, 30))
    img.putpixel((1, 2), (255, 0, 0))
    return img


def test_write_read_round_trip_with_utf8(tmp_path):
    text = {"prompt": json.dumps(TXT2IMG), "workflow": '{"title": "Café — 日本語 ✓"}', "latin": "naïve"}
    path = write_png(tmp_path / "out.png", _image(), text)
    assert read_png_text(path) == text
    assert read_png_chunks(path.read_bytes()) == text
    with Image.open(path) as im:
        assert im.size == (8, 6) and im.getpixel((1, 2)) == (255, 0, 0)
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no temp file left behind


def test_write_replaces_atomically_and_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "x.png"
    write_png(path, _image(), {"prompt": "first"})
    write_png(path, _image(), {"prompt": "second"})
    assert read_png_text(path) == {"prompt": "second"}

    class Broken:
        def save(self, *a, **k):
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_png(path, Broken(), {"prompt": "third"})
    assert read_png_text(path) == {"prompt": "second"}
    assert sorted(os.listdir(tmp_path)) == ["x.png"]


def test_failure_after_the_temp_file_exists_leaves_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "y.png"
    write_png(path, _image(), {"prompt": "old"})

    def no_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="I/O error"):
        write_png(path, _image(), {"prompt": "new"})
    monkeypatch.undo()
    assert read_png_text(path) == {"prompt": "old"}
    assert sorted(os.listdir(tmp_path)) == ["y.png"]


def test_reads_ztxt_and_compressed_itxt():
    info = PngInfo()
    info.add_text("parameters", "a cat\nSteps: 5", zip=True)  # zTXt
    info.add_itxt("workflow", "ünïcödé " * 20, lang="en", tkey="wf", zip=True)  # compressed iTXt
    buf = io.BytesIO()
    _image().save(buf, format="PNG", pnginfo=info)
    data = buf.getvalue()
    assert b"zTXt" in data and b"iTXt" in data
    assert read_png_text(data) == {"parameters": "a cat\nSteps: 5", "workflow": "ünïcödé " * 20}


def test_not_png_and_truncated_png(tmp_path):
    with pytest.raises(ValueError):
        read_png_text(b"GIF89a....")
    data = (tmp_path / "t.png")
    write_png(data, _image(), {"prompt": "{}"})
    raw = data.read_bytes()
    assert read_png_text(raw[: len(raw) - 20]) == {"prompt": "{}"}  # IEND and part of IDAT cut off


def test_load_any_png_prefers_the_prompt_chunk_and_returns_the_workflow(reg, tmp_path):
    workflow = json.loads((FIXTURES / "txt2img_basic.json").read_text())
    path = write_png(tmp_path / "a.png", _image(), {"prompt": json.dumps(TXT2IMG),
                                                   "workflow": json.dumps(workflow)})
    loaded = load_any(path, registry=reg)
    assert loaded.kind == "png" and loaded.prompt == TXT2IMG and loaded.workflow == workflow
    assert load_any(path.read_bytes(), registry=reg).prompt == TXT2IMG


def test_load_any_png_with_only_a_workflow_converts_it(reg, tmp_path):
    workflow = json.loads((FIXTURES / "muted_bypassed.json").read_text())
    expected = json.loads((FIXTURES / "muted_bypassed.api.json").read_text())
    path = write_png(tmp_path / "b.png", _image(), {"workflow": json.dumps(workflow)})
    loaded = load_any(path, registry=reg)
    assert loaded.kind == "png" and loaded.prompt == expected
    doc = from_prompt(TXT2IMG, reg)
    path2 = write_png(tmp_path / "c.png", _image(), {"workflow": json.dumps(doc)})
    native = load_any(path2, registry=reg)
    assert native.prompt == TXT2IMG and native.workflow == doc


def test_load_any_png_without_workflow_chunks(reg, tmp_path):
    path = write_png(tmp_path / "d.png", _image(), {"Software": "GIMP"})
    with pytest.raises(FormatError):
        load_any(path, registry=reg)


A1111_TEXT = """masterpiece, a lighthouse on a cliff,
stormy sea, (dramatic lighting:1.2)
Negative prompt: lowres, blurry,
watermark
Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 3141592653, Size: 640x896, Model hash: 6ce0161689, \
Model: realisticVision_v51, Clip skip: 2, Lora hashes: "detail: 1a2b, style: 3c4d", Version: v1.7.0"""


def test_a1111_parameters_parse():
    p = parse_parameters(A1111_TEXT)
    assert p.prompt == "masterpiece, a lighthouse on a cliff,\nstormy sea, (dramatic lighting:1.2)"
    assert p.negative == "lowres, blurry,\nwatermark"
    assert (p.steps, p.sampler, p.scheduler, p.cfg, p.seed) == (28, "dpmpp_2m", "karras", 6.5, 3141592653)
    assert (p.width, p.height, p.model, p.clip_skip) == (640, 896, "realisticVision_v51", 2)
    assert p.extra["Lora hashes"] == "detail: 1a2b, style: 3c4d" and p.extra["Version"] == "v1.7.0"
    assert any("Lora hashes" in w for w in p.warnings)


@pytest.mark.parametrize("label,schedule,expected", [
    ("Euler a", None, ("euler_ancestral", "normal")),
    ("Euler", None, ("euler", "normal")),
    ("DPM++ 2M Karras", None, ("dpmpp_2m", "karras")),
    ("DPM++ SDE Karras", None, ("dpmpp_sde", "karras")),
    ("DPM++ 2M SDE Exponential", None, ("dpmpp_2m_sde", "exponential")),
    ("DPM2 a", None, ("dpm_2_ancestral", "normal")),
    ("DDIM", None, ("ddim", "normal")),
    ("UniPC", None, ("uni_pc", "normal")),
    ("DPM++ 2M", "Karras", ("dpmpp_2m", "karras")),
    ("Euler a", "SGM Uniform", ("euler_ancestral", "sgm_uniform")),
    ("LMS", "Automatic", ("lms", "normal")),
])
def test_a1111_sampler_names(label, schedule, expected):
    line = f"Steps: 20, Sampler: {label}" + (f", Schedule type: {schedule}" if schedule else "")
    p = parse_parameters(f"x\n{line}")
    assert (p.sampler, p.scheduler) == expected and p.warnings == []


def test_a1111_defaults_and_unknown_sampler():
    p = parse_parameters("just a prompt")
    assert (p.prompt, p.negative, p.steps, p.width, p.model) == ("just a prompt", "", 20, 512, None)
    q = parse_parameters("x\nSteps: 10, Sampler: Mystery Sampler, Seed: abc")
    assert q.sampler == "euler" and q.seed == 0 and len(q.warnings) == 2


def test_a1111_to_txt2img_prompt():
    prompt = a1111_prompt(A1111_TEXT)
    assert {n["class_type"] for n in prompt.values()} == {
        "CheckpointLoaderSimple", "CLIPSetLastLayer", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
        "VAEDecode", "SaveImage"}
    assert prompt["4"]["inputs"] == {"ckpt_name": "realisticVision_v51.safetensors"}
    assert prompt["10"]["inputs"] == {"stop_at_clip_layer": -2, "clip": ["4", 1]}
    assert prompt["6"]["inputs"]["clip"] == ["10", 0] and prompt["7"]["inputs"]["text"] == "lowres, blurry,\nwatermark"
    assert prompt["5"]["inputs"] == {"width": 640, "height": 896, "batch_size": 1}
    ks = prompt["3"]["inputs"]
    assert (ks["seed"], ks["steps"], ks["cfg"], ks["sampler_name"], ks["scheduler"]) == (
        3141592653, 28, 6.5, "dpmpp_2m", "karras")
    assert ks["positive"] == ["6", 0] and ks["negative"] == ["7", 0] and ks["latent_image"] == ["5", 0]
    plain = a1111_prompt("a dog\nSteps: 4, Sampler: Euler, Size: 64x64, Model: tiny_sd1.safetensors")
    assert "10" not in plain and plain["6"]["inputs"]["clip"] == ["4", 1]
    assert plain["4"]["inputs"]["ckpt_name"] == "tiny_sd1.safetensors"


def test_load_any_a1111_png_and_text(reg, tmp_path):
    path = write_png(tmp_path / "a1111.png", _image(), {"parameters": A1111_TEXT})
    loaded = load_any(path, registry=reg)
    assert loaded.kind == "a1111" and loaded.prompt == a1111_prompt(A1111_TEXT) and loaded.workflow is None
    assert loaded.warnings
    txt = tmp_path / "params.txt"
    txt.write_text(A1111_TEXT, encoding="utf-8")
    assert load_any(txt, registry=reg).kind == "a1111"


def test_a1111_model_name_finds_the_listed_checkpoint():
    text = "x\nSteps: 4, Model: RealisticVision_v51"
    files = ["sd15/realisticVision_v51.ckpt", "sdxl/base.safetensors"]
    assert a1111_prompt(text, files)["4"]["inputs"]["ckpt_name"] == "sd15/realisticVision_v51.ckpt"
    assert a1111_prompt(text, ["other.safetensors"])["4"]["inputs"]["ckpt_name"] == "RealisticVision_v51.safetensors"
    assert a1111_prompt("x\nSteps: 4")["4"]["inputs"] == {}


def test_png_native_workflow_is_migrated_and_a_future_one_only_warns(reg, tmp_path):
    v0 = {"format": "latentgraph", "version": 0, "links": [],
          "nodes": [{"id": 5, "type": "EmptyLatentImage", "widgets_values": [64, 64, 1]}]}
    path = write_png(tmp_path / "m.png", _image(), {"prompt": json.dumps(TXT2IMG), "workflow": json.dumps(v0)})
    loaded = load_any(path, registry=reg)
    assert loaded.workflow["version"] == 1 and loaded.workflow["nodes"][0]["widgets"]["height"] == 64
    future = dict(v0, version=7)
    path2 = write_png(tmp_path / "f.png", _image(), {"prompt": json.dumps(TXT2IMG), "workflow": json.dumps(future)})
    loaded2 = load_any(path2, registry=reg)
    assert loaded2.prompt == TXT2IMG and loaded2.workflow == future and "newer" in loaded2.warnings[0]
