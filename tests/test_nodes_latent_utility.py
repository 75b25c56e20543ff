"""Latent arithmetic, rebatching and ComfyUI's .latent files against hand-computed values."""
from __future__ import annotations

import json
import math

import pytest
import safetensors.torch
import torch

from engine.context import NodeContext
from engine.paths import PathRefused, Paths
from nodes import latent as la
from nodes import latent_files as lf


@pytest.fixture
def ctx(tmp_path):
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp", tmp_path / "user")
    paths.ensure_dirs()
    return NodeContext(node_id="4", prompt_id="p1", prompt={"4": {"class_type": "SaveLatent", "inputs": {}}},
                       paths=paths, models=None, extra_pnginfo={"workflow": {"nodes": [], "name": "é"}})


# ------------------------------------------------------------------------------------------ latents
def _lat(*channel_values, b=1) -> dict:
    """A 1×1 latent whose channel vector is channel_values."""
    return {"samples": torch.tensor(channel_values, dtype=torch.float32).reshape(1, -1, 1, 1).repeat(b, 1, 1, 1)}


def test_latent_add_subtract_multiply(ctx):
    a, b = _lat(1, 2, b=2), _lat(3, 5)
    a["batch_index"] = [4, 5]
    (s,) = la.LatentAdd().run(ctx, a, b)
    (d,) = la.LatentSubtract().run(ctx, a, b)
    (m,) = la.LatentMultiply().run(ctx, a, -2.0)
    assert s["samples"][:, :, 0, 0].tolist() == [[4, 7], [4, 7]]  # samples2 repeated to the batch
    assert d["samples"][:, :, 0, 0].tolist() == [[-2, -3], [-2, -3]]
    assert m["samples"][:, :, 0, 0].tolist() == [[-2, -4], [-2, -4]]
    assert s["batch_index"] == [4, 5]  # samples1's other keys are kept


def test_latent_add_resizes_samples2(ctx):
    big = {"samples": torch.zeros(1, 4, 4, 4)}
    (s,) = la.LatentAdd().run(ctx, big, {"samples": torch.ones(1, 4, 2, 2)})
    assert s["samples"].shape == (1, 4, 4, 4) and torch.allclose(s["samples"], torch.ones(1, 4, 4, 4))


def test_latent_interpolate_mixes_directions_and_magnitudes(ctx):
    # s1 = (3, 4): |s1| = 5, direction (0.6, 0.8); s2 = (0, 2): |s2| = 2, direction (0, 1).
    # ratio 0.5: t = (0.3, 0.9) → direction (1, 3)/√10, magnitude 3.5.
    (out,) = la.LatentInterpolate().run(ctx, _lat(3, 4), _lat(0, 2), 0.5)
    want = [3.5 / math.sqrt(10), 3 * 3.5 / math.sqrt(10)]
    assert out["samples"][0, :, 0, 0].tolist() == pytest.approx(want, abs=1e-6)
    (same,) = la.LatentInterpolate().run(ctx, _lat(3, 4), _lat(0, 2), 1.0)
    assert same["samples"][0, :, 0, 0].tolist() == pytest.approx([3, 4])


def test_latent_interpolate_handles_zero_vectors_and_batches(ctx):
    (out,) = la.LatentInterpolate().run(ctx, _lat(0, 0, b=3), _lat(0, 2), 0.25)
    # s1 has no direction: only s2's (0, 1) remains, magnitude 0.25·0 + 0.75·2 = 1.5.
    assert torch.allclose(out["samples"][:, :, 0, 0], torch.tensor([[0, 1.5]] * 3))


def test_rebatch_latents_groups_by_size_and_keeps_indices(ctx):
    first = {"samples": torch.zeros(2, 4, 8, 8), "noise_mask": torch.zeros(1, 1, 64, 64)}
    second = {"samples": torch.ones(1, 4, 8, 8)}
    third = {"samples": torch.ones(1, 4, 4, 4)}
    (out,) = la.RebatchLatents().run(ctx, [first, second, third], [2])
    assert [o["samples"].shape[0] for o in out] == [2, 1, 1]
    assert [o["batch_index"] for o in out] == [[0, 1], [2], [3]]
    assert out[0]["noise_mask"].shape == (2, 1, 64, 64)
    assert "noise_mask" not in out[1] and out[2]["samples"].shape == (1, 4, 4, 4)
    (one,) = la.RebatchLatents().run(ctx, [first, second], [4])
    assert one[0]["samples"][:, 0, 0, 0].tolist() == [0, 0, 1]
    assert one[0]["noise_mask"][:, 0].mean(dim=(1, 2)).tolist() == [0, 0, 1]


