"""Model-facing nodes on the tiny checkpoints (loaders, text encoding, LoRA, KSampler), asserted
against known values. Conditioning, inpainting, VAE, SDXL, upscale and progress: test_nodes_models_more.py.

Nodes are called as classes with a real NodeContext (shared ModelCache) or run through the real
Executor. Where a random tiny UNet would make an assertion weak (area placement, timestep ranges),
a small honest stand-in model whose x0 prediction is a known function of its conditioning runs
through the real KSampler / ldm.sample path instead.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.executor import Executor
from nodes import latent as la
from nodes import loaders as lo
from nodes import sampling as sa
from nodes import vae as va
from nodes.plugins import load_all
from nodes.registry import REGISTRY

from tests.nodes_model_fixtures import (  # noqa: F401 (cache, ctx, paths, root, sd1 are fixtures)
    CKPTS, ConstModel, FAMILY, _adv, _const, _empty, _encode, _image, _load, _sample, cache, ctx, paths, root, sd1)


# ------------------------------------------------------------------ loaders

@pytest.mark.parametrize("name", CKPTS)
def test_checkpoint_loader_outputs_per_family(ctx, name):
    from ldm.clip import TextEncoder
    from ldm.model import DiffusionModel
    from ldm.vae import VAE

    model, clip, vae = _load(ctx, name)
    assert isinstance(model, DiffusionModel) and isinstance(clip, TextEncoder) and isinstance(vae, VAE)
    assert model.config.family == FAMILY[name] and clip.family == FAMILY[name]
    assert model.config.latent_channels == 4 and vae.latent_channels == 4 and vae.downscale_ratio == 8
    assert model.config.inpaint == (name == "tiny_sd1_inpaint")
    assert model.config.unet.in_channels == (9 if name == "tiny_sd1_inpaint" else 4)
    assert model.sampling.prediction == ("v" if name == "tiny_sd2v" else "eps")
    expected_scale = 0.13025 if FAMILY[name].startswith("sdxl") else 0.18215
    assert model.latent_format.scale_factor == pytest.approx(expected_scale)
    # the embeddings folder is wired so `embedding:name` resolves
    assert any(Path(d).name == "embeddings" for d in clip.embedding_dirs)


def test_model_cache_shares_one_load_across_two_graphs(paths, monkeypatch):
    """Two different prompts loading the same file: one load_checkpoint call, the same MODEL object."""
    load_all()
    calls = []
    real = lo.load_checkpoint

    def counting(path, *a, **k):
        calls.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(lo, "load_checkpoint", counting)
    ex = Executor(REGISTRY, paths)

    def graph(text, node_id):
        return {node_id: {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
                "e": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": [node_id, 1]}},
                "l": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                "k": {"class_type": "KSampler", "inputs": {
                    "model": [node_id, 0], "seed": 1, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
                    "scheduler": "normal", "positive": ["e", 0], "negative": ["e", 0], "latent_image": ["l", 0],
                    "denoise": 1.0}},
                "d": {"class_type": "VAEDecode", "inputs": {"samples": ["k", 0], "vae": [node_id, 2]}},
                "p": {"class_type": "PreviewImage", "inputs": {"images": ["d", 0]}}}

    r1 = ex.execute(graph("a cat", "4"), prompt_id="g1")
    r2 = ex.execute(graph("a dog", "40"), prompt_id="g2")
    assert r1.status == r2.status == "success", (r1.error, r2.error)
    assert calls == ["tiny_sd1.safetensors"]
    keys = [k for k in ex.models.keys() if k[0] == "checkpoint"]
    assert len(keys) == 1


# ------------------------------------------------------------------ text encoding

def test_clip_text_encode_shapes(ctx):
    _, clip, _ = _load(ctx, "tiny_sd1")
    (cond, opts), = _encode(ctx, clip, "a photo of a cat")
    assert cond.shape == (1, 77, 32) and opts["pooled_output"].shape[0] == 1
    long_text = ", ".join(["a red house"] * 25)  # 99 tokens → two chunks
    (cond2, _), = _encode(ctx, clip, long_text)
    assert cond2.shape == (1, 154, 32)
    _, xclip, _ = _load(ctx, "tiny_sdxl")
    (xc, xo), = _encode(ctx, xclip, "a photo of a cat")
    assert xc.shape == (1, 77, 80)  # CLIP-L 32 ‖ bigG 48
    assert xo["pooled_output"] is not None and xo["pooled_output"].shape == (1, 48)


def test_clip_set_last_layer_changes_output_not_cached_clip(ctx):
    _, clip, _ = _load(ctx, "tiny_sd1")
    before = _encode(ctx, clip, "a cat")[0][0].clone()
    (skipped,) = lo.CLIPSetLastLayer().run(ctx, clip, -2)
    assert skipped is not clip
    out = _encode(ctx, skipped, "a cat")[0][0]
    assert (out - before).abs().max() > 1e-3
    again = _encode(ctx, _load(ctx, "tiny_sd1")[1], "a cat")[0][0]
    assert torch.equal(again, before), "CLIPSetLastLayer altered the cached CLIP"
    deeper = _encode(ctx, lo.CLIPSetLastLayer().run(ctx, clip, -24)[0], "a cat")[0][0]
    assert deeper.shape == before.shape and torch.isfinite(deeper).all()


# ------------------------------------------------------------------ LoRA

def _unet_out(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 8, 8, generator=g)
    context = torch.randn(1, 77, 32, generator=g)
    with model.patched():
        return model.apply_model(x, torch.tensor([3.0]), context=context)


def test_lora_loader_strength_and_base_untouched(ctx):
    model, clip, _ = _load(ctx, "tiny_sd1")
    weights = {k: v.clone() for k, v in model.unet.state_dict().items()}
    te_weights = {k: v.clone() for k, v in clip.stack.state_dict().items()}
    base_out = _unet_out(model)
    base_cond = _encode(ctx, clip, "a cat")[0][0].clone()

    m1, c1 = lo.LoraLoader().run(ctx, model, clip, "tiny_lora_sd1.safetensors", 1.0, 1.0)
    assert m1 is not model and c1 is not clip
    lora_out = _unet_out(m1)
    assert (lora_out - base_out).abs().max() > 1e-4
    assert (_encode(ctx, c1, "a cat")[0][0] - base_cond).abs().max() > 1e-4
    # sampling with the LoRA model, then the base is bit-identical (weights and outputs)
    pos = _encode(ctx, c1, "a cat")
    _sample(ctx, m1, pos, pos, _empty(), steps=2)
    for k, v in model.unet.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for k, v in clip.stack.state_dict().items():
        assert torch.equal(v, te_weights[k]), k
    assert torch.equal(_unet_out(model), base_out)
    assert torch.equal(_encode(ctx, clip, "a cat")[0][0], base_cond)

    m0, c0 = lo.LoraLoader().run(ctx, model, clip, "tiny_lora_sd1.safetensors", 0.0, 0.0)
    assert torch.equal(_unet_out(m0), base_out)
    (mo,) = lo.LoraLoaderModelOnly().run(ctx, model, "tiny_lora_sd1.safetensors", 1.0)
    assert torch.allclose(_unet_out(mo), lora_out)


# ------------------------------------------------------------------ KSampler

def test_ksampler_determinism_seeds_and_cfg(ctx, sd1):
    model, _, _, pos, neg = sd1
    a = _sample(ctx, model, pos, neg, _empty(), seed=5)["samples"]
    b = _sample(ctx, model, pos, neg, _empty(), seed=5)["samples"]
    c = _sample(ctx, model, pos, neg, _empty(), seed=6)["samples"]
    assert a.shape == (1, 4, 8, 8)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.1
    g1 = _sample(ctx, model, pos, neg, _empty(), seed=5, cfg=1.0)["samples"]
    assert (a - g1).abs().max() > 1e-3
    # seeds ≥ 2^32 are accepted (taken modulo 2^32 by torch, as in ComfyUI)
    big = _sample(ctx, model, pos, neg, _empty(), seed=5 + 2 ** 32)["samples"]
    assert torch.equal(big, a)


def test_ksampler_denoise_keeps_img2img_closer(ctx, sd1):
    model, _, vae, pos, neg = sd1
    (lat,) = va.VAEEncode().run(ctx, _image(), vae)
    dists = {}
    for d in (0.3, 0.6, 1.0):
        out = _sample(ctx, model, pos, neg, lat, seed=3, steps=8, denoise=d)["samples"]
        dists[d] = (out - lat["samples"]).pow(2).mean().sqrt().item()
    assert dists[0.3] < dists[0.6] < dists[1.0]
    zero = _sample(ctx, model, pos, neg, lat, seed=3, denoise=0.0)["samples"]
    assert torch.equal(zero, lat["samples"])


def test_ksampler_advanced_two_stage(ctx, sd1):
    model, _, _, pos, neg = sd1
    full = _adv(ctx, model, pos, neg, _empty(), "enable", 0, 10000, "disable")
    ks = _sample(ctx, model, pos, neg, _empty(), seed=11, steps=8)
    assert torch.equal(full["samples"], ks["samples"]), "Advanced 0→end = KSampler"
    first = _adv(ctx, model, pos, neg, _empty(), "enable", 0, 4, "enable")
    cut = _adv(ctx, model, pos, neg, _empty(), "enable", 0, 4, "disable")
    assert first["samples"].shape == cut["samples"].shape == full["samples"].shape
    assert not torch.equal(first["samples"], cut["samples"])
    second = _adv(ctx, model, pos, neg, first, "disable", 4, 10000, "disable")
    again = _adv(ctx, model, pos, neg, _adv(ctx, model, pos, neg, _empty(), "enable", 0, 4, "enable"),
                 "disable", 4, 10000, "disable")
    assert torch.equal(second["samples"], again["samples"]), "the chain is deterministic"
    # euler is deterministic: the two halves are exactly the single run's steps
    torch.testing.assert_close(second["samples"], full["samples"], atol=1e-3, rtol=1e-4)
    # start past the end: nothing to do, latent returned unchanged
    none = _adv(ctx, model, pos, neg, first, "disable", 8, 10000, "disable")
    assert torch.equal(none["samples"], first["samples"])


def test_ksampler_advanced_leftover_noise_exact(ctx):
    """With a model whose x0 prediction is a constant c, euler gives x_k = c + (x_0 − c)·σ_k/σ_0, so the
    leftover after stage one is known exactly, with x_0 = noise·√(1+σ_0²) (txt2img start)."""
    from ldm.sample import ksampler_sigmas, prepare_noise

    sf, c = 0.18215, 2.0
    g = 7.0 * c  # cfg 7 with an uncond predicting 0
    m = ConstModel()
    first = _adv(ctx, m, _const(c), _const(0.0), _empty(), "enable", 0, 4, "enable")["samples"]
    sig = ksampler_sigmas(m.sampling, "normal", "euler", 8)
    noise = prepare_noise(torch.zeros(1, 4, 8, 8), 11)
    s0, s4 = float(sig[0]), float(sig[4])
    expected = g + (noise * (1 + s0 ** 2) ** 0.5 - g) * s4 / s0
    torch.testing.assert_close(first * sf, expected, atol=1e-4, rtol=1e-4)
    cut = _adv(ctx, m, _const(c), _const(0.0), _empty(), "enable", 0, 4, "disable")["samples"]
    torch.testing.assert_close(cut * sf, torch.full_like(cut, g))
    full = _adv(ctx, m, _const(c), _const(0.0), _empty(), "enable", 0, 10000, "disable")["samples"]
    assert first.std() > 10 * full.std() + 0.1, "the first stage is noisier than a full run"
    second = _adv(ctx, m, _const(c), _const(0.0), {"samples": first}, "disable", 4, 10000, "disable")["samples"]
    torch.testing.assert_close(second * sf, torch.full_like(second, g), atol=1e-4, rtol=1e-4)
    # the second stage starts exactly at sigma_4 (the UNet saw sigma_4..sigma_7)
    m2 = ConstModel()
    _adv(ctx, m2, _const(c), _const(0.0), {"samples": first}, "disable", 4, 10000, "disable")
    assert [round(s, 4) for _, s in m2.calls] == [round(float(x), 4) for x in sig[4:8]]


def test_set_latent_noise_mask_keeps_unmasked_region(ctx, sd1):
    model, _, vae, pos, neg = sd1
    (lat,) = va.VAEEncode().run(ctx, _image(), vae)
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 24:56] = 1.0
    (masked,) = la.SetLatentNoiseMask().run(ctx, lat, mask)
    out = _sample(ctx, model, pos, neg, masked, seed=2, steps=6)["samples"]
    keep = torch.ones(8, 8, dtype=torch.bool)
    keep[2:6, 3:7] = False
    torch.testing.assert_close(out[..., keep], lat["samples"][..., keep], atol=1e-5, rtol=1e-5)
    assert (out[..., ~keep] - lat["samples"][..., ~keep]).abs().mean() > 0.05
    assert "noise_mask" in masked and "noise_mask" not in lat
