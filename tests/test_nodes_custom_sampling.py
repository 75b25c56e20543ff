"""The custom-sampling nodes (SamplerCustom, SamplerCustomAdvanced and their NOISE / GUIDER / SAMPLER /
SIGMAS parts) against KSampler on the tiny SD1 checkpoint, bit for bit, and the sigma tools against
hand-computed values."""
from __future__ import annotations

import math
import threading

import pytest
import torch

from engine.context import NodeContext
from engine.errors import Interrupted
from ldm.sample import ksampler_sigmas, prepare_noise
from ldm.schedules import SCHEDULER_NAMES, AYS_NOISE_LEVELS, get_sigmas
from nodes import custom_sampling as cs
from nodes import custom_sigmas as sg
from nodes import sampling as sa
from tests.nodes_model_fixtures import (  # noqa: F401 (cache, ctx, paths, root, sd1 are fixtures)
    ConstModel, _const, _empty, cache, ctx, paths, root, sd1)


def _img2img_latent(seed: int = 5) -> dict:
    """A non-zero raw latent (as VAEEncode gives), so denoise < 1 starts from an image."""
    return {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed)) * 4.0}


def _ksampler(ctx, model, pos, neg, latent, sampler, scheduler, denoise, seed=7, steps=5, cfg=6.0):
    return sa.KSampler().run(ctx, model, seed, steps, cfg, sampler, scheduler, pos, neg, latent, denoise)[0]


def _advanced(ctx, model, pos, neg, latent, sampler, scheduler, denoise, seed=7, steps=5, cfg=6.0):
    noise = cs.RandomNoise().run(ctx, seed)[0]
    guider = cs.CFGGuider().run(ctx, model, pos, neg, cfg)[0]
    chosen = cs.KSamplerSelect().run(ctx, sampler)[0]
    sigmas = sg.BasicScheduler().run(ctx, model, scheduler, steps, denoise)[0]
    return cs.SamplerCustomAdvanced().run(ctx, noise, guider, chosen, sigmas, latent)


CASES = [  # (sampler, scheduler, denoise, img2img): plain, ancestral, SDE (Brownian), each also at denoise < 1
    ("euler", "normal", 1.0, False), ("euler", "karras", 0.6, True),
    ("euler_ancestral", "normal", 1.0, False), ("euler_ancestral", "karras", 0.5, True),
    ("dpmpp_2m_sde", "karras", 1.0, False), ("dpmpp_sde", "normal", 0.7, True),
    ("dpmpp_2m", "exponential", 1.0, False),
    ("ddim_eta", "normal", 1.0, False), ("plms", "karras", 0.6, True),  # rows with table options / history
]


@pytest.mark.parametrize("sampler,scheduler,denoise,img2img", CASES)
def test_sampler_custom_advanced_equals_ksampler_bit_for_bit(ctx, sd1, sampler, scheduler, denoise, img2img):
    model, _clip, _vae, pos, neg = sd1
    latent = _img2img_latent() if img2img else _empty(64, 64)
    want = _ksampler(ctx, model, pos, neg, latent, sampler, scheduler, denoise)
    ksampler_events = len(ctx.events)
    out, denoised = _advanced(ctx, model, pos, neg, latent, sampler, scheduler, denoise)
    assert torch.equal(out["samples"], want["samples"])
    assert denoised["samples"].shape == out["samples"].shape
    # the same progress (one event per step, with previews) as the KSampler run before it
    progress = [d for e, d in ctx.events if e == "progress"]
    assert len(progress) == 2 * 5 and progress[:5] == progress[5:]
    assert len(ctx.events) == 2 * ksampler_events


@pytest.mark.parametrize("sampler,scheduler,denoise,img2img", CASES[1:4])
def test_sampler_custom_equals_ksampler_bit_for_bit(ctx, sd1, sampler, scheduler, denoise, img2img):
    model, _clip, _vae, pos, neg = sd1
    latent = _img2img_latent() if img2img else _empty(64, 64)
    want = _ksampler(ctx, model, pos, neg, latent, sampler, scheduler, denoise)
    sigmas = sg.BasicScheduler().run(ctx, model, scheduler, 5, denoise)[0]
    chosen = cs.KSamplerSelect().run(ctx, sampler)[0]
    out, _ = cs.SamplerCustom().run(ctx, model, True, 7, 6.0, pos, neg, chosen, sigmas, latent)
    assert torch.equal(out["samples"], want["samples"])


