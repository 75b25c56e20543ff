"""End-to-end parity: txt2img, img2img and inpaint through OUR nodes equal the same computation done
with diffusers' components on the same tiny SD1 weights and the same noise, so the nodes add no drift.

Who plays which role in the reference:
- diffusers `UNet2DConditionModel` (weights converted by diffusers' own LDM → diffusers conversion):
  the eps predictor;
- diffusers `EulerDiscreteScheduler` (scaled_linear 0.00085..0.012, timestep_spacing "linspace"): the
  sigma schedule, model-input scaling and the Euler step. With 4 steps (and 10 for denoise 0.6 × 6
  steps) the timesteps 999, 666, 333, 0 (999, 888, …) are integers, so "linspace" gives exactly
  ComfyUI's "normal" schedule and the UNet sees the same timesteps;
- diffusers `AutoencoderKL`: encode (posterior mode) and decode (latents ÷ 0.18215);
- the text conditioning tensors are the CLIPTextEncode outputs (our encoder is built from transformers'
  CLIP modules; its parity with transformers is pinned in tests/test_ldm_text.py), fed to both sides.
Noise: COMPAT.md's recipe, `torch.randn(shape, generator=torch.manual_seed(seed))`, scaled by
√(1+σ₀²) for txt2img (ComfyUI, not diffusers' init_noise_sigma) and added as latent + σ₀·noise for
img2img; CFG `uncond + cfg·(cond − uncond)` on eps (equal to ComfyUI's on x0 for eps models).

Tolerances (float32, CPU): latents agree to rtol 1e-4 relative to their scale; decoded pixels (0..1)
to 1e-3. Measured: txt2img latent 3.8e-5 of a max 38 (pixels 6e-7), img2img 5.7e-6 of 5.2 (pixels
1.5e-6), inpaint 7.2e-6 of 5.2 (pixels 2e-6). The random tiny UNet is not a real denoiser, so txt2img latents are large (raw std ~90) and
the decoded txt2img image saturates; img2img/inpaint start at σ ≈ 2 and stay in range.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
from diffusers import EulerDiscreteScheduler  # noqa: E402

from engine.context import NodeContext  # noqa: E402
from engine.cache import ModelCache  # noqa: E402
from engine.paths import Paths  # noqa: E402
from nodes import conditioning as cn  # noqa: E402
from nodes import latent as la  # noqa: E402
from nodes import loaders as lo  # noqa: E402
from nodes import sampling as sa  # noqa: E402
from nodes import vae as va  # noqa: E402
from tests.test_ldm_parity_unet_vae import reference_unet, reference_vae  # noqa: E402

SF = 0.18215
SEED = 123
CFG = 6.0


@pytest.fixture(scope="module")
def setup(tiny_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("parity_nodes")
    paths = Paths(tiny_dir, base / "in", base / "out", base / "tmp", base / "user")
    paths.ensure_dirs()
    ctx = NodeContext(node_id="3", prompt_id="p", prompt={}, paths=paths, models=ModelCache())
    model, clip, vae = lo.CheckpointLoaderSimple().run(ctx, "tiny_sd1.safetensors")
    pos = cn.CLIPTextEncode().run(ctx, "a red circle on a blue background", clip)[0]
    neg = cn.CLIPTextEncode().run(ctx, "blurry", clip)[0]
    ckpt = tiny_dir / "checkpoints" / "tiny_sd1.safetensors"
    unet = reference_unet(ckpt, model.config.unet)
    dvae = reference_vae(ckpt, vae.config)
    return ctx, model, vae, pos, neg, unet, dvae


def _image():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    disc = (((yy - 0.5) ** 2 + (xx - 0.4) ** 2) < 0.06).float()
    return torch.stack([xx, 1 - yy, 0.2 + 0.6 * disc], dim=-1).unsqueeze(0)


def _scheduler(steps):
    s = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                               timestep_spacing="linspace")
    s.set_timesteps(steps)
    s.is_scale_input_called = True  # _eps scales the input itself (see there); silences diffusers' warning
    return s


@torch.no_grad()
def _eps(unet, sched, x, i, pos, neg):
    """CFG eps from the diffusers UNet on [uncond, cond] at step index i (input scaled 1/√(σ²+1), as
    the scheduler's scale_model_input does; that method tracks its own step counter, which the
    masked loop below does not advance, so the scaling is written out)."""
    t, sigma = sched.timesteps[i], sched.sigmas[i]
    inp = torch.cat([x, x]) / (sigma ** 2 + 1) ** 0.5
    ctx = torch.cat([neg[0][0], pos[0][0]])
    out = unet(inp, t, encoder_hidden_states=ctx).sample
    eps_u, eps_c = out.chunk(2)
    return eps_u + CFG * (eps_c - eps_u)


@torch.no_grad()
def _reference(unet, sched, x, start, pos, neg, mask=None, latent=None, noise=None):
    """Euler from step index `start`; with `mask` (1 = repaint) the known region's denoiser input is the
    original latent noised to the current sigma and its prediction the original latent."""
    for i in range(start, len(sched.timesteps)):
        t, sigma = sched.timesteps[i], sched.sigmas[i]
        if mask is None:
            x = sched.step(_eps(unet, sched, x, i, pos, neg), t, x).prev_sample
            continue
        x_in = x * mask + (latent + noise * sigma) * (1 - mask)
        den = (x_in - sigma * _eps(unet, sched, x_in, i, pos, neg)) * mask + latent * (1 - mask)
        x = x + (x - den) / sigma * (sched.sigmas[i + 1] - sigma)
    if mask is not None:
        x = x * mask + latent * (1 - mask)
    return x


def _decode(dvae, z_model):
    with torch.no_grad():
        img = dvae.decode(z_model / SF).sample
    return ((img + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)


def _close(ours, ref, rel=1e-4):
    scale = float(ref.abs().max())
    torch.testing.assert_close(ours, ref, atol=rel * scale, rtol=rel)


def test_txt2img_matches_diffusers(setup):
    ctx, model, vae, pos, neg, unet, dvae = setup
    (empty,) = la.EmptyLatentImage().run(ctx, 64, 64, 1)
    (ours,) = sa.KSampler().run(ctx, model, SEED, 4, CFG, "euler", "normal", pos, neg, empty, 1.0)
    (img,) = va.VAEDecode().run(ctx, ours, vae)

    sched = _scheduler(4)
    noise = torch.randn((1, 4, 8, 8), generator=torch.manual_seed(SEED))
    x = noise * (1 + sched.sigmas[0] ** 2) ** 0.5
    ref = _reference(unet, sched, x, 0, pos, neg)
    _close(ours["samples"] * SF, ref)
    torch.testing.assert_close(img, _decode(dvae, ref), atol=1e-3, rtol=0)
    # a different seed is a different image on both sides (the comparison can fail)
    other = torch.randn((1, 4, 8, 8), generator=torch.manual_seed(SEED + 1)) * (1 + sched.sigmas[0] ** 2) ** 0.5
    assert (_reference(unet, _scheduler(4), other, 0, pos, neg) - ref).abs().max() > 1.0


def test_img2img_matches_diffusers(setup):
    ctx, model, vae, pos, neg, unet, dvae = setup
    pixels = _image()
    (lat,) = va.VAEEncode().run(ctx, pixels, vae)
    (ours,) = sa.KSampler().run(ctx, model, SEED, 6, CFG, "euler", "normal", pos, neg, lat, 0.6)
    (img,) = va.VAEDecode().run(ctx, ours, vae)

    with torch.no_grad():
        z = dvae.encode(pixels.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mode() * SF
    _close(lat["samples"] * SF, z)
    sched = _scheduler(10)  # int(6 / 0.6) = 10 steps, the last 6 of them
    start = 10 - 6
    noise = torch.randn((1, 4, 8, 8), generator=torch.manual_seed(SEED))
    x = z + noise * sched.sigmas[start]
    ref = _reference(unet, sched, x, start, pos, neg)
    _close(ours["samples"] * SF, ref)
    ref_img = _decode(dvae, ref)
    torch.testing.assert_close(img, ref_img, atol=1e-3, rtol=0)
    assert 0.02 < ref_img.mean() < 0.98 and (ref_img - pixels).abs().mean() > 1e-3


def test_inpaint_noise_mask_matches_diffusers(setup):
    ctx, model, vae, pos, neg, unet, dvae = setup
    pixels = _image()
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 8:40] = 1.0
    (lat,) = va.VAEEncode().run(ctx, pixels, vae)
    (masked,) = la.SetLatentNoiseMask().run(ctx, lat, mask)
    (ours,) = sa.KSampler().run(ctx, model, SEED, 6, CFG, "euler", "normal", pos, neg, masked, 0.6)
    (img,) = va.VAEDecode().run(ctx, ours, vae)

    with torch.no_grad():
        z = dvae.encode(pixels.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mode() * SF
    m = torch.nn.functional.interpolate(mask.reshape(1, 1, 64, 64), size=(8, 8), mode="bilinear")
    m = m.expand(1, 4, 8, 8)
    sched = _scheduler(10)
    start = 4
    noise = torch.randn((1, 4, 8, 8), generator=torch.manual_seed(SEED))
    x = z + noise * sched.sigmas[start]
    ref = _reference(unet, sched, x, start, pos, neg, mask=m, latent=z, noise=noise)
    _close(ours["samples"] * SF, ref)
    torch.testing.assert_close(img, _decode(dvae, ref), atol=1e-3, rtol=0)
    assert (ref - z).abs()[m > 0.5].mean() > 1e-2 and (ref - z).abs()[m == 0].max() < 1e-5