# --------------------------------------------------------------------------------------- .latent files
def test_save_latent_writes_comfyui_format_with_counter(ctx):
    samples = torch.randn(2, 4, 3, 5)
    out = lf.SaveLatent().run(ctx, {"samples": samples}, "latents/ComfyUI")
    again = lf.SaveLatent().run(ctx, {"samples": samples}, "latents/ComfyUI")
    assert out.ui == {"latents": [{"filename": "ComfyUI_00001_.latent", "subfolder": "latents", "type": "output"}]}
    assert again.ui["latents"][0]["filename"] == "ComfyUI_00002_.latent"
    folder = ctx.paths.output_dir / "latents"
    assert sorted(p.name for p in folder.iterdir()) == ["ComfyUI_00001_.latent", "ComfyUI_00002_.latent"]
    path = folder / "ComfyUI_00001_.latent"
    tensors = safetensors.torch.load_file(str(path))
    assert set(tensors) == {"latent_tensor", "latent_format_version_0"}
    assert torch.equal(tensors["latent_tensor"], samples) and tensors["latent_format_version_0"].numel() == 0
    with safetensors.safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    assert json.loads(meta["prompt"]) == ctx.prompt and json.loads(meta["workflow"]) == ctx.extra_pnginfo["workflow"]


def test_load_latent_round_trips_save_latent(ctx):
    samples = torch.randn(1, 4, 6, 6)
    saved = lf.SaveLatent().run(ctx, {"samples": samples}, "rt").ui["latents"][0]
    src = ctx.paths.output_dir / saved["filename"]
    (ctx.paths.input_dir / "rt.latent").write_bytes(src.read_bytes())
    assert lf.LatentFiles().resolve(ctx.paths) == ["rt.latent"]
    (loaded,) = lf.LoadLatent().run(ctx, "rt.latent")
    assert torch.equal(loaded["samples"], samples)
    assert lf.LoadLatent.fingerprint(ctx, "rt.latent") != lf.LoadLatent.fingerprint(ctx, "gone.latent")


def test_load_latent_reads_hand_built_comfyui_files(ctx):
    t = torch.arange(8, dtype=torch.float16).reshape(1, 2, 2, 2)
    safetensors.torch.save_file({"latent_tensor": t, "latent_format_version_0": torch.tensor([])},
                                str(ctx.paths.input_dir / "new.latent"), metadata={"prompt": ""})
    safetensors.torch.save_file({"latent_tensor": t}, str(ctx.paths.input_dir / "old.latent"))
    (new,) = lf.LoadLatent().run(ctx, "new.latent")
    (old,) = lf.LoadLatent().run(ctx, "old.latent")
    assert new["samples"].dtype == torch.float32 and torch.equal(new["samples"], t.float())
    assert torch.allclose(old["samples"], t.float() / 0.18215)  # pre-version files stored scaled latents


def test_load_latent_refuses_bad_names_and_files(ctx):
    (ctx.paths.input_dir / "sub").mkdir()
    (ctx.paths.input_dir / "sub" / "x.latent").write_bytes(b"")
    (ctx.paths.input_dir / "junk.latent").write_bytes(b"not safetensors")
    safetensors.torch.save_file({"other": torch.zeros(1)}, str(ctx.paths.input_dir / "other.latent"))
    assert lf.LatentFiles().resolve(ctx.paths) == ["junk.latent", "other.latent"]
    for name in ("../x.latent", "sub/x.latent"):
        with pytest.raises(PathRefused):
            lf.LoadLatent().run(ctx, name)
    with pytest.raises(ValueError, match="not a readable .latent file"):
        lf.LoadLatent().run(ctx, "junk.latent")
    with pytest.raises(ValueError, match="no 'latent_tensor'"):
        lf.LoadLatent().run(ctx, "other.latent")


def test_save_latent_stays_in_output(ctx):
    with pytest.raises(PathRefused):
        lf.SaveLatent().run(ctx, {"samples": torch.zeros(1, 4, 1, 1)}, "../escape")
    assert not any(p.name.endswith(".tmp") for p in ctx.paths.output_dir.rglob("*"))


def test_utility_nodes_run_as_a_graph(tmp_path):
    """Through the executor: a primitive feeding a widget, list outputs fanning out, PreviewAny's
    text and SaveLatent's file, with the prompt in the file's metadata."""
    from engine.executor import Executor
    from nodes.plugins import load_all
    from nodes.registry import REGISTRY

    load_all()
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp", tmp_path / "user")
    paths.ensure_dirs()
    prompt = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 24}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": ["1", 0], "height": 8, "batch_size": 3, "color": 0}},
        "3": {"class_type": "RebatchImages", "inputs": {"images": ["2", 0], "batch_size": 2}},
        "4": {"class_type": "GetImageSize", "inputs": {"image": ["3", 0]}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 2]}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 16, "height": 16, "batch_size": 1}},
        "7": {"class_type": "LatentMultiply", "inputs": {"samples": ["6", 0], "multiplier": 2.0}},
        "8": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": "graph/lat"}},
    }
    result = Executor(REGISTRY, paths).execute(prompt, prompt_id="g1")
    assert result.status == "success" and not result.validation.lines(), result.error
    assert result.outputs["5"]["text"] == ["2", "1"]  # one run per rebatched batch: sizes 2 and 1
    saved = result.outputs["8"]["latents"][0]
    assert saved == {"filename": "lat_00001_.latent", "subfolder": "graph", "type": "output"}
    with safetensors.safe_open(str(paths.output_dir / "graph" / saved["filename"]), "pt") as fh:
        stored = json.loads(fh.metadata()["prompt"])  # the validated prompt (titles added)
        assert {k: v["inputs"] for k, v in stored.items()} == {k: v["inputs"] for k, v in prompt.items()}
        assert fh.get_tensor("latent_tensor").shape == (1, 4, 2, 2)
