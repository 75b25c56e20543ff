"""The KSampler computation: noise, sigma slicing, inpainting mask, leftover noise, callbacks, patches."""
from __future__ import annotations

import math

import pytest
import torch

from ldm.sample import SAMPLER_NAMES, SCHEDULER_NAMES, ksampler_sigmas, prepare_noise, sample
from ldm.schedules import get_sigmas
from tests.test_ldm_guidance import EchoModel, cond

SCALE = 0.18215


def run(model, latent, **kw):
    args = dict(noise=None, latent=latent, positive=[cond(1.0)], negative=[cond(0.0)], cfg=1.0,
                sampler_name="euler", scheduler="karras", steps=8, seed=3)
    args.update(kw)
    return sample(model, **args)


def test_names_reexported():
    assert "euler" in SAMPLER_NAMES and "karras" in SCHEDULER_NAMES


def test_prepare_noise_is_comfyui_randn():
    latent = torch.zeros(3, 4, 5, 6)
    ref = torch.randn(latent.shape, dtype=torch.float32, generator=torch.manual_seed(42), device="cpu")
    assert torch.equal(prepare_noise(latent, 42), ref)
    assert not torch.equal(prepare_noise(latent, 43), ref)


def test_prepare_noise_batch_index_draws_per_index():
    latent = torch.zeros(2, 4, 5, 6)
    gen = torch.manual_seed(7)
    draws = [torch.randn([1, 4, 5, 6], generator=gen) for _ in range(4)]
    noise = prepare_noise(latent, 7, batch_index=[3, 1])
    assert torch.equal(noise[0:1], draws[3]) and torch.equal(noise[1:2], draws[1])
    single = prepare_noise(torch.zeros(1, 4, 5, 6), 7, batch_index=[0])
    assert torch.equal(single, draws[0])


def test_denoise_keeps_the_tail_of_a_longer_schedule():
    m = EchoModel()
    full = get_sigmas("normal", m.sampling, 20)
    sig = ksampler_sigmas(m.sampling, "normal", "euler", 10, denoise=0.5)
    assert torch.equal(sig, full[-11:])
    assert ksampler_sigmas(m.sampling, "normal", "euler", 10, denoise=0.0).numel() == 0


def test_start_and_last_step_slicing():
    m = EchoModel()
    full = get_sigmas("karras", m.sampling, 10)
    cut = ksampler_sigmas(m.sampling, "karras", "euler", 10, last_step=4, force_full_denoise=True)
    assert torch.equal(cut[:-1], full[:4]) and cut[-1] == 0
    leftover = ksampler_sigmas(m.sampling, "karras", "euler", 10, last_step=4, force_full_denoise=False)
    assert torch.equal(leftover, full[:5])
    assert torch.equal(ksampler_sigmas(m.sampling, "karras", "euler", 10, start_step=4), full[4:])
    assert ksampler_sigmas(m.sampling, "karras", "euler", 10, start_step=10).numel() == 0


def test_dpm_2_and_uni_pc_drop_the_penultimate_sigma():
    m = EchoModel()
    longer = get_sigmas("karras", m.sampling, 11)
    sig = ksampler_sigmas(m.sampling, "karras", "dpm_2", 10)
    assert len(sig) == 11 and torch.equal(sig, torch.cat([longer[:-2], longer[-1:]]))


def test_txt2img_starts_from_noise_scaled_by_sqrt_one_plus_sigma_squared():
    m = EchoModel(mode="gauss")
    latent = torch.zeros(1, 4, 8, 8)
    run(m, latent, steps=4)
    noise = prepare_noise(latent, 3)
    smax = float(m.sampling.sigma_max)
    assert torch.allclose(m.calls[0]["x"], noise * math.sqrt(1 + smax * smax))


def test_img2img_noises_the_scaled_latent_with_sigma():
    m = EchoModel(mode="gauss")
    latent = torch.full((1, 4, 8, 8), 2.0)
    run(m, latent, steps=4, denoise=0.5)
    sig = ksampler_sigmas(m.sampling, "karras", "euler", 4, denoise=0.5)
    expected = latent * SCALE + prepare_noise(latent, 3) * sig[0]
    assert torch.allclose(m.calls[0]["x"], expected, atol=1e-6)


