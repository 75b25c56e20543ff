"""Laplacian-pyramid sampling: the lift keeps every block's signal-to-noise ratio, one level is plain
sampling bit for bit, and the node samples coarse-to-fine on a real (tiny) model for fewer FLOPs."""
from __future__ import annotations

import pytest
import torch

from engine.cache import ModelCache
from engine.context import NodeContext
from ldm.checkpoint import load_checkpoint
from ldm.pyramid import block_mean, flops_per_step, lift, sample_pyramid, switch_steps
from ldm.sample import sample
from nodes.sampling_pyramid import KSamplerPyramid, parse_switches


def test_lift_keeps_block_means_and_adds_zero_mean_unit_detail():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 4, 16, 16, generator=gen)
    sigma = 0.7
    noisy = x0 + sigma * torch.randn(x0.shape, generator=gen)
    signal, unit, sigma_up = lift(x0, noisy, sigma, 2, torch.Generator().manual_seed(1))
    assert sigma_up == pytest.approx(2.8) and signal.shape == (4, 4, 64, 64)
    assert torch.allclose(block_mean(signal, 2), x0, atol=1e-6)
    assert torch.allclose(block_mean(unit * sigma_up, 2), noisy - x0, atol=1e-5)  # coarse noise kept
    assert unit.std().item() == pytest.approx(1.0, abs=0.03)  # as i.i.d. N(0, σ'²) noise


def test_switch_points_become_step_indices():
    assert switch_steps(20, [0.5]) == [10] and switch_steps(20, [0.6, 0.3]) == [6, 12]
    assert switch_steps(4, [0.01, 0.99]) == [1, 3]
    assert parse_switches("0.3, 0.6") == [0.3, 0.6]
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_switches("0.5,1.5")
    with pytest.raises(ValueError, match="not a comma-separated list"):
        parse_switches("half")


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    model, clip, vae = load_checkpoint(tiny_dir / "checkpoints" / "tiny_sd1.safetensors")
    return model, [[clip.encode("a red circle")[0], {}]], [[clip.encode("")[0], {}]]


def test_one_level_is_plain_sampling(tiny):
    model, pos, neg = tiny
    latent = torch.zeros(1, 4, 16, 16)
    kw = dict(latent=latent, positive=pos, negative=neg, cfg=5.0, sampler_name="euler", scheduler="normal",
              steps=4, seed=3)
    out, stages = sample_pyramid(model, levels=1, switches=[], **kw)
    assert torch.equal(out, sample(model, noise=None, **kw)) and len(stages) == 1


def test_three_levels_sample_coarse_to_fine_for_fewer_flops(tiny, tmp_path):
    model, pos, neg = tiny
    out, stages = sample_pyramid(model, latent=torch.zeros(1, 4, 32, 32), positive=pos, negative=neg, cfg=5.0,
                                 sampler_name="euler", scheduler="normal", steps=12, seed=3, levels=3,
                                 switches=[0.3, 0.6])
    assert out.shape == (1, 4, 32, 32) and torch.isfinite(out).all()
    assert [s["size"] for s in stages] == [(8, 8), (16, 16), (32, 32)]
    assert stages[2]["sigma"] < stages[1]["sigma"] < stages[0]["sigma"]
    context = pos[0][0]
    pyramid = sum(s["steps"] * flops_per_step(model, *s["size"], context) for s in stages)
    assert pyramid < 12 * flops_per_step(model, 32, 32, context)
    ctx = NodeContext(node_id="1", prompt_id="p", prompt={}, paths=None, models=ModelCache(max_items=2))
    node = KSamplerPyramid().run(ctx, model, 3, 12, 5.0, "euler", "normal", pos, neg,
                                 {"samples": torch.zeros(1, 4, 32, 32)}, 3, "0.3,0.6")[0]
    assert torch.equal(node["samples"], out)
    with pytest.raises(ValueError, match="3 levels need 2 switch point"):
        KSamplerPyramid().run(ctx, model, 3, 12, 5.0, "euler", "normal", pos, neg,
                              {"samples": torch.zeros(1, 4, 32, 32)}, 3, "0.5")
