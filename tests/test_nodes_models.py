"""Model-facing nodes on the tiny checkpoints, asserted against known values.

Nodes are called as classes with a real NodeContext (shared ModelCache) or run through the real
Executor. Where a random tiny UNet would make an assertion weak (area placement, timestep ranges),
a small honest stand-in model whose x0 prediction is a known function of its conditioning runs
through the real KSampler / ldm.sample path instead.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.cache import ModelCache
from engine.context import NodeContext
from engine.executor import Executor
from engine.paths import Paths
from ldm.model_sampling import ModelSampling
from nodes import conditioning as cn
from nodes import latent as la
from nodes import loaders as lo
from nodes import sampling as sa
from nodes import upscale as up
from nodes import vae as va
from nodes.registry import REGISTRY, load_all

CKPTS = ["tiny_sd1", "tiny_sd2v", "tiny_sdxl", "tiny_sdxl_refiner", "tiny_sd1_inpaint"]
FAMILY = {"tiny_sd1": "sd1", "tiny_sd2v": "sd2", "tiny_sdxl": "sdxl",
          "tiny_sdxl_refiner": "sdxl_refiner", "tiny_sd1_inpaint": "sd1"}


@pytest.fixture(scope="module")
def root(tiny_dir, tmp_path_factory) -> Path:
    """tiny_dir + a tiny ESRGAN, a standalone VAE and a malicious pickle, plus input/output dirs."""
    from spandrel.architectures.ESRGAN import ESRGAN

    base = tmp_path_factory.mktemp("nodes_models")
    models = base / "models"
    shutil.copytree(tiny_dir, models)
    (models / "upscale_models").mkdir(exist_ok=True)  # a server test may have created it
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(ESRGAN(num_filters=8, num_blocks=1, scale=2).state_dict(),
                   models / "upscale_models" / "tiny_esrgan_x2.pth")
    # Standalone VAE: the checkpoint's first_stage_model.* tensors and its metadata, prefix kept
    # in one file and stripped in the other (both layouts are published).
    from safetensors import safe_open

    ckpt = models / "checkpoints" / "tiny_sd1.safetensors"
    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata()
    sd = load_file(str(ckpt))
    (models / "vae").mkdir(exist_ok=True)
    vae_sd = {k: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    save_file(vae_sd, str(models / "vae" / "tiny_vae_prefixed.safetensors"), metadata=meta)
    save_file({k[len("first_stage_model."):]: v for k, v in vae_sd.items()},
              str(models / "vae" / "tiny_vae.safetensors"), metadata=meta)
    return base


@pytest.fixture(scope="module")
def paths(root) -> Paths:
    p = Paths(root / "models", root / "input", root / "output", root / "temp", root / "user")
    p.ensure_dirs()
    return p


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache(max_items=16)


@pytest.fixture
def ctx(paths, cache):
    events: list = []
    c = NodeContext(node_id="3", prompt_id="p", prompt={}, paths=paths, models=cache,
                    emit=lambda e, d: events.append((e, d)))
    c.events = events  # type: ignore[attr-defined]
    return c


def _load(ctx, name):
    return lo.CheckpointLoaderSimple().run(ctx, f"{name}.safetensors")


def _encode(ctx, clip, text):
    return cn.CLIPTextEncode().run(ctx, text, clip)[0]


def _empty(h=64, w=64, b=1):
    return la.EmptyLatentImage().run(None, w, h, b)[0]


def _sample(ctx, model, pos, neg, latent, seed=1, steps=4, cfg=7.0, denoise=1.0, sampler="euler"):
    return sa.KSampler().run(ctx, model, seed, steps, cfg, sampler, "normal", pos, neg, latent, denoise)[0]


def _image(seed=0, h=64, w=64):
    """A smooth, structured test image (gradients + a disc) in 0..1."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = (((yy - 0.5) ** 2 + (xx - 0.4) ** 2) < 0.06).float()
    img = torch.stack([xx, yy, 0.3 + 0.5 * disc], dim=-1)
    return img.unsqueeze(0).clamp(0, 1)


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
    import ldm.checkpoint

    load_all()
    calls = []
    real = ldm.checkpoint.load_checkpoint

    def counting(path, *a, **k):
        calls.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(ldm.checkpoint, "load_checkpoint", counting)
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