def test_sampler_custom_without_noise_equals_ksampler_advanced_disable(ctx, sd1):
    """add_noise off: zero initial noise, yet the sampler's own (ancestral) noise is seeded with noise_seed."""
    model, _clip, _vae, pos, neg = sd1
    latent = _img2img_latent(9)
    want = sa.KSamplerAdvanced().run(ctx, model, "disable", 21, 4, 5.0, "euler_ancestral", "karras", pos, neg,
                                     latent, 0, 10000, "disable")[0]
    sigmas = sg.BasicScheduler().run(ctx, model, "karras", 4, 1.0)[0]
    ancestral = cs.KSamplerSelect().run(ctx, "euler_ancestral")[0]
    out, _ = cs.SamplerCustom().run(ctx, model, False, 21, 5.0, pos, neg, ancestral, sigmas, latent)
    assert torch.equal(out["samples"], want["samples"])


def test_sampler_option_nodes_reach_the_sampler(ctx, sd1):
    """SamplerEulerAncestral at its defaults is KSamplerSelect's euler_ancestral; eta 0 removes the
    ancestral noise (then it is plain euler, bit for bit)."""
    model, _clip, _vae, pos, neg = sd1
    latent, sigmas = _empty(64, 64), sg.BasicScheduler().run(ctx, model, "normal", 4, 1.0)[0]
    noise, guider = cs.RandomNoise().run(ctx, 3)[0], cs.CFGGuider().run(ctx, model, pos, neg, 5.0)[0]

    def run(sampler):
        return cs.SamplerCustomAdvanced().run(ctx, noise, guider, sampler, sigmas, latent)[0]["samples"]

    default = run(cs.SamplerEulerAncestral().run(ctx, 1.0, 1.0)[0])
    assert torch.equal(default, run(cs.KSamplerSelect().run(ctx, "euler_ancestral")[0]))
    assert torch.equal(run(cs.SamplerEulerAncestral().run(ctx, 0.0, 1.0)[0]),
                       run(cs.KSamplerSelect().run(ctx, "euler")[0]))
    assert not torch.equal(run(cs.SamplerEulerAncestral().run(ctx, 0.5, 1.0)[0]), default)
    assert torch.equal(run(cs.SamplerLMS().run(ctx, 4)[0]), run(cs.KSamplerSelect().run(ctx, "lms")[0]))
    sde = cs.SamplerDPMPP_2M_SDE().run(ctx, "midpoint", 1.0, 1.0, "cpu")[0]
    assert sde.name == "dpmpp_2m_sde" and torch.equal(run(sde), run(cs.KSamplerSelect().run(ctx, "dpmpp_2m_sde")[0]))
    assert cs.SamplerDPMPP_SDE().run(ctx, 1.0, 1.0, 0.5, "gpu")[0].name == "dpmpp_sde_gpu"
    assert not torch.equal(run(cs.SamplerDPMPP_SDE().run(ctx, 1.0, 1.0, 0.3, "cpu")[0]),
                           run(cs.KSamplerSelect().run(ctx, "dpmpp_sde")[0]))


def test_denoised_output_is_the_last_x0_and_disable_noise(ctx):
    """ConstModel predicts x0 = the prompt's constant: denoised_output is exactly that constant
    (raw latent space), and with DisableNoise on a zero latent the first model input is zero."""
    model = ConstModel()
    guider = cs.BasicGuider().run(ctx, model, _const(3.0))[0]
    sigmas = torch.tensor([2.0, 1.0, 0.0])
    out, den = cs.SamplerCustomAdvanced().run(ctx, cs.DisableNoise().run(ctx)[0], guider,
                                              cs.KSamplerSelect().run(ctx, "euler")[0], sigmas, _empty(16, 16))
    assert torch.equal(den["samples"], model.latent_format.process_out(torch.full((1, 4, 2, 2), 3.0)))
    assert torch.allclose(out["samples"], den["samples"])
    assert len(model.calls) == 2 and all(shape[0] == 1 for shape, _ in model.calls)  # cfg 1: no uncond pass
    # no step at all: both outputs are the input latent
    latent = _img2img_latent()
    out, den = cs.SamplerCustomAdvanced().run(ctx, cs.RandomNoise().run(ctx, 1)[0], guider,
                                              cs.KSamplerSelect().run(ctx, "euler")[0], torch.zeros(0), latent)
    assert den is out and torch.equal(out["samples"], latent["samples"])


