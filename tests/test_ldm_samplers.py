"""Samplers against the exact solution for Gaussian data, against diffusers, and for determinism.

For data ~ N(mu, s²I) the ideal denoiser is D(x, σ) = (s²x + σ²mu)/(s²+σ²) and the
probability-flow ODE from x_T at σ_T is x(σ) = mu + (x_T − mu)·√((s²+σ²)/(s²+σ_T²)), so the
deterministic samplers have a known target and a measurable order of convergence.

The contract tests run over every row of ldm.sampling.SAMPLER_TABLE, so a new sampler is checked
as soon as it has a row: convergence (order, moments or tolerance, as its row says) and a
KSampler run on the tiny SD1 model with one progress callback per step.
"""
from __future__ import annotations

import math

import pytest
import torch

from ldm.checkpoint import load_checkpoint
from ldm.model_sampling import ModelSampling
from ldm.sample import sample
from ldm.sampling import SAMPLER_NAMES, SAMPLER_TABLE, get_sampler, get_spec
from ldm.sampling.steps import BrownianTreeNoiseSampler
from ldm.schedules import get_sigmas, karras_sigmas
from ldm.tiny import write_tiny_checkpoint

MU, S = 0.5, 0.7
SMIN, SMAX = 0.0292, 14.6146


def gauss_denoiser(x, sigma, **_):
    sg = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
    return (S * S * x + sg * sg * MU) / (S * S + sg * sg)


def exact(x_t, sigma_t: float, sigma_end: float):
    return MU + (x_t - MU) * math.sqrt((S * S + sigma_end ** 2) / (S * S + sigma_t ** 2))


def start(sigmas, seed=1, shape=(1, 1, 2, 2)):
    g = torch.Generator().manual_seed(seed)
    return MU + torch.randn(shape, generator=g, dtype=torch.float64) * math.sqrt(S * S + float(sigmas[0]) ** 2)


def positive_sigmas(n: int):
    """n steps of a Karras schedule stopping at sigma_min (no final 0), float64."""
    return karras_sigmas(n + 1, SMIN, SMAX).double()[:-1]


# ---------------------------------------------------------------------------- the contract, per table row
def _measured_order(fn) -> tuple[list[float], float]:
    """Errors at 12/24/48 Karras steps (no final jump to 0; multiples of 3 so dpm_fast's last
    step has the same order each time) and the rate of the last halving."""
    errs = []
    for n in (12, 24, 48):
        sig = positive_sigmas(n)
        x_t = start(sig)
        out = fn(gauss_denoiser, x_t.clone(), sig)
        errs.append(float((out - exact(x_t, float(sig[0]), float(sig[-1]))).abs().max()))
    return errs, math.log2(errs[1] / errs[2])


def _lcm_moments(sig) -> tuple[float, float]:
    """LCM jumps to the MMSE x0 and renoises: mean and std follow a recursion, not N(MU, S²)."""
    mean, var = MU, S * S + float(sig[0]) ** 2
    for s0, s1 in zip(sig[:-1].tolist(), sig[1:].tolist()):
        w = S * S / (S * S + s0 * s0)
        mean, var = w * mean + (1 - w) * MU, w * w * var + s1 * s1
    return mean, math.sqrt(var)


def _check_distribution(spec) -> None:
    """4096 independent pixels after 100 Karras steps: sample mean and std match the target law."""
    sig = karras_sigmas(100, SMIN, SMAX).double()
    x_t = start(sig, seed=5, shape=(1, 1, 64, 64))
    out = get_sampler(spec.name)(gauss_denoiser, x_t.clone(), sig, seed=7)
    mean, std = _lcm_moments(sig) if spec.name == "lcm" else (MU, S)
    assert abs(float(out.mean()) - mean) < 0.04, float(out.mean())
    assert abs(float(out.std()) - std) < 0.04, float(out.std())