def test_full_run_reaches_the_data_mean_and_returns_raw_latents():
    m = EchoModel(mode="gauss")
    out = run(m, torch.zeros(4, 4, 16, 16), steps=20, cfg=1.0)
    # model space data ~ N(1, 0.5²); raw = model / 0.18215
    assert abs(float(out.mean()) * SCALE - 1.0) < 0.05
    assert abs(float(out.std()) * SCALE - 0.5) < 0.05
    assert len(m.calls) == 20  # cfg 1: no uncond forwards


def test_cfg_batches_cond_and_uncond_in_one_forward_per_step():
    m = EchoModel(mode="gauss")
    run(m, torch.zeros(1, 4, 8, 8), steps=6, cfg=5.0)
    assert len(m.calls) == 6 and all(c["x"].shape[0] == 2 for c in m.calls)


def test_noise_mask_keeps_the_known_region_exactly():
    m = EchoModel(mode="gauss")
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 64, 64)
    mask[:, :, 32:] = 1.0  # repaint the right half (pixels)
    for sampler in ("euler", "dpmpp_2m", "euler_ancestral"):
        out = run(m, latent, sampler_name=sampler, noise_mask=mask, steps=6)
        assert torch.allclose(out[..., :4], latent[..., :4], atol=1e-6)
        assert not torch.allclose(out[..., 4:], latent[..., 4:], atol=1e-2)


def test_ddim_renoises_the_known_region_with_seed_plus_one_noise():
    """ComfyUI's ddim = euler with random inpainting noise (manual_seed(seed + 1))."""
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 8, 8)
    mask[:, :, 4:] = 1.0
    m_euler, m_ddim = EchoModel(mode="gauss"), EchoModel(mode="gauss")
    run(m_euler, latent, sampler_name="euler", noise_mask=mask, steps=4, denoise=0.5)
    run(m_ddim, latent, sampler_name="ddim", noise_mask=mask, steps=4, denoise=0.5)
    x1_euler, x1_ddim = m_euler.calls[1]["x"], m_ddim.calls[1]["x"]
    sigma1 = ksampler_sigmas(m_euler.sampling, "karras", "euler", 4, denoise=0.5)[1]
    fresh = torch.randn(latent.shape, generator=torch.manual_seed(3 + 1))
    assert torch.allclose(x1_ddim[..., :4], (latent * SCALE + fresh * sigma1)[..., :4], atol=1e-5)
    assert torch.allclose(x1_euler[..., :4], (latent * SCALE + prepare_noise(latent, 3) * sigma1)[..., :4],
                          atol=1e-5)
    assert torch.allclose(x1_ddim[..., 4:], x1_euler[..., 4:])


def test_split_advanced_run_equals_the_full_run():
    """KSamplerAdvanced 0→4 with leftover noise, then 4→10 without new noise = one 10-step run."""
    latent = torch.zeros(1, 4, 8, 8)
    full = run(EchoModel(mode="gauss"), latent, steps=10, cfg=3.0)
    part = run(EchoModel(mode="gauss"), latent, steps=10, cfg=3.0, last_step=4, force_full_denoise=False)
    rest = run(EchoModel(mode="gauss"), part, steps=10, cfg=3.0, start_step=4, disable_noise=True)
    assert torch.allclose(rest, full, atol=1e-4)
    forced = run(EchoModel(mode="gauss"), latent, steps=10, cfg=3.0, last_step=4, force_full_denoise=True)
    assert float((forced - part).abs().max()) > 1.0  # leftover noise is really left over


def test_start_step_past_the_end_returns_the_input():
    latent = torch.randn(1, 4, 8, 8)
    out = run(EchoModel(), latent, steps=5, start_step=5)
    assert torch.equal(out, latent)


def test_callback_each_step_and_exceptions_propagate():
    seen = []
    run(EchoModel(mode="gauss"), torch.zeros(1, 4, 8, 8), steps=5,
        callback=lambda step, total, x0: seen.append((step, total, tuple(x0.shape))))
    assert seen == [(i, 5, (1, 4, 8, 8)) for i in range(5)]

    class Stop(Exception):
        pass

    def interrupt(step, total, x0):
        if step == 1:
            raise Stop()

    m = EchoModel(mode="gauss")
    with pytest.raises(Stop):
        run(m, torch.zeros(1, 4, 8, 8), steps=5, callback=interrupt)
    assert len(m.calls) == 2 and m.patch_depth == 0