@pytest.mark.parametrize("style,expected", [("regular", 0 + 4 * (1 - 0) + 2 * (3 - 1)),
                                            ("nested", 0 + 4 * (1 + 2 * (3 - 1) - 0))])
def test_dual_cfg_guider_formulas(ctx, style, expected):
    """cond1 → 3, cond2 → 1, negative → 0; cfg_conds 2, cfg_cond2_negative 4."""
    model = ConstModel()
    guider = cs.DualCFGGuider().run(ctx, model, _const(3.0), _const(1.0), _const(0.0), 2.0, 4.0, style)[0]
    _, den = cs.SamplerCustomAdvanced().run(ctx, cs.RandomNoise().run(ctx, 0)[0], guider,
                                            cs.KSamplerSelect().run(ctx, "euler")[0], torch.tensor([1.0, 0.0]),
                                            _empty(16, 16))
    x0 = model.latent_format.process_in(den["samples"])
    assert torch.allclose(x0, torch.full_like(x0, float(expected)))
    # cfg_cond2_negative 1 (regular): the negative prompt is not evaluated at all
    model.calls.clear()
    guider = cs.DualCFGGuider().run(ctx, model, _const(3.0), _const(1.0), _const(0.0), 2.0, 1.0, "regular")[0]
    _, den = cs.SamplerCustomAdvanced().run(ctx, cs.RandomNoise().run(ctx, 0)[0], guider,
                                            cs.KSamplerSelect().run(ctx, "euler")[0], torch.tensor([1.0, 0.0]),
                                            _empty(16, 16))
    assert len(model.calls) == 2
    assert torch.allclose(model.latent_format.process_in(den["samples"]), torch.full((1, 4, 2, 2), 5.0))


def test_random_noise_is_ksamplers_noise_per_batch_index(ctx):
    latent = {"samples": torch.zeros(2, 4, 8, 8), "batch_index": [3, 1]}
    noise = cs.RandomNoise().run(ctx, 11)[0]
    assert torch.equal(noise.generate(latent), prepare_noise(latent["samples"], 11, [3, 1]))
    assert torch.equal(cs.DisableNoise().run(ctx)[0].generate(latent), torch.zeros(2, 4, 8, 8))


def test_interrupt_stops_custom_sampling(paths, cache, sd1):
    model, _clip, _vae, pos, neg = sd1
    stop = threading.Event()
    stop.set()
    ictx = NodeContext(node_id="3", prompt_id="p", prompt={}, paths=paths, models=cache, interrupt=stop)
    with pytest.raises(Interrupted):
        _advanced(ictx, model, pos, neg, _empty(64, 64), "euler", "normal", 1.0)


# ------------------------------------------------------------------------------------ sigma lists
@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_basic_scheduler_is_ldm_schedules(ctx, sd1, scheduler):
    model = sd1[0]
    ms = model.sampling
    assert torch.equal(sg.BasicScheduler().run(ctx, model, scheduler, 9, 1.0)[0], get_sigmas(scheduler, ms, 9))
    assert torch.equal(sg.BasicScheduler().run(ctx, model, scheduler, 6, 0.4)[0],
                       ksampler_sigmas(ms, scheduler, "euler", 6, 0.4))
    assert sg.BasicScheduler().run(ctx, model, scheduler, 6, 0.0)[0].numel() == 0