def _check_tolerance(spec) -> None:
    """An adaptive sampler's error follows the tolerance it is given."""
    sig = karras_sigmas(20, SMIN, SMAX).double()
    x_t = start(sig, shape=(1, 1, 3, 3))
    target = exact(x_t, float(sig[0]), float(sig[-2]))
    errs = [float((get_sampler(spec.name)(gauss_denoiser, x_t.clone(), sig, rtol=r, atol=r / 10) - target)
                  .abs().max())
            for r in (1e-2, 1e-4)]
    assert errs[1] < errs[0] / 10, errs


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_sampler_converges_on_the_analytic_gaussian(name):
    """Deterministic rows: the measured order of convergence reaches the row's `order`; stochastic
    rows: the output has the data distribution's moments; adaptive rows: error tracks tolerance."""
    spec = get_spec(name)
    if spec.stochastic:
        _check_distribution(spec)
    elif spec.adaptive:
        _check_tolerance(spec)
    else:
        errs, rate = _measured_order(get_sampler(name))
        assert errs[2] < errs[1] < errs[0], errs
        assert rate > spec.order - 0.35, (errs, rate)


def test_every_row_says_how_it_converges():
    for spec in SAMPLER_TABLE:
        kinds = [spec.stochastic, spec.adaptive, spec.order is not None]
        assert kinds.count(True) == 1, spec
    assert len(set(SAMPLER_NAMES)) == len(SAMPLER_TABLE)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The tiny SD1 checkpoint loaded the real way (UNet only) and a random text context."""
    path = write_tiny_checkpoint("tiny_sd1", tmp_path_factory.mktemp("ckpt") / "tiny_sd1.safetensors")
    model, _, _ = load_checkpoint(path, output_vae=False, output_clip=False)
    ctx = torch.randn(2, 77, model.config.unet.context_dim, generator=torch.Generator().manual_seed(0))
    return model, [[ctx[:1], {}]], [[ctx[1:], {}]]


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_sampler_runs_through_ksampler_with_one_callback_per_step(name, tiny_model):
    model, positive, negative = tiny_model
    steps, seen = 4, []
    out = sample(model, noise=None, latent=torch.zeros(1, 4, 8, 8), positive=positive, negative=negative,
                 cfg=3.0, sampler_name=name, scheduler="karras", steps=steps, seed=1,
                 callback=lambda step, total, x0: seen.append((step, total, tuple(x0.shape))))
    assert out.shape == (1, 4, 8, 8) and bool(torch.isfinite(out).all())
    assert {total for _, total, _ in seen} == {steps} and {shape for *_, shape in seen} == {(1, 4, 8, 8)}
    indices = [step for step, _, _ in seen]
    if get_spec(name).adaptive:  # as many steps as the controller takes, reported up to the last
        assert indices == sorted(indices) and indices[0] == 0 and indices[-1] == steps - 1
    elif name == "dpm_fast":  # its sigma count is the NFE budget, spent on 3rd-order steps (as ComfyUI)
        assert indices == list(range(len(indices))) and 1 <= len(indices) < steps
    else:
        assert indices == list(range(steps))


@pytest.mark.parametrize("name", ["euler", "heun", "dpm_2", "lms", "dpmpp_2m", "ipndm", "ipndm_v", "deis", "plms",
                                  "res_multistep", "uni_pc", "uni_pc_bh2", "dpm_fast", "dpm_adaptive"])
def test_deterministic_sampler_reaches_the_ode_solution_at_zero(name):
    sig = karras_sigmas(60, SMIN, SMAX).double()
    x_t = start(sig, shape=(2, 1, 3, 3))
    opts = {"rtol": 1e-4, "atol": 1e-5} if name == "dpm_adaptive" else {}
    out = get_sampler(name)(gauss_denoiser, x_t.clone(), sig, **opts)
    # dpm_fast/adaptive stop at the last non-zero sigma and UniPC at 0.001, as in ComfyUI
    end = {"dpm_fast": float(sig[-2]), "dpm_adaptive": float(sig[-2]), "uni_pc": 1e-3, "uni_pc_bh2": 1e-3}
    target = exact(x_t, float(sig[0]), end.get(name, 0.0))
    tol = {"euler": 0.1}.get(name, 5e-3)
    assert torch.allclose(out, target, atol=tol), float((out - target).abs().max())


def test_dpm_solver_single_steps_have_local_order_p_plus_1():
    from ldm.sampling.dpm_solver import _DPMSolver

    x = start(torch.tensor([3.0]), shape=(1, 1, 2, 2))
    solver = _DPMSolver(gauss_denoiser, x, {}, None)
    t = torch.tensor(-math.log(3.0), dtype=torch.float64)
    for order in (1, 2, 3):
        errs = []
        for h in (0.4, 0.2):
            out = solver.step(order, x, t, t + h, solver.eps(x, t))
            errs.append(float((out - exact(x, 3.0, math.exp(-float(t + h)))).abs().max()))
        assert math.log2(errs[0] / errs[1]) > order + 0.8, (order, errs)


def test_dpm_fast_error_drops_with_more_evaluations():
    errs = []
    for n in (6, 24):
        sig = positive_sigmas(n)
        x_t = start(sig)
        out = get_sampler("dpm_fast")(gauss_denoiser, x_t.clone(), sig)
        errs.append(float((out - exact(x_t, float(sig[0]), float(sig[-1]))).abs().max()))
    assert errs[1] < errs[0] / 20


STOCHASTIC = [spec.name for spec in SAMPLER_TABLE if spec.stochastic]


@pytest.mark.parametrize("name", ["dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"])
def test_sde_samplers_without_noise_solve_the_ode(name):
    """eta = 0 turns the SDE solvers into multistep ODE solvers (global order 2: 1st-order start-up step)."""
    errs = []
    for n in (40, 80):
        sig = positive_sigmas(n)
        x_t = start(sig)
        out = get_sampler(name)(gauss_denoiser, x_t.clone(), sig, eta=0.0, seed=1)
        errs.append(float((out - exact(x_t, float(sig[0]), float(sig[-1]))).abs().max()))
    assert math.log2(errs[0] / errs[1]) > 1.6, errs


def test_ddpm_equals_euler_ancestral_in_k_space():
    """The DDPM posterior step and the eta=1 ancestral Euler step are the same update."""
    sig = karras_sigmas(8, SMIN, SMAX).double()
    x_t = start(sig, shape=(1, 2, 4, 4))
    a = get_sampler("ddpm")(gauss_denoiser, x_t.clone(), sig, seed=3)
    b = get_sampler("euler_ancestral")(gauss_denoiser, x_t.clone(), sig, seed=3)
    assert torch.allclose(a, b, atol=1e-9)


def test_lcm_returns_the_last_denoised_and_renoises_between_steps():
    sig = karras_sigmas(4, SMIN, SMAX).double()
    x_t = start(sig, seed=5, shape=(1, 1, 64, 64))
    seen = []
    out = get_sampler("lcm")(gauss_denoiser, x_t.clone(), sig, seed=7, callback=lambda d: seen.append(d))
    assert torch.equal(out, seen[-1]["denoised"])
    assert abs(float(out.mean()) - MU) < 0.04
    resid = seen[1]["x"] - seen[0]["denoised"]  # fresh N(0, sigma_1²) noise
    assert abs(float(resid.std()) / float(sig[1]) - 1) < 0.05


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_sampler_is_deterministic_given_seed(name):
    sig = karras_sigmas(6, SMIN, SMAX)
    x_t = start(sig, shape=(1, 4, 8, 8)).float()
    a = get_sampler(name)(gauss_denoiser, x_t.clone(), sig, seed=123)
    b = get_sampler(name)(gauss_denoiser, x_t.clone(), sig, seed=123)
    c = get_sampler(name)(gauss_denoiser, x_t.clone(), sig, seed=124)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_ancestral_noise_comes_from_a_generator_seeded_with_seed():
    sig = torch.tensor([2.0, 1.0, 0.0])
    x = torch.zeros(1, 4, 4, 4)
    zero = lambda x, sigma, **_: torch.zeros_like(x)  # noqa: E731 - denoiser that predicts 0
    out = get_sampler("euler_ancestral")(zero, x, sig, seed=42)
    # step 1: x → 0 (d = 0 ... x is 0) then + noise·sigma_up; step 2 to 0 returns denoised = 0
    assert torch.equal(out, torch.zeros_like(out))
    seen = []
    get_sampler("euler_ancestral")(zero, x, torch.tensor([2.0, 1.0, 0.5]), seed=42,
                                   callback=lambda d: seen.append(d["x"].clone()))
    gen = torch.Generator().manual_seed(42)
    first = torch.randn(x.shape, generator=gen)
    up = (1.0 * (4.0 - 1.0) / 4.0) ** 0.5
    assert torch.allclose(seen[1], first * up, atol=1e-6)


def test_brownian_noise_is_unit_variance_and_reproducible():
    x = torch.zeros(1, 1, 64, 64)
    a = BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=3)(torch.tensor(5.0), torch.tensor(4.0))
    b = BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=3)(torch.tensor(5.0), torch.tensor(4.0))
    assert torch.equal(a, b)
    assert abs(float(a.std()) - 1.0) < 0.1


def test_sampler_names_follow_comfyui_order_and_cover_the_common_block():
    required = ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral",
                "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc", "uni_pc_bh2",
                "lcm", "ddpm", "ipndm", "deis", "heunpp2", "dpm_fast", "dpm_adaptive", "res_multistep"]
    assert set(required) <= set(SAMPLER_NAMES)
    assert SAMPLER_NAMES[:4] == ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp"]
    # ComfyUI's list ends with ddim, uni_pc, uni_pc_bh2; our own samplers come after it
    assert SAMPLER_NAMES[SAMPLER_NAMES.index("ddim"):] == ["ddim", "uni_pc", "uni_pc_bh2", "plms", "ddim_eta"]
    assert all(callable(get_sampler(n)) for n in SAMPLER_NAMES)


def test_callback_reports_each_step():
    sig = karras_sigmas(5, SMIN, SMAX)
    seen = []
    get_sampler("heun")(gauss_denoiser, start(sig).float(), sig, callback=lambda d: seen.append(d))
    assert [d["i"] for d in seen] == list(range(5))
    assert set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}


# ---------------------------------------------------------------------------- diffusers as reference
def _eps_model(x_k, sigma):
    return (x_k - gauss_denoiser(x_k, sigma.reshape(1))) / sigma


def _run_diffusers_k(sched, x_k, steps=None):
    """Loop of a k-space diffusers scheduler (input scaled by 1/√(σ²+1)); sigma recovered from the scaling."""
    for t in sched.timesteps[:steps]:
        x_in = sched.scale_model_input(x_k, t)
        sigma = ((x_k / x_in) ** 2 - 1).mean().sqrt()
        x_k = sched.step(_eps_model(x_k, sigma), t, x_k).prev_sample
    return x_k


SD_SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


@pytest.mark.parametrize("cls_name,sampler,karras", [
    ("EulerDiscreteScheduler", "euler", False), ("EulerDiscreteScheduler", "euler", True),
    ("HeunDiscreteScheduler", "heun", False), ("LMSDiscreteScheduler", "lms", False),
    ("KDPM2DiscreteScheduler", "dpm_2", False), ("LMSDiscreteScheduler", "lms", True)])
def test_matches_diffusers_k_scheduler(cls_name, sampler, karras):
    diffusers = pytest.importorskip("diffusers")
    sched = getattr(diffusers, cls_name)(**SD_SCHED, use_karras_sigmas=karras)
    sched.set_timesteps(12)
    sig = torch.unique_consecutive(sched.sigmas.double())  # Heun/KDPM2 repeat each sigma
    x_t = start(sig, shape=(1, 1, 3, 3))
    seen = []
    ours = get_sampler(sampler)(gauss_denoiser, x_t.clone(), sig, callback=seen.append)
    if sampler == "lms":
        # ComfyUI (PR #8780, 2025-07) ends LMS with the denoising step x = D(x, σ_last) instead of an
        # Adams–Bashforth step to 0 (diffusers): compare the trajectory up to the last step, then that.
        theirs = _run_diffusers_k(sched, x_t.clone(), steps=-1)
        assert torch.allclose(seen[-1]["x"], theirs.double(), atol=2e-4, rtol=1e-4)
        assert torch.equal(ours, seen[-1]["denoised"])
        return
    theirs = _run_diffusers_k(sched, x_t.clone())
    assert torch.allclose(ours, theirs.double(), atol=2e-4, rtol=1e-4), float((ours - theirs).abs().max())


@pytest.mark.parametrize("karras", [False, True])
def test_dpmpp_2m_matches_diffusers_dpmsolver_multistep(karras):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DPMSolverMultistepScheduler(**SD_SCHED, use_karras_sigmas=karras, final_sigmas_type="zero")
    sched.set_timesteps(10)
    sig = sched.sigmas.double()
    x_k = start(sig, shape=(1, 1, 3, 3))
    ours = get_sampler("dpmpp_2m")(gauss_denoiser, x_k.clone(), sig)
    x_vp = x_k / torch.sqrt(1 + sig[0] ** 2)
    for i, t in enumerate(sched.timesteps):
        sigma = sig[i]
        x_now = x_vp * torch.sqrt(1 + sigma ** 2)
        x_vp = sched.step(_eps_model(x_now, sigma), t, x_vp).prev_sample.double()
    assert torch.allclose(ours, x_vp, atol=2e-4), float((ours - x_vp).abs().max())


def test_ddim_on_ddim_uniform_matches_diffusers_ddim():
    diffusers = pytest.importorskip("diffusers")
    ms = ModelSampling()
    sched = diffusers.DDIMScheduler(**SD_SCHED, steps_offset=1, set_alpha_to_one=True, clip_sample=False)
    sched.set_timesteps(20)
    sig = get_sigmas("ddim_uniform", ms, 20).double()
    assert [int(t) for t in sched.timesteps] == [int(ms.timestep(s)) for s in sig[:-1]]
    x_k = start(sig, shape=(1, 1, 3, 3))
    ours = get_sampler("ddim")(gauss_denoiser, x_k.clone(), sig)
    x_vp = x_k / torch.sqrt(1 + sig[0] ** 2)
    for i, t in enumerate(sched.timesteps):
        x_now = x_vp * torch.sqrt(1 + sig[i] ** 2)
        x_vp = sched.step(_eps_model(x_now, sig[i]), t, x_vp, eta=0.0).prev_sample.double()
    assert torch.allclose(ours, x_vp, atol=2e-4), float((ours - x_vp).abs().max())


# ---------------------------------------------------------------------------- PLMS and DDIM(η) vs diffusers
# The LDM code's grid: DDIM timesteps 1, 1+k, ... ("leading" + steps_offset 1) and a last step to
# ᾱ_0 (set_alpha_to_one=False); with ᾱ = 1 at the end it is the KSampler's ddim_uniform list, ending at σ = 0. The model is an analytic function of (x_vp, t): the
# Gaussian-data eps plus a term that depends on x nonlinearly and on t directly, so a wrong
# timestep, history slot or coefficient moves the result far beyond the tolerance.
LDM_SCHED = dict(SD_SCHED, steps_offset=1)
LDM_MS = ModelSampling()


def _ldm_eps(x_vp, t):
    t = torch.as_tensor(t).reshape(-1).long()
    a = LDM_MS.alphas_cumprod.double()[t].reshape(-1, *([1] * (x_vp.ndim - 1)))
    ideal = (1 - a).sqrt() * (x_vp - a.sqrt() * MU) / (a * S * S + 1 - a)
    return ideal + 0.2 * torch.tanh(2 * x_vp) * torch.cos(t.reshape(a.shape) / 50.0)


def _ldm_denoiser(x, sigma, **_):
    """The eps model seen through ModelSampling as samplers see a UNet (c_in, nearest timestep)."""
    eps = _ldm_eps(LDM_MS.calculate_input(sigma, x), LDM_MS.timestep(sigma))
    return LDM_MS.calculate_denoised(sigma, eps, x)


def _ours_on_diffusers_grid(name, sched, steps, x_vp, **opts):
    """Run our sampler on the sigmas of diffusers' timesteps (its ᾱ table) in VE space; VP result."""
    ts = torch.unique_consecutive(sched.timesteps).long()
    assert [int(LDM_MS.timestep(s)) for s in get_sigmas("ddim_uniform", LDM_MS, steps)[:-1]] == ts.tolist()
    ac = sched.alphas_cumprod.double()
    a = torch.cat([ac[ts], torch.as_tensor(sched.final_alpha_cumprod, dtype=torch.float64).reshape(1)])
    sig = ((1 - a) / a).sqrt()
    out = get_sampler(name)(_ldm_denoiser, x_vp * (1 + sig[0] ** 2).sqrt(), sig, **opts)
    return out / (1 + sig[-1] ** 2).sqrt()