def test_sampling_runs_inside_model_patched():
    m = EchoModel(mode="gauss")
    m.require_patched = True
    run(m, torch.zeros(1, 4, 8, 8), steps=3)
    assert m.patch_depth == 0 and len(m.calls) == 3


@pytest.mark.parametrize("sampler", ["dpmpp_sde", "dpmpp_2m_sde", "euler_ancestral"])
def test_stochastic_sampling_is_reproducible_from_the_seed(sampler):
    latent = torch.zeros(1, 4, 8, 8)
    a = run(EchoModel(mode="gauss"), latent, sampler_name=sampler, steps=5, seed=11)
    b = run(EchoModel(mode="gauss"), latent, sampler_name=sampler, steps=5, seed=11)
    c = run(EchoModel(mode="gauss"), latent, sampler_name=sampler, steps=5, seed=12)
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_runs_through_ksampler(sampler):
    out = run(EchoModel(mode="gauss"), torch.zeros(1, 4, 8, 8), sampler_name=sampler, steps=6, cfg=2.0)
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()
    if "cfg_pp" not in sampler:  # CFG++ scales guidance differently (λ ≈ 0..1 ~ cfg 1..12)
        assert abs(float(out.mean()) * SCALE - 2.0) < 0.5  # cfg 2 between means 0 and 1 → 2


# ---------------------------------------------------------------------------- previews
def test_linear_preview_uses_the_rgb_factors():
    from PIL import Image

    from ldm.preview import latent_to_rgb, preview_jpeg
    from tests.test_ldm_guidance import FakeLatentFormat

    fmt = FakeLatentFormat()
    x0 = torch.zeros(1, 4, 4, 6)
    x0[0, 0] = 1.0  # channel 0 only → RGB = factors row 0
    img = latent_to_rgb(x0, fmt)
    assert img.size == (6, 4)
    expected = [round((v + 1) / 2 * 255) for v in fmt.latent_rgb_factors[0]]
    assert list(img.getpixel((2, 1))) == expected
    jpeg = preview_jpeg(x0, fmt, max_size=32)
    im = Image.open(__import__("io").BytesIO(jpeg))
    assert im.format == "JPEG" and max(im.size) == 32


def test_taesd_decoder_round_trips_through_a_file(tmp_path):
    from safetensors.torch import save_file

    from ldm.preview import TAESDDecoder, find_taesd_decoder, latent_to_rgb, load_taesd_decoder

    torch.manual_seed(0)
    dec = TAESDDecoder(width=8)
    keys = set(dec.state_dict())
    assert {"1.weight", "3.conv.0.weight", "3.conv.4.bias", "7.weight", "19.weight"} <= keys
    save_file(dec.state_dict(), str(tmp_path / "taesd_decoder.safetensors"))
    path = find_taesd_decoder([tmp_path / "missing", tmp_path])
    assert path == tmp_path / "taesd_decoder.safetensors"
    assert find_taesd_decoder([tmp_path], family="sdxl") is None
    loaded = load_taesd_decoder(path)
    x0 = torch.randn(1, 4, 5, 7)
    assert torch.allclose(loaded(x0), dec(x0))
    assert latent_to_rgb(x0, None, taesd=loaded).size == (56, 40)


# ---------------------------------------------------------------------------- with the real model class
def _tiny(tiny_dir, name):
    from ldm.checkpoint import load_checkpoint

    model, clip, _ = load_checkpoint(tiny_dir / "checkpoints" / f"{name}.safetensors", output_vae=False)
    return model, clip


@pytest.mark.parametrize("name", ["tiny_sd1", "tiny_sd1_inpaint"])
def test_tiny_checkpoint_samples_deterministically_and_keeps_the_known_region(tiny_dir, name):
    model, clip = _tiny(tiny_dir, name)
    pos, _ = clip.encode("a red square")
    neg, _ = clip.encode("")
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 8, 8)
    mask[:, :, 4:] = 1.0
    kw = dict(noise=None, latent=latent, positive=[[pos, {}]], negative=[[neg, {}]], cfg=4.0,
              sampler_name="euler_ancestral", scheduler="normal", steps=2, seed=9, noise_mask=mask)
    a, b = sample(model, **kw), sample(model, **kw)
    assert a.shape == latent.shape and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert torch.allclose(a[..., :4], latent[..., :4], atol=1e-5)