def test_formula_schedulers_equal_the_named_ones(ctx, sd1):
    model = sd1[0]
    ms = model.sampling
    smax, smin = float(ms.sigma_max), float(ms.sigma_min)
    assert torch.equal(sg.KarrasScheduler().run(ctx, 12, smax, smin, 7.0)[0], get_sigmas("karras", ms, 12))
    assert torch.equal(sg.ExponentialScheduler().run(ctx, 12, smax, smin)[0], get_sigmas("exponential", ms, 12))
    poly = sg.PolyexponentialScheduler().run(ctx, 12, smax, smin, 1.0)[0]
    assert torch.allclose(poly, get_sigmas("exponential", ms, 12), rtol=1e-5)
    poly2 = sg.PolyexponentialScheduler().run(ctx, 3, 8.0, 0.5, 2.0)[0]  # ramp (1, .5, 0)² = (1, .25, 0)
    assert torch.allclose(poly2, torch.tensor([8.0, 0.5 * 16 ** 0.25, 0.5, 0.0]))
    assert torch.equal(sg.BetaSamplingScheduler().run(ctx, model, 12, 0.6, 0.6)[0], get_sigmas("beta", ms, 12))
    assert not torch.equal(sg.BetaSamplingScheduler().run(ctx, model, 12, 0.3, 0.9)[0], get_sigmas("beta", ms, 12))


def test_sd_turbo_scheduler_hand_computed(ctx, sd1):
    """Timesteps 999, 899, ... (10 − int(10·denoise) skipped), sigma = √((1−ᾱ)/ᾱ) of the SD schedule."""
    model = sd1[0]
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    acp = torch.cumprod(1 - betas, 0)
    sigma = lambda t: float(((1 - acp[t]) / acp[t]) ** 0.5)  # noqa: E731
    run = lambda steps, denoise: sg.SDTurboScheduler().run(ctx, model, steps, denoise)[0]  # noqa: E731
    one = run(1, 1.0)
    assert one.dtype == torch.float32 and one.shape == (2,) and one[-1] == 0
    assert abs(float(one[0]) - sigma(999)) < 1e-5 * sigma(999)
    four = run(4, 1.0)
    assert [round(float(s), 4) for s in four] == [round(sigma(t), 4) for t in (999, 899, 799, 699)] + [0.0]
    half = run(2, 0.5)
    assert [round(float(s), 4) for s in half] == [round(sigma(t), 4) for t in (499, 399)] + [0.0]
    # denoise 0.25 starts 8 entries in: only 199 and 99 are left, so 3 steps give 2 (ComfyUI's slice)
    assert run(3, 0.25).tolist() == pytest.approx([sigma(199), sigma(99), 0.0], rel=1e-5)


def test_split_and_flip_sigmas_hand_computed(ctx):
    s = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.0])
    high, low = sg.SplitSigmas().run(ctx, s, 2)
    assert high.tolist() == [10, 5, 2] and low.tolist() == [2, 1, 0]
    high, low = sg.SplitSigmas().run(ctx, s, 0)
    assert high.tolist() == [10] and low.tolist() == s.tolist()
    high, low = sg.SplitSigmas().run(ctx, s, 50)
    assert high.tolist() == s.tolist() and low.tolist() == []
    high, low = sg.SplitSigmasDenoise().run(ctx, s, 0.5)  # 4 steps, the last 2 are "low"
    assert high.tolist() == [10, 5, 2] and low.tolist() == [2, 1, 0]
    high, low = sg.SplitSigmasDenoise().run(ctx, s, 1.0)
    assert high.tolist() == [10] and low.tolist() == s.tolist()
    high, low = sg.SplitSigmasDenoise().run(ctx, s, 0.0)  # ComfyUI's sigmas[:-0] is empty
    assert high.tolist() == [] and low.tolist() == [0]
    flipped = sg.FlipSigmas().run(ctx, s)[0]
    assert flipped.tolist() == pytest.approx([0.0001, 1, 2, 5, 10]) and s.tolist() == [10, 5, 2, 1, 0]
    assert sg.FlipSigmas().run(ctx, torch.tensor([3.0, 1.0]))[0].tolist() == [1.0, 3.0]
    assert sg.FlipSigmas().run(ctx, torch.zeros(0))[0].numel() == 0


def test_align_your_steps_published_levels(ctx):
    sd1_10 = sg.AlignYourStepsScheduler().run(ctx, "SD1", 10, 1.0)[0]
    want = torch.tensor(AYS_NOISE_LEVELS["SD1"][:-1] + (0.0,), dtype=torch.float32)
    assert torch.equal(sd1_10, want)
    xl_20 = sg.AlignYourStepsScheduler().run(ctx, "SDXL", 20, 1.0)[0]
    assert xl_20.shape == (21,) and xl_20[-1] == 0 and bool((xl_20[:-1].diff() < 0).all())
    # log-linear resampling: every other value of 20 steps is a published level (float64 → float32)
    assert torch.allclose(xl_20[0:-1:2], torch.tensor(AYS_NOISE_LEVELS["SDXL"][:-1]), rtol=1e-6)
    tail = sg.AlignYourStepsScheduler().run(ctx, "SD1", 10, 0.5)[0]
    assert tail.tolist() == pytest.approx(list(AYS_NOISE_LEVELS["SD1"][5:-1]) + [0.0])
    assert sg.AlignYourStepsScheduler().run(ctx, "SD1", 10, 0.0)[0].numel() == 0