@pytest.mark.parametrize("steps,to_zero", [(4, False), (10, False), (50, False), (10, True)])
def test_plms_matches_diffusers_pndm_without_prk_steps(steps, to_zero):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.PNDMScheduler(**LDM_SCHED, skip_prk_steps=True, set_alpha_to_one=to_zero)
    sched.set_timesteps(steps)
    x_vp = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = _ours_on_diffusers_grid("plms", sched, steps, x_vp)
    theirs = x_vp.clone()
    for t in sched.timesteps:  # the first timestep after the start is repeated: the Heun corrector
        theirs = sched.step(_ldm_eps(theirs, t), t, theirs).prev_sample
    assert float((ours - theirs).abs().max()) <= 1e-4, float((ours - theirs).abs().max())


@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_eta_matches_diffusers_ddim_with_the_same_noise(steps):
    """The same z_t enters both: diffusers' variance_noise and our noise_sampler, one per step."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(**LDM_SCHED, set_alpha_to_one=False, clip_sample=False)
    sched.set_timesteps(steps)
    x_vp = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    zs = torch.randn(steps, 1, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    drawn = iter(zs)
    ours = _ours_on_diffusers_grid("ddim_eta", sched, steps, x_vp, noise_sampler=lambda *_: next(drawn))
    assert next(drawn, None) is None  # one draw per step, the last one included
    theirs = x_vp.clone()
    for i, t in enumerate(sched.timesteps):
        theirs = sched.step(_ldm_eps(theirs, t), t, theirs, eta=0.5, variance_noise=zs[i]).prev_sample
    assert float((ours - theirs).abs().max()) <= 1e-4, float((ours - theirs).abs().max())


def test_ddim_eta_option_reaches_the_sampler_through_ksampler(tiny_model):
    """KSampler runs the row's default eta; sample(sampler_options=) overrides it, and eta 0 is ddim."""
    model, positive, negative = tiny_model
    run = dict(noise=None, latent=torch.zeros(1, 4, 8, 8), positive=positive, negative=negative, cfg=3.0,
               scheduler="ddim_uniform", steps=5, seed=3)
    default = sample(model, sampler_name="ddim_eta", **run)
    half = sample(model, sampler_name="ddim_eta", sampler_options={"eta": 0.5}, **run)
    other = sample(model, sampler_name="ddim_eta", sampler_options={"eta": 0.2}, **run)
    zero = sample(model, sampler_name="ddim_eta", sampler_options={"eta": 0.0}, **run)
    assert get_spec("ddim_eta").options == {"eta": 0.5}
    assert torch.equal(default, half) and not torch.allclose(default, other)
    assert torch.allclose(zero, sample(model, sampler_name="ddim", **run), atol=1e-6)