@pytest.fixture(scope="module")
def sd1(paths, cache):
    c = NodeContext(node_id="3", prompt_id="p", prompt={}, paths=paths, models=cache)
    model, clip, vae = _load(c, "tiny_sd1")
    return model, clip, vae, _encode(c, clip, "a red circle"), _encode(c, clip, "")


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


def _adv(ctx, model, pos, neg, latent, add_noise, start, end, leftover, steps=8, seed=11):
    return sa.KSamplerAdvanced().run(ctx, model, add_noise, seed, steps, 7.0, "euler", "normal", pos, neg,
                                     latent, start, end, leftover)[0]


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


# ------------------------------------------------------------------ conditioning with a known model

class ConstModel:
    """Honest stand-in MODEL: x0 prediction = the mean of the context's first feature (per entry),
    everywhere. With euler to sigma 0 the sampler's output is the last guided prediction, so the
    result shows exactly which conditioning applied where (and with what weight)."""

    def __init__(self):
        self.sampling = ModelSampling("eps")
        from ldm.configs import ModelConfig, SD15_UNET, SD_VAE
        from ldm.model import latent_format_for

        self.config = ModelConfig(family="sd1", prediction="eps", inpaint=False, unet=SD15_UNET, vae=SD_VAE,
                                  text_encoders=("sd1",), scale_factor=0.18215)
        self.latent_format = latent_format_for(self.config)
        self.calls: list = []

    def apply_model(self, x, sigma, *, context, y=None, concat=None):
        self.calls.append((tuple(x.shape), float(sigma.reshape(-1)[0])))
        v = context[:, :, 0].mean(dim=1).reshape(-1, 1, 1, 1)
        return v.expand_as(x).clone()

    def encode_adm(self, opts, batch):
        return None

    @contextlib.contextmanager
    def patched(self):
        yield self


def _const(v, tokens=77):
    return [[torch.full((1, tokens, 8), float(v)), {}]]


