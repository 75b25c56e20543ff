"""Samplers in the k-diffusion formulation: pure functions over a denoiser and a sigma list, and the
one table that names them.

`steps.py` holds the shared building blocks (to_d, the ancestral split, noise samplers, λ = −log σ,
the callback); every other module is one family of samplers. `SAMPLER_TABLE` below is the only
list of samplers: the names (in ComfyUI's order), the flags the KSampler needs and the dispatch
all come from it. Adding a sampler = its function in a family module + one row here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Literal, Mapping

from torch import Tensor

from ldm.sampling import cfg_pp, ddpm, dpm_solver, dpmpp, euler, multistep, sde, unipc

SamplerFn = Callable[..., Tensor]
Noise = Literal["none", "ancestral", "brownian"]

__all__ = ["SamplerSpec", "SAMPLER_TABLE", "SAMPLER_NAMES", "get_spec", "get_sampler"]


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler: its ComfyUI name, its function and what callers must know about it.

    order: the global order of convergence of a deterministic sampler on the probability-flow ODE
      (error ∝ steps^−order, as the contract test measures it on an analytic Gaussian over 10–40
      Karras steps; None for stochastic and adaptive samplers).
    noise: "ancestral" = fresh N(0, I) per step from a generator seeded with the seed;
      "brownian" = increments of a seeded Brownian tree (torchsde); "none" = deterministic.
    adaptive: the step count is chosen by an error controller, not by len(sigmas).
    discard_penultimate: ComfyUI computes steps + 1 sigmas and drops the penultimate one, because
      the sampler loses accuracy on the last non-zero sigma.
    needs_model_sampling: the function takes `model_sampling=` (its defaults depend on the schedule).
    fresh_inpaint_noise: inpainting re-noises the known region with fresh noise from
      manual_seed(seed + 1) instead of the initial noise (ComfyUI's ddim).
    options: keyword arguments the KSampler passes to fn (a row can be one function with fixed
      settings, e.g. ddim_eta = the ancestral step at eta 0.5); callers that expose the options
      (a custom-sampling node) override them with `sample(..., sampler_options=...)`.
    """

    name: str
    fn: SamplerFn
    order: float | None = None
    noise: Noise = "none"
    adaptive: bool = False
    discard_penultimate: bool = False
    needs_model_sampling: bool = False
    fresh_inpaint_noise: bool = False
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def stochastic(self) -> bool:
        return self.noise != "none"


_A: Noise = "ancestral"
_B: Noise = "brownian"

