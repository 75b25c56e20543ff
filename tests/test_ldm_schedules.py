"""ModelSampling (SD discrete sigma table) and the named sigma schedules against known values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ldm.model_sampling import ModelSampling
from ldm.schedules import SCHEDULER_NAMES, get_sigmas, karras_sigmas


@pytest.fixture(scope="module")
def ms() -> ModelSampling:
    return ModelSampling("eps")


def test_sigma_table_endpoints_match_sd(ms):
    assert float(ms.sigma_max) == pytest.approx(14.6146, abs=1e-4)
    assert float(ms.sigma_min) == pytest.approx(0.0292, abs=1e-4)
    assert ms.sigmas.dtype == torch.float32 and ms.sigmas.shape == (1000,)


def test_sigma_table_matches_diffusers_alphas():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    ref = ((1 - sched.alphas_cumprod) / sched.alphas_cumprod) ** 0.5
    assert torch.allclose(ModelSampling().sigmas, ref.float(), rtol=1e-4)  # diffusers builds betas in float32


def test_timestep_is_nearest_log_sigma_and_sigma_interpolates(ms):
    assert ms.timestep(ms.sigmas[417]).item() == 417
    between = (ms.sigmas[10].log() * 0.4 + ms.sigmas[11].log() * 0.6).exp()
    assert ms.timestep(between).item() == 11
    assert float(ms.sigma(torch.tensor(10.6))) == pytest.approx(float(between), rel=1e-5)
    assert torch.equal(ms.timestep(torch.stack([ms.sigmas[3], ms.sigmas[999]])), torch.tensor([3.0, 999.0]))


def test_percent_to_sigma_semantics(ms):
    assert ms.percent_to_sigma(0.0) == 999999999.9
    assert ms.percent_to_sigma(1.0) == 0.0
    assert ms.percent_to_sigma(0.5) == pytest.approx(float(ms.sigma(torch.tensor(499.5))), rel=1e-6)
    assert ms.percent_to_sigma(0.2) > ms.percent_to_sigma(0.7)


def test_eps_and_v_conversions_recover_x0():
    x0 = torch.randn(2, 4, 3, 3)
    noise = torch.randn_like(x0)
    sigma = torch.tensor([0.5, 3.0])
    s = sigma.reshape(-1, 1, 1, 1)
    x = x0 + noise * s
    eps_ms, v_ms = ModelSampling("eps"), ModelSampling("v")
    assert torch.allclose(eps_ms.calculate_denoised(sigma, noise, x), x0, atol=1e-5)
    v = (noise - s * x0) / (s * s + 1) ** 0.5  # v = α·eps − σ̂·x0 with α = 1/√(1+σ²), σ̂ = σ·α
    assert torch.allclose(v_ms.calculate_denoised(sigma, v, x), x0, atol=1e-5)
    assert torch.allclose(eps_ms.calculate_input(sigma, x), x / (s * s + 1) ** 0.5)
    with pytest.raises(ValueError):
        ModelSampling("flow")


def test_x0_prediction_is_the_denoised_latent_and_samples_like_eps():
    """parameterization "x0": the UNet output is x0 itself; a model predicting x0 and one predicting
    the matching eps give the same denoiser, so every sampler treats them alike."""
    x0_ms, eps_ms = ModelSampling("x0"), ModelSampling("eps")
    sigma = torch.tensor([0.5, 3.0])
    s = sigma.reshape(-1, 1, 1, 1)
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    x0 = 0.3 * torch.tanh(x)  # some prediction of the clean latent
    assert torch.equal(x0_ms.calculate_denoised(sigma, x0, x), x0)
    assert torch.allclose(eps_ms.calculate_denoised(sigma, (x - x0) / s, x), x0, atol=1e-6)
    assert torch.allclose(x0_ms.calculate_input(sigma, x), eps_ms.calculate_input(sigma, x))


def test_noise_scaling_max_denoise(ms):
    latent, noise = torch.ones(1, 4, 2, 2), torch.full((1, 4, 2, 2), 2.0)
    assert torch.allclose(ms.noise_scaling(torch.tensor(3.0), noise, latent), latent + 6.0)
    assert torch.allclose(ms.noise_scaling(torch.tensor(3.0), noise, latent, max_denoise=True),
                          latent + 2.0 * math.sqrt(10.0))
    assert torch.equal(ms.inverse_noise_scaling(torch.tensor(3.0), latent), latent)


def test_scheduler_names_in_comfyui_order():
    # ComfyUI's comfy/samplers.py SCHEDULER_HANDLERS order (SCHEDULER_NAMES = list(SCHEDULER_HANDLERS))
    assert SCHEDULER_NAMES == ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta",
                               "normal", "linear_quadratic", "kl_optimal"]


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("steps", [1, 4, 20])
def test_every_schedule_is_decreasing_and_ends_in_zero(ms, name, steps):
    sig = get_sigmas(name, ms, steps)
    assert sig[-1] == 0 and sig.dtype == torch.float32
    assert torch.all(sig[:-1] > 0)
    assert torch.all(sig[1:] <= sig[:-1])
    if name != "ddim_uniform":
        assert len(sig) <= steps + 1  # beta drops duplicated timesteps
    if name not in ("beta", "ddim_uniform"):
        assert len(sig) == steps + 1


def test_karras_formula(ms):
    sig = get_sigmas("karras", ms, 10)
    rho, smin, smax = 7.0, float(ms.sigma_min), float(ms.sigma_max)
    ramp = np.linspace(0, 1, 10)
    ref = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    assert np.allclose(sig[:-1].numpy(), ref, rtol=1e-5)
    assert torch.equal(karras_sigmas(10, smin, smax), sig)


def test_normal_schedule_endpoints_and_uniform_timesteps(ms):
    sig = get_sigmas("normal", ms, 10)
    assert float(sig[0]) == pytest.approx(14.6146, abs=1e-3)
    assert float(sig[-2]) == pytest.approx(0.0292, abs=1e-4)
    ts = [999 - i * 111 for i in range(10)]
    assert np.allclose(sig[:-1].numpy(), [float(ms.sigma(torch.tensor(float(t)))) for t in ts], rtol=1e-5)


def test_sgm_uniform_drops_the_last_point(ms):
    sig = get_sigmas("sgm_uniform", ms, 4)
    ts = np.linspace(999, 0, 5)[:-1]
    assert np.allclose(sig[:-1].numpy(), [float(ms.sigma(torch.tensor(float(t)))) for t in ts], rtol=1e-5)


def test_exponential_is_uniform_in_log_sigma(ms):
    sig = get_sigmas("exponential", ms, 6)[:-1].double().log()
    diffs = sig[1:] - sig[:-1]
    assert torch.allclose(diffs, diffs.mean().expand_as(diffs), atol=1e-5)


def test_simple_and_ddim_uniform_pick_table_entries(ms):
    simple = get_sigmas("simple", ms, 4)
    assert torch.equal(simple[:-1], ms.sigmas[[999, 749, 499, 249]])
    ddim = get_sigmas("ddim_uniform", ms, 20)
    assert torch.equal(ddim[:-1], ms.sigmas[torch.arange(951, 0, -50)])
    assert len(get_sigmas("ddim_uniform", ms, 7)) == 9  # 1000 % 7 != 0: ComfyUI keeps the extra point


def test_kl_optimal_uniform_in_arctan(ms):
    sig = get_sigmas("kl_optimal", ms, 5)[:-1].double()
    a = torch.atan(sig)
    assert torch.allclose(a[1:] - a[:-1], (a[1] - a[0]).expand(4), atol=1e-5)


def test_beta_and_linear_quadratic_known_shape(ms):
    beta = get_sigmas("beta", ms, 10)
    assert float(beta[0]) == pytest.approx(float(ms.sigma_max))
    lq = get_sigmas("linear_quadratic", ms, 10)
    assert float(lq[0]) == pytest.approx(float(ms.sigma_max))
    # first half linear: equal decrements of threshold_noise/half·sigma_max
    steps = lq[:6].double()
    assert torch.allclose(steps[:-1] - steps[1:], torch.full((5,), 0.025 / 5 * float(ms.sigma_max),
                                                           dtype=torch.float64), rtol=1e-4)


def test_unknown_scheduler_and_bad_steps(ms):
    with pytest.raises(ValueError, match="unknown scheduler"):
        get_sigmas("nope", ms, 4)
    with pytest.raises(ValueError):
        get_sigmas("karras", ms, 0)


def test_karras_matches_diffusers_use_karras_sigmas(ms):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                             use_karras_sigmas=True)
    sched.set_timesteps(15)
    assert torch.allclose(get_sigmas("karras", ms, 15), sched.sigmas.float(), rtol=1e-4, atol=1e-6)