def test_conditioning_set_area_places_prompt(ctx):
    m = ConstModel()
    base = _const(1.0)
    (area,) = cn.ConditioningSetArea().run(ctx, _const(5.0), 64, 64, 64, 0, 1.0)  # right half of 128×64
    (both,) = cn.ConditioningCombine().run(ctx, base, area)
    out = _sample(ctx, m, both, _const(0.0), _empty(64, 128), cfg=1.0, steps=3)["samples"][0, 0]
    sf = 0.18215
    assert out.shape == (8, 16)
    # left of the area: only the base prompt; the area's own cells: base and area averaged, the area's
    # weight ramped from its inner (left) edge over rr = min(8, area width // 4) cells (ComfyUI)
    torch.testing.assert_close(out[:, :8] * sf, torch.full((8, 8), 1.0))
    assert out[0, 15] * sf == pytest.approx(3.0, abs=1e-5)
    rr = min(8, 8 // 4)
    weights = [min(1.0, (t + 1) / rr) for t in range(8)]
    ramp = [(1 + 5 * wt) / (1 + wt) for wt in weights]
    torch.testing.assert_close(out[0, 8:] * sf, torch.tensor(ramp))
    assert out[0, 8] * sf < 3.0 - 0.3, "the inner edge is feathered"
    # the area entries ran on the cropped latent
    assert (1, 4, 8, 8) in {c[0] for c in m.calls}
    # Percentage: the same placement, resolved against the latent size at sampling time
    (pct,) = cn.ConditioningSetAreaPercentage().run(ctx, _const(5.0), 0.5, 1.0, 0.5, 0.0, 1.0)
    out2 = _sample(ctx, ConstModel(), base + pct, _const(0.0), _empty(64, 128), cfg=1.0, steps=3)["samples"]
    torch.testing.assert_close(out2[0, 0], out)
    # strength 0 area: the base alone everywhere... and with nothing else the area cells alone count
    (only,) = cn.ConditioningSetArea().run(ctx, _const(5.0), 64, 64, 64, 0, 1.0)
    out3 = _sample(ctx, ConstModel(), only, _const(0.0), _empty(64, 128), cfg=1.0, steps=3)["samples"][0, 0]
    assert out3[:, :8].abs().max() < 1e-6, "cells outside every area predict 0"
    assert out3[0, 15] * sf == pytest.approx(5.0, abs=1e-5)


def test_conditioning_cfg_and_timestep_range_with_known_model(ctx):
    sf = 0.18215
    out = _sample(ctx, ConstModel(), _const(2.0), _const(1.0), _empty(), cfg=8.0, steps=3)["samples"]
    torch.testing.assert_close(out * sf, torch.full_like(out, 1.0 + 8.0 * (2.0 - 1.0)))
    m = ConstModel()
    (early,) = cn.ConditioningSetTimestepRange().run(ctx, _const(3.0), 0.0, 0.5)
    (late,) = cn.ConditioningSetTimestepRange().run(ctx, _const(7.0), 0.5, 1.0)
    assert early[0][1] == {"start_percent": 0.0, "end_percent": 0.5}
    out = _sample(ctx, m, early + late, _const(0.0), _empty(), cfg=1.0, steps=4)["samples"]
    # the final (low-sigma) prediction comes from the late entry only
    torch.testing.assert_close(out * sf, torch.full_like(out, 7.0))
    (zero,) = cn.ConditioningZeroOut().run(ctx, _const(3.0))
    out = _sample(ctx, ConstModel(), zero, _const(0.0), _empty(), cfg=1.0, steps=2)["samples"]
    assert out.abs().max() < 1e-6


def test_conditioning_algebra_values(ctx):
    a = [[torch.full((1, 77, 4), 2.0), {"pooled_output": torch.full((1, 3), 2.0), "strength": 0.5}]]
    b = [[torch.full((1, 154, 4), 10.0), {"pooled_output": torch.full((1, 3), 10.0)}]]
    (comb,) = cn.ConditioningCombine().run(ctx, a, b)
    assert len(comb) == 2 and comb[0][0] is a[0][0] and comb[1][0] is b[0][0]
    (avg,) = cn.ConditioningAverage().run(ctx, a, b, 0.25)
    assert avg[0][0].shape == (1, 77, 4)
    torch.testing.assert_close(avg[0][0], torch.full((1, 77, 4), 2 * 0.25 + 10 * 0.75))
    torch.testing.assert_close(avg[0][1]["pooled_output"], torch.full((1, 3), 8.0))
    assert avg[0][1]["strength"] == 0.5
    (avg2,) = cn.ConditioningAverage().run(ctx, b, a, 0.5)  # shorter source is zero-padded
    torch.testing.assert_close(avg2[0][0][:, :77], torch.full((1, 77, 4), 6.0))
    torch.testing.assert_close(avg2[0][0][:, 77:], torch.full((1, 77, 4), 5.0))
    (cat,) = cn.ConditioningConcat().run(ctx, a, b)
    assert cat[0][0].shape == (1, 231, 4) and torch.equal(cat[0][0][:, 77:], b[0][0])
    assert cat[0][1]["pooled_output"] is a[0][1]["pooled_output"]
    (zero,) = cn.ConditioningZeroOut().run(ctx, a)
    assert zero[0][0].abs().sum() == 0 and zero[0][1]["pooled_output"].abs().sum() == 0
    assert a[0][0].min() == 2.0, "inputs are never modified"
    (rng,) = cn.ConditioningSetTimestepRange().run(ctx, a, 0.2, 0.7)
    assert rng[0][1]["start_percent"] == 0.2 and rng[0][1]["end_percent"] == 0.7 and "start_percent" not in a[0][1]
    mask = torch.zeros(8, 8)
    mask[2:4, 2:6] = 1
    (sm,) = cn.ConditioningSetMask().run(ctx, a, mask, 0.7, "mask bounds")
    o = sm[0][1]
    assert o["mask"].shape == (1, 8, 8) and o["mask_strength"] == 0.7 and o["set_area_to_bounds"] is True
    (ar,) = cn.ConditioningSetArea().run(ctx, a, 128, 64, 16, 8, 2.0)
    assert ar[0][1]["area"] == (8, 16, 1, 2) and ar[0][1]["strength"] == 2.0


# ------------------------------------------------------------------ inpainting

def test_inpaint_model_conditioning_with_9_channel_model(ctx):
    model, clip, vae = _load(ctx, "tiny_sd1_inpaint")
    pos, neg = _encode(ctx, clip, "a cat"), _encode(ctx, clip, "")
    img = _image()
    mask = torch.zeros(1, 64, 64)
    mask[:, 8:40, 16:48] = 1.0
    p2, n2, lat = cn.InpaintModelConditioning().run(ctx, pos, neg, vae, img, mask, True)
    assert lat["samples"].shape == (1, 4, 8, 8) and lat["noise_mask"].shape[-2:] == (64, 64)
    concat_img = p2[0][1]["concat_latent_image"]
    grey = img.clone()
    grey[0, 8:40, 16:48, :] = 0.5
    torch.testing.assert_close(concat_img, vae.encode(grey))
    seen = []
    real = model.apply_model

    def recording(x, sigma, **kw):
        seen.append(kw.get("concat"))
        return real(x, sigma, **kw)

    model.apply_model = recording
    try:
        out = _sample(ctx, model, p2, n2, lat, steps=3)
    finally:
        del model.apply_model
    assert out["samples"].shape == (1, 4, 8, 8) and torch.isfinite(out["samples"]).all()
    cat = seen[0]
    assert cat is not None and cat.shape[1] == 5
    expected_mask = torch.zeros(8, 8)
    expected_mask[1:5, 2:6] = 1.0
    assert torch.equal(cat[0, 0], expected_mask), "mask channel: 1 = inpaint"
    torch.testing.assert_close(cat[0, 1:], concat_img[0] * 0.18215)


# ------------------------------------------------------------------ VAE

def test_vae_encode_decode_round_trip(ctx, sd1):
    vae = sd1[2]
    img = _image(h=68, w=64)  # 68 is not a multiple of 8 → centre-cropped to rows 2..65
    (lat,) = va.VAEEncode().run(ctx, img, vae)
    assert lat["samples"].shape == (1, 4, 8, 8)
    (dec,) = va.VAEDecode().run(ctx, lat, vae)
    assert dec.shape == (1, 64, 64, 3) and dec.dtype == torch.float32
    assert dec.min() >= 0.0 and dec.max() <= 1.0 and dec.std() > 1e-3
    (z,) = va.VAEEncode().run(ctx, img[:, 2:66].contiguous(), vae)
    assert torch.equal(z["samples"], lat["samples"])


def test_vae_decode_tiled_close_to_plain(ctx, sd1):
    vae = sd1[2]
    g = torch.Generator().manual_seed(4)
    lat = {"samples": torch.nn.functional.interpolate(torch.randn(1, 4, 6, 6, generator=g), size=(24, 24),
                                                      mode="bilinear")}
    (plain,) = va.VAEDecode().run(ctx, lat, vae)
    (whole,) = va.VAEDecodeTiled().run(ctx, lat, vae, 256, 64, 64, 8)  # one tile covers everything
    torch.testing.assert_close(whole, plain, atol=1e-6, rtol=0)
    (tiled,) = va.VAEDecodeTiled().run(ctx, lat, vae, 128, 64, 64, 8)  # 16-cell tiles on a 24-cell latent
    assert tiled.shape == plain.shape == (1, 192, 192, 3)
    diff = (tiled - plain).abs()
    # Tiles cannot be exact: GroupNorm statistics and the mid-block attention see one tile, not the
    # image (ComfyUI's tiled decode has the same property). Measured on the tiny VAE: mean 0.038,
    # max 0.44, while a 10 % change of the latent moves the decode by 0.010 and another latent by 0.13.
    other = va.VAEDecode().run(ctx, {"samples": lat["samples"].flip(-1)}, vae)[0]
    assert diff.mean() < 0.06 and diff.mean() < 0.5 * (other - plain).abs().mean()
    (enc,) = va.VAEEncodeTiled().run(ctx, plain, vae, 128, 64, 64, 8)
    assert enc["samples"].shape == (1, 4, 24, 24)


def test_vae_encode_for_inpaint_greys_and_grows(ctx, sd1):
    vae = sd1[2]
    img = _image()
    mask = torch.zeros(1, 64, 64)
    mask[:, 24:32, 24:32] = 1.0
    seen = []
    real = vae.encode

    def recording(pixels):
        seen.append(pixels.clone())
        return real(pixels)

    vae.encode = recording
    try:
        (lat0,) = va.VAEEncodeForInpaint().run(ctx, img, vae, mask, 0)
        (lat6,) = va.VAEEncodeForInpaint().run(ctx, img, vae, mask, 6)
    finally:
        del vae.encode
    px = seen[0][0]
    assert torch.equal(px[24:32, 24:32], torch.full((8, 8, 3), 0.5))
    torch.testing.assert_close(px[:24], img[0, :24], atol=1e-6, rtol=0)
    torch.testing.assert_close(px[32:], img[0, 32:], atol=1e-6, rtol=0)
    m0, m6 = lat0["noise_mask"][0, 0], lat6["noise_mask"][0, 0]
    assert torch.equal(m0, mask[0])
    rows, cols = torch.nonzero(m6, as_tuple=True)
    # a 6×6 box dilation: grows by 2 above/left and 3 below/right (ComfyUI's padding)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (22, 34, 22, 34)
    assert m6.sum() == 13 * 13 and set(m6.unique().tolist()) == {0.0, 1.0}


def test_vae_loader_standalone_file(ctx, sd1):
    ckpt_vae = sd1[2]
    lat = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))}
    ref = va.VAEDecode().run(ctx, lat, ckpt_vae)[0]
    for name in ("tiny_vae.safetensors", "tiny_vae_prefixed.safetensors"):
        (vae,) = lo.VAELoader().run(ctx, name)
        assert vae is not ckpt_vae
        torch.testing.assert_close(va.VAEDecode().run(ctx, lat, vae)[0], ref, atol=0, rtol=0)