# ComfyUI 0.3.64's SAMPLER_NAMES order (KSAMPLER_NAMES, then ddim, uni_pc, uni_pc_bh2); the first
# entry is what a new KSampler shows. The *_gpu names are ComfyUI's GPU-noise variants: the same
# computation here (the Brownian tree lives on the CPU in both).
SAMPLER_TABLE: tuple[SamplerSpec, ...] = (
    SamplerSpec("euler", euler.sample_euler, order=1),
    SamplerSpec("euler_cfg_pp", cfg_pp.sample_euler_cfg_pp, order=1),
    SamplerSpec("euler_ancestral", euler.sample_euler_ancestral, noise=_A),
    SamplerSpec("euler_ancestral_cfg_pp", cfg_pp.sample_euler_ancestral_cfg_pp, noise=_A),
    SamplerSpec("heun", euler.sample_heun, order=2),
    SamplerSpec("heunpp2", euler.sample_heunpp2, order=1),
    SamplerSpec("dpm_2", euler.sample_dpm_2, order=2, discard_penultimate=True),
    SamplerSpec("dpm_2_ancestral", euler.sample_dpm_2_ancestral, noise=_A, discard_penultimate=True),
    SamplerSpec("lms", euler.sample_lms, order=3),
    SamplerSpec("dpm_fast", dpm_solver.sample_dpm_fast, order=3),
    SamplerSpec("dpm_adaptive", dpm_solver.sample_dpm_adaptive, adaptive=True),
    SamplerSpec("dpmpp_2s_ancestral", dpmpp.sample_dpmpp_2s_ancestral, noise=_A),
    SamplerSpec("dpmpp_2s_ancestral_cfg_pp", cfg_pp.sample_dpmpp_2s_ancestral_cfg_pp, noise=_A),
    SamplerSpec("dpmpp_sde", dpmpp.sample_dpmpp_sde, noise=_B),
    SamplerSpec("dpmpp_sde_gpu", dpmpp.sample_dpmpp_sde, noise=_B),
    SamplerSpec("dpmpp_2m", dpmpp.sample_dpmpp_2m, order=2),
    SamplerSpec("dpmpp_2m_cfg_pp", cfg_pp.sample_dpmpp_2m_cfg_pp, order=2),
    SamplerSpec("dpmpp_2m_sde", dpmpp.sample_dpmpp_2m_sde, noise=_B),
    SamplerSpec("dpmpp_2m_sde_gpu", dpmpp.sample_dpmpp_2m_sde, noise=_B),
    SamplerSpec("dpmpp_2m_sde_heun", dpmpp.sample_dpmpp_2m_sde_heun, noise=_B),
    SamplerSpec("dpmpp_2m_sde_heun_gpu", dpmpp.sample_dpmpp_2m_sde_heun, noise=_B),
    SamplerSpec("dpmpp_3m_sde", dpmpp.sample_dpmpp_3m_sde, noise=_B),
    SamplerSpec("dpmpp_3m_sde_gpu", dpmpp.sample_dpmpp_3m_sde, noise=_B),
    SamplerSpec("ddpm", ddpm.sample_ddpm, noise=_A),
    SamplerSpec("lcm", ddpm.sample_lcm, noise=_A),
    SamplerSpec("ipndm", multistep.sample_ipndm, order=2),
    SamplerSpec("ipndm_v", multistep.sample_ipndm_v, order=3),
    SamplerSpec("deis", multistep.sample_deis, order=2.5),
    SamplerSpec("res_multistep", multistep.sample_res_multistep, order=2),
    SamplerSpec("res_multistep_cfg_pp", multistep.sample_res_multistep_cfg_pp, order=2),
    SamplerSpec("res_multistep_ancestral", multistep.sample_res_multistep_ancestral, noise=_A),
    SamplerSpec("res_multistep_ancestral_cfg_pp", multistep.sample_res_multistep_ancestral_cfg_pp, noise=_A),
    SamplerSpec("gradient_estimation", multistep.sample_gradient_estimation, order=1),
    SamplerSpec("gradient_estimation_cfg_pp", multistep.sample_gradient_estimation_cfg_pp, order=1),
    SamplerSpec("er_sde", sde.sample_er_sde, noise=_A),
    SamplerSpec("seeds_2", sde.sample_seeds_2, noise=_A),
    SamplerSpec("seeds_3", sde.sample_seeds_3, noise=_A),
    SamplerSpec("sa_solver", sde.sample_sa_solver, noise=_A, needs_model_sampling=True),
    SamplerSpec("sa_solver_pece", sde.sample_sa_solver_pece, noise=_A, needs_model_sampling=True),
    # ComfyUI's ddim is the euler computation (COMPAT.md), with fresh inpainting noise.
    SamplerSpec("ddim", euler.sample_euler, order=1, fresh_inpaint_noise=True),
    SamplerSpec("uni_pc", unipc.sample_uni_pc, order=2.5, discard_penultimate=True),
    SamplerSpec("uni_pc_bh2", unipc.sample_uni_pc_bh2, order=2.5, discard_penultimate=True),
    # Ours, after ComfyUI's names so its order and first entry stay as they are.
    SamplerSpec("plms", multistep.sample_plms, order=2),
    # Stochastic DDIM (Song et al. 2021, eq. 12, σ_t = η·√((1−ᾱ_prev)/(1−ᾱ))·√(1−ᾱ/ᾱ_prev)). With
    # x = x_vp/√ᾱ and σ² = (1−ᾱ)/ᾱ its noise std becomes η·σ_next·√(σ² − σ_next²)/σ and its eps
    # coefficient √(σ_next² − that²): exactly k-diffusion's ancestral split, so the row is the
    # ancestral Euler step. η = 0 is "ddim" and η = 1 "euler_ancestral"; the KSampler, which has
    # no η input, runs 0.5 (one of the η Song et al. tabulate), a setting neither of those rows gives.
    SamplerSpec("ddim_eta", euler.sample_euler_ancestral, noise=_A, options={"eta": 0.5}),
)

SAMPLER_NAMES: list[str] = [spec.name for spec in SAMPLER_TABLE]
_BY_NAME: dict[str, SamplerSpec] = {spec.name: spec for spec in SAMPLER_TABLE}


def get_spec(name: str) -> SamplerSpec:
    """The table row of a ComfyUI sampler name (ValueError listing the known names otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLER_NAMES)}") from None


def get_sampler(name: str) -> SamplerFn:
    """The sampler function registered under a sampler name, with the row's options bound (keyword
    arguments given at the call override them)."""
    spec = get_spec(name)
    return partial(spec.fn, **spec.options) if spec.options else spec.fn