def test_custom_sigmas_drive_the_sampler(ctx, sd1):
    """SplitSigmas halves run one after the other (DisableNoise for the second) = one full run."""
    model, _clip, _vae, pos, neg = sd1
    sigmas = sg.BasicScheduler().run(ctx, model, "karras", 6, 1.0)[0]
    high, low = sg.SplitSigmas().run(ctx, sigmas, 3)
    guider = cs.CFGGuider().run(ctx, model, pos, neg, 5.0)[0]
    euler = cs.KSamplerSelect().run(ctx, "euler")[0]
    full = cs.SamplerCustomAdvanced().run(ctx, cs.RandomNoise().run(ctx, 4)[0], guider, euler, sigmas, _empty())[0]
    first = cs.SamplerCustomAdvanced().run(ctx, cs.RandomNoise().run(ctx, 4)[0], guider, euler, high, _empty())[0]
    second = cs.SamplerCustomAdvanced().run(ctx, cs.DisableNoise().run(ctx)[0], guider, euler, low, first)[0]
    assert torch.allclose(second["samples"], full["samples"], atol=1e-4)


def test_laplace_vp_and_set_first_sigma_hand_computed(ctx):
    # Laplace quantiles at u = 0, ½, 1: ±beta·log(1e-5) beyond the clamp, and e^mu in the middle
    lap = sg.LaplaceScheduler().run(ctx, 3, 14.614642, 0.0291675, 0.0, 0.5)[0]
    assert lap.tolist() == pytest.approx([14.614642, 1.0, 0.0291675, 0.0], rel=1e-6)
    assert float(sg.LaplaceScheduler().run(ctx, 3, 100.0, 0.001, 1.0, 0.5)[0][1]) == pytest.approx(math.e)
    vp = sg.VPScheduler().run(ctx, 2, 19.9, 0.1, 0.001)[0]
    # float32 exp(x) − 1 near t = eps_s loses ~4 digits (the published formula, kept as is)
    assert vp.tolist() == pytest.approx([math.sqrt(math.exp(19.9 / 2 + 0.1) - 1),
                                         math.sqrt(math.exp(19.9 * 1e-6 / 2 + 1e-4) - 1), 0.0], rel=1e-3)
    s = torch.tensor([10.0, 5.0, 0.0])
    assert sg.SetFirstSigma().run(ctx, s, 136.0)[0].tolist() == [136.0, 5.0, 0.0] and s.tolist() == [10, 5, 0]


def test_add_noise_scales_by_the_sigma_span(ctx, sd1):
    model = sd1[0]
    fmt = model.latent_format
    noise = cs.RandomNoise().run(ctx, 2)[0]
    latent = _img2img_latent()
    n = prepare_noise(latent["samples"], 2)
    out = cs.AddNoise().run(ctx, model, noise, torch.tensor([9.0, 3.0, 1.0]), latent)[0]
    assert torch.allclose(out["samples"], fmt.process_out(fmt.process_in(latent["samples"]) + n * 8.0), atol=1e-5)
    empty = cs.AddNoise().run(ctx, model, noise, torch.tensor([2.0]), _empty(64, 64))[0]
    assert torch.allclose(empty["samples"], fmt.process_out(n * 2.0))  # an empty latent is not scaled in
    assert cs.AddNoise().run(ctx, model, noise, torch.zeros(0), latent)[0] is latent