# ------------------------------------------------------------------ SDXL

def test_sdxl_and_refiner_run(ctx):
    model, clip, vae = _load(ctx, "tiny_sdxl")
    (pos,) = cn.CLIPTextEncodeSDXL().run(ctx, clip, 1024, 1024, 0, 0, 1024, 1024, "a cat", "a cat")
    (neg,) = cn.CLIPTextEncodeSDXL().run(ctx, clip, 1024, 1024, 0, 0, 1024, 1024, "", "")
    assert pos[0][0].shape == (1, 77, 80) and pos[0][1]["pooled_output"].shape == (1, 48)
    assert pos[0][1]["target_width"] == 1024
    (pos2,) = cn.CLIPTextEncodeSDXL().run(ctx, clip, 512, 1024, 0, 0, 1024, 1024, "a cat", "a cat")
    y1, y2 = model.encode_adm(pos[0][1], 1), model.encode_adm(pos2[0][1], 1)
    assert y1.shape == (1, 48 + 6 * 256) and not torch.equal(y1, y2)
    base = _adv(ctx, model, pos, neg, _empty(), "enable", 0, 3, "enable", steps=6)
    rmodel, rclip, rvae = _load(ctx, "tiny_sdxl_refiner")
    (rpos,) = cn.CLIPTextEncodeSDXLRefiner().run(ctx, 6.0, 1024, 1024, "a cat", rclip)
    (rneg,) = cn.CLIPTextEncodeSDXLRefiner().run(ctx, 2.5, 1024, 1024, "", rclip)
    assert rpos[0][0].shape == (1, 77, 48) and rmodel.encode_adm(rpos[0][1], 1).shape == (1, 48 + 5 * 256)
    refined = _adv(ctx, rmodel, rpos, rneg, base, "disable", 3, 10000, "disable", steps=6)
    assert refined["samples"].shape == (1, 4, 8, 8) and torch.isfinite(refined["samples"]).all()
    assert refined["samples"].std() < base["samples"].std()
    (img,) = va.VAEDecode().run(ctx, refined, rvae)
    assert img.shape == (1, 64, 64, 3)


