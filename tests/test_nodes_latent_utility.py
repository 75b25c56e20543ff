"""Latent arithmetic, rebatching and ComfyUI's .latent files against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from engine.context import NodeContext
from engine.paths import Paths
from nodes import latent as la


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