# ---------------------------------------------------------------------------- CFG++
@pytest.mark.parametrize("pp,plain", [("euler_cfg_pp", "euler"), ("dpmpp_2m_cfg_pp", "dpmpp_2m"),
                                      ("euler_ancestral_cfg_pp", "euler_ancestral")])
def test_cfg_pp_without_guidance_is_the_plain_sampler(pp, plain):
    sig = karras_sigmas(8, SMIN, SMAX).double()
    x_t = start(sig, shape=(1, 2, 4, 4))
    a = get_sampler(pp)(gauss_denoiser, x_t.clone(), sig, seed=4)
    b = get_sampler(plain)(gauss_denoiser, x_t.clone(), sig, seed=4)
    assert torch.allclose(a, b, atol=1e-9)


def test_euler_cfg_pp_renoises_along_the_uncond_prediction():
    from ldm.guidance import CFGDenoiser
    from tests.test_ldm_guidance import EchoModel, cond

    den = CFGDenoiser(EchoModel(mode="gauss"), [cond(1.0)], [cond(0.0)], 1.5)
    sig = torch.tensor([3.0, 1.0])
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    out = get_sampler("euler_cfg_pp")(den, x.clone(), sig)
    s2 = 0.25
    d_cond = (s2 * x + 9.0 * 1.0) / (s2 + 9.0)
    d_uncond = (s2 * x) / (s2 + 9.0)
    guided = d_uncond + 1.5 * (d_cond - d_uncond)
    assert torch.allclose(out, guided + (x - d_uncond) / 3.0 * 1.0, atol=1e-5)