# ------------------------------------------------------------------ upscale models

def test_upscale_model_2x_and_tiled_matches_untiled(ctx):
    (desc,) = lo.UpscaleModelLoader().run(ctx, "tiny_esrgan_x2.pth")
    assert desc.scale == 2
    img = _image(h=48, w=40)
    (out,) = up.ImageUpscaleWithModel().run(ctx, desc, img)
    assert out.shape == (1, 96, 80, 3) and out.min() >= 0 and out.max() <= 1
    from ldm.upscale import upscale_image

    tiled = upscale_image(desc, img, tile=24, overlap=8)
    diff = (tiled - out).abs()
    # ESRGAN's receptive field is local; 8-px overlap: measured mean 2.3e-4, max 0.006
    assert diff.mean() < 1e-3 and diff.max() < 0.05
    progress = [d for e, d in ctx.events if e == "progress"]
    assert progress and progress[-1]["value"] == progress[-1]["max"]


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_malicious_pickle_upscale_file_refused(ctx, paths, tmp_path):
    from ldm.checkpoint import CheckpointError

    marker = tmp_path / "pwned"
    bad = paths.models_dir / "upscale_models" / "evil.pth"
    torch.save({"params": _Boom(str(marker))}, bad)
    with pytest.raises(CheckpointError):
        lo.UpscaleModelLoader().run(ctx, "evil.pth")
    assert not marker.exists(), "the pickle's code ran"
    bad.unlink()


