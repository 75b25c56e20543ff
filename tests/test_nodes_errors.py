"""Bad inputs to the core nodes give a clear error naming the node and the input, never a crash:
validation errors in ComfyUI's node_errors shape, runtime failures as execution_error."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import engine.executor as executor_mod
from engine.executor import Executor
from engine.paths import Paths
from nodes.plugins import load_all
from nodes.registry import REGISTRY


@pytest.fixture(scope="module")
def env(tiny_dir, tmp_path_factory):
    load_all()
    base = tmp_path_factory.mktemp("node_errors")
    models = base / "models"
    shutil.copytree(tiny_dir, models)
    paths = Paths(models, base / "input", base / "output", base / "temp", base / "user")
    paths.ensure_dirs()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(paths.input_dir / "square.png")
    (paths.input_dir / "notes.png").write_text("this is not an image\n")
    ckpt = models / "checkpoints" / "tiny_sd1.safetensors"
    data = ckpt.read_bytes()
    (models / "checkpoints" / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    sd = load_file(str(ckpt))
    save_file({k: v for k, v in sd.items() if not k.startswith("cond_stage_model.")},
              str(models / "checkpoints" / "no_text.safetensors"))
    return paths, Executor(REGISTRY, paths)


def _txt2img(ckpt="tiny_sd1.safetensors", steps=2, lora=None):
    p = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
         "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
         "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
         "3": {"class_type": "KSampler", "inputs": {
             "model": ["4", 0], "seed": 1, "steps": steps, "cfg": 5.0, "sampler_name": "euler",
             "scheduler": "normal", "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0],
             "denoise": 1.0}},
         "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
         "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}
    if lora:
        p["10"] = {"class_type": "LoraLoader", "inputs": {
            "model": ["4", 0], "clip": ["4", 1], "lora_name": lora, "strength_model": 1.0, "strength_clip": 1.0}}
        p["3"]["inputs"]["model"] = ["10", 0]
        p["6"]["inputs"]["clip"] = ["10", 1]
    return p


def _validation_error(result, node_id):
    assert result.status == "error" and result.error["type"] == "validation", result.error
    errors = result.error["node_errors"][node_id]["errors"]
    return errors[0]


def _runtime_error(result, node_id, class_type):
    assert result.status == "error", result.status
    err = result.error
    assert err["node_id"] == node_id and err["node_type"] == class_type, err
    assert err["exception_message"], "an empty message is not a clear error"
    return err


def test_missing_checkpoint_is_value_not_in_list(env):
    _, ex = env
    res = ex.execute(_txt2img("nope.safetensors"), prompt_id="e1")
    err = _validation_error(res, "4")
    assert err["type"] == "value_not_in_list"
    assert err["extra_info"]["input_name"] == "ckpt_name"
    assert err["extra_info"]["received_value"] == "nope.safetensors"


def test_checkpoint_deleted_between_validation_and_run(env, monkeypatch):
    paths, ex = env
    victim = paths.models_dir / "checkpoints" / "doomed.safetensors"
    shutil.copy(paths.models_dir / "checkpoints" / "tiny_sd1.safetensors", victim)
    real = executor_mod.validate

    def validate_then_delete(*a, **k):
        v = real(*a, **k)
        victim.unlink()
        return v

    monkeypatch.setattr(executor_mod, "validate", validate_then_delete)
    res = ex.execute(_txt2img("doomed.safetensors"), prompt_id="e2")
    err = _runtime_error(res, "4", "CheckpointLoaderSimple")
    assert "doomed.safetensors" in err["exception_message"]


def test_steps_zero_is_value_smaller_than_min(env):
    _, ex = env
    err = _validation_error(ex.execute(_txt2img(steps=0), prompt_id="e3"), "3")
    assert err["type"] == "value_smaller_than_min" and err["extra_info"]["input_name"] == "steps"


def test_mask_of_wrong_aspect_ratio_for_inpaint_encode(env):
    _, ex = env
    prompt = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
              "1": {"class_type": "LoadImage", "inputs": {"image": "square.png"}},
              "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 32}},
              "7": {"class_type": "VAEEncodeForInpaint", "inputs": {
                  "pixels": ["1", 0], "vae": ["4", 2], "mask": ["2", 0], "grow_mask_by": 6}},
              "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["4", 2]}},
              "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}
    err = _runtime_error(ex.execute(prompt, prompt_id="e4"), "7", "VAEEncodeForInpaint")
    assert "'mask'" in err["exception_message"] and "aspect" in err["exception_message"]
    # the same aspect ratio at another size is accepted (stretched, with a warning)
    prompt["2"]["inputs"].update(width=32, height=32)
    res = ex.execute(prompt, prompt_id="e4b")
    assert res.status == "success", res.error
    assert any("mask" in w for w in res.warnings)


def test_non_image_file_given_to_load_image(env):
    _, ex = env
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "notes.png"}},
              "9": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    err = _runtime_error(ex.execute(prompt, prompt_id="e5"), "1", "LoadImage")
    assert "'image'" in err["exception_message"] and "notes.png is not a readable image" in err["exception_message"]


def test_lora_for_another_family(env):
    """An SD1 LoRA on SDXL: like ComfyUI, what fits is applied and the rest is reported (the tiny
    families share some shapes, so a few keys do fit); a LoRA of which nothing fits is an error
    naming lora_name."""
    paths, ex = env
    res = ex.execute(_txt2img("tiny_sdxl.safetensors", lora="tiny_lora_sd1.safetensors"), prompt_id="e6")
    assert res.status == "success", res.error
    assert any("tiny_lora_sd1" in w and "matched no weight" in w for w in res.warnings), res.warnings
    save_file({"lora_unet_no_such_block_proj.lora_up.weight": torch.zeros(8, 4),
               "lora_unet_no_such_block_proj.lora_down.weight": torch.zeros(4, 8)},
              str(paths.models_dir / "loras" / "alien.safetensors"))
    res = ex.execute(_txt2img("tiny_sdxl.safetensors", lora="alien.safetensors"), prompt_id="e6b")
    err = _runtime_error(res, "10", "LoraLoader")
    assert "'lora_name'" in err["exception_message"] and "alien.safetensors" in err["exception_message"]


def test_truncated_checkpoint(env):
    _, ex = env
    err = _runtime_error(ex.execute(_txt2img("truncated.safetensors"), prompt_id="e7"), "4",
                         "CheckpointLoaderSimple")
    assert err["exception_type"] == "CheckpointError"
    msg = err["exception_message"].lower()
    assert "truncated.safetensors" in msg and ("truncat" in msg or "incomplete" in msg or "corrupt" in msg)


def test_checkpoint_without_text_encoder(env):
    """A file without text-encoder keys is refused at load with a message listing what was found;
    the clip=None path of CLIPTextEncode (reachable from custom loaders) names input 'clip'."""
    from engine.context import NodeContext
    from nodes import conditioning as cn

    paths, ex = env
    res = ex.execute(_txt2img("no_text.safetensors"), prompt_id="e8")
    err = _runtime_error(res, "4", "CheckpointLoaderSimple")
    assert err["exception_type"] == "CheckpointError" and "model.diffusion_model" in err["exception_message"]
    ctx = NodeContext(node_id="6", prompt_id="p", prompt={}, paths=paths, models=None)
    with pytest.raises(ValueError, match="'clip'"):
        cn.CLIPTextEncode().run(ctx, "a cat", None)


def test_vae_decode_without_vae_and_unknown_sampler_name(env):
    from engine.context import NodeContext
    from nodes import vae as va

    paths, ex = env
    ctx = NodeContext(node_id="8", prompt_id="p", prompt={}, paths=paths, models=None)
    with pytest.raises(ValueError, match="'vae'"):
        va.VAEDecode().run(ctx, {"samples": torch.zeros(1, 4, 8, 8)}, None)
    prompt = _txt2img()
    prompt["3"]["inputs"]["sampler_name"] = "no_such_sampler"
    err = _validation_error(ex.execute(prompt, prompt_id="e9"), "3")
    assert err["type"] == "value_not_in_list" and err["extra_info"]["input_name"] == "sampler_name"


def test_errors_do_not_poison_the_next_run(env):
    """After each failure above, the same executor still runs a good prompt."""
    _, ex = env
    ex.execute(_txt2img("truncated.safetensors"), prompt_id="e10")
    res = ex.execute(_txt2img(), prompt_id="e11")
    assert res.status == "success", res.error
    assert Path(ex.paths.temp_dir).is_dir()