def test_sampler_er_sde_solver_types(ctx, sd1):
    """ER-SDE at its defaults is KSamplerSelect's er_sde; the ODE type ignores the samplers' noise seed."""
    model, _clip, _vae, pos, neg = sd1
    latent, sigmas = _img2img_latent(), sg.BasicScheduler().run(ctx, model, "karras", 4, 0.8)[0]

    def run(sampler, seed):
        return cs.SamplerCustom().run(ctx, model, False, seed, 4.0, pos, neg, sampler, sigmas, latent)[0]["samples"]

    er = cs.SamplerER_SDE().run(ctx, "ER-SDE", 3, 1.0, 1.0)[0]
    assert torch.equal(run(er, 1), run(cs.KSamplerSelect().run(ctx, "er_sde")[0], 1))
    assert not torch.equal(run(er, 1), run(er, 2))
    ode = cs.SamplerER_SDE().run(ctx, "ODE", 3, 1.0, 1.0)[0]
    assert torch.equal(run(ode, 1), run(ode, 2))
    rev = cs.SamplerER_SDE().run(ctx, "Reverse-time SDE", 3, 0.0, 1.0)[0]  # eta 0 is the ODE too
    assert torch.equal(run(rev, 1), run(ode, 1))


def test_extend_intermediate_sigmas_and_percent_to_sigma(ctx, sd1):
    s = torch.tensor([20.0, 10.0, 4.0, 0.0])
    # steps 2: one midpoint after every sigma in [end_at_sigma, start_at_sigma]
    assert sg.ExtendIntermediateSigmas().run(ctx, s, 2, -1.0, 5.0, "linear")[0].tolist() == [20, 15, 10, 7, 4, 0]
    assert sg.ExtendIntermediateSigmas().run(ctx, s, 2, 15.0, 1.0, "linear")[0].tolist() == [20, 10, 7, 4, 2, 0]
    cosine = sg.ExtendIntermediateSigmas().run(ctx, s, 3, 25.0, 15.0, "cosine")[0]  # x = 1/3, 2/3 → sin(xπ/2)
    assert cosine.tolist() == pytest.approx([20, 20 - 10 * math.sin(math.pi / 6), 20 - 10 * math.sin(math.pi / 3),
                                             10, 4, 0])
    sine = sg.ExtendIntermediateSigmas().run(ctx, s, 2, 25.0, 15.0, "sine")[0]
    assert sine.tolist() == pytest.approx([20, 20 - 10 * (1 - math.cos(math.pi / 4)), 10, 4, 0])
    model = sd1[0]
    ms = model.sampling
    to_sigma = lambda p, actual: sg.SamplingPercentToSigma().run(ctx, model, p, actual)[0]  # noqa: E731
    assert to_sigma(0.0, False) > 1e8 and to_sigma(1.0, False) == 0.0
    assert to_sigma(0.0, True) == pytest.approx(float(ms.sigma_max)) and to_sigma(1.0, True) == pytest.approx(
        float(ms.sigma_min))
    assert to_sigma(0.5, True) == to_sigma(0.5, False) == pytest.approx(float(ms.sigma(torch.tensor(499.5))))


def test_a_guider_is_charged_for_its_conditioning_not_its_model(ctx, sd1):
    """The output cache counts a GUIDER by its conditioning tensors: its model is the loader's output,
    already counted there (a CFGGuider per prompt must not look like a copy of the checkpoint)."""
    from engine.cache import estimate_nbytes

    model, _clip, _vae, pos, neg = sd1
    guider = cs.CFGGuider().run(ctx, model, pos, neg, 5.0)[0]
    conds = sum(c.element_size() * c.nelement() + sum(v.element_size() * v.nelement() for v in o.values()
                                                      if isinstance(v, torch.Tensor)) for c, o in pos + neg)
    assert estimate_nbytes(guider) == 64 + conds < estimate_nbytes(model)


@pytest.mark.parametrize("sampler", ["euler_ancestral", "ddim"])
def test_inpainting_with_a_noise_mask_equals_ksampler(ctx, sd1, sampler):
    """A LATENT's noise_mask reaches the custom path as KSampler's (ddim's fresh known-region noise too)."""
    model, _clip, _vae, pos, neg = sd1
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 8:40] = 1.0
    latent = {**_img2img_latent(3), "noise_mask": mask}
    want = _ksampler(ctx, model, pos, neg, latent, sampler, "normal", 1.0)
    out, _ = _advanced(ctx, model, pos, neg, latent, sampler, "normal", 1.0)
    assert torch.equal(out["samples"], want["samples"]) and out["noise_mask"] is mask