# ------------------------------------------------------------------ progress events

def test_ksampler_progress_and_previews(paths):
    load_all()
    ex = Executor(REGISTRY, paths)
    prompt = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
              "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
              "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
              "3": {"class_type": "KSampler", "inputs": {
                  "model": ["4", 0], "seed": 7, "steps": 5, "cfg": 4.0, "sampler_name": "euler",
                  "scheduler": "normal", "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0],
                  "denoise": 1.0}},
              "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
              "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}
    events = []
    result = ex.execute(prompt, prompt_id="prog", emit=lambda e, d: events.append((e, d)))
    assert result.status == "success", result.error
    progress = [d for e, d in events if e == "progress" and d["node"] == "3"]
    assert [p["value"] for p in progress] == [1, 2, 3, 4, 5] and {p["max"] for p in progress} == {5}
    assert all(p["prompt_id"] == "prog" for p in progress)
    previews = [d for e, d in events if e == "preview"]
    try:
        import ldm.preview  # noqa: F401
    except ImportError:
        assert previews == [], "no preview module, no preview events"
        pytest.skip("ldm/preview.py does not exist yet: preview JPEGs not checked")
    assert len(previews) == 5
    for p in previews:
        assert p["node"] == "3" and isinstance(p["jpeg"], bytes) and p["jpeg"][:2] == b"\xff\xd8"
