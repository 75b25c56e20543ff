"""SIGMAS producers and tools of ComfyUI's custom-sampling family: the schedulers (a named schedule
of ldm.schedules, or a formula with its parameters exposed) and split/flip.

A SIGMAS value is a 1-D float32 tensor of decreasing noise levels ending in 0 (ARCHITECTURE.md §1).
Names, inputs, defaults and ranges are ComfyUI 0.3.64's (comfy_extras/nodes_custom_sampler.py and
nodes_align_your_steps.py).
"""
from __future__ import annotations

from ldm.custom_sampling import (SPACINGS, basic_sigmas, extend_intermediate_sigmas, flip_sigmas, percent_to_sigma,
                                 sd_turbo_sigmas, set_first_sigma, split_sigmas, split_sigmas_denoise)
from ldm.schedules import (AYS_NOISE_LEVELS, align_your_steps_sigmas, beta_sigmas, exponential_sigmas,
                           karras_sigmas, laplace_sigmas, polyexponential_sigmas, vp_sigmas)
from nodes.registry import Boolean, Combo, Float, In, Int, Out, node
from nodes.sampling import SCHEDULER_OPTIONS

SCHEDULERS = "sampling/custom_sampling/schedulers"
SIGMAS = "sampling/custom_sampling/sigmas"
# SD1/SDXL's sigma range (ComfyUI's defaults for the formula schedulers)
SIGMA_MAX, SIGMA_MIN = 14.614642, 0.0291675


def _param(name: str, default: float, max: float = 5000.0, min: float = 0.0,  # noqa: A002 - ComfyUI's names
           step: float = 0.01):
    """A schedule parameter as ComfyUI declares them (unrounded)."""
    return Float(name, default, min=min, max=max, step=step, round=False)


def _steps(default: int = 20, max: int = 10000):  # noqa: A002
    return Int("steps", default, min=1, max=max)


def _denoise():
    return Float("denoise", 1.0, min=0.0, max=1.0, step=0.01)


@node(SCHEDULERS, display_name="BasicScheduler")
class BasicScheduler:
    """The sigmas of a named schedule for the model (KSampler's, denoise included)."""

    INPUTS = [In("model", "MODEL"), Combo("scheduler", SCHEDULER_OPTIONS), _steps(), _denoise()]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, model, scheduler, steps, denoise):
        return (basic_sigmas(model.sampling, scheduler, steps, denoise),)


@node(SCHEDULERS, display_name="KarrasScheduler")
class KarrasScheduler:
    """Karras et al. (2022): sigmas uniform in sigma^(1/rho)."""

    INPUTS = [_steps(), _param("sigma_max", SIGMA_MAX), _param("sigma_min", SIGMA_MIN), _param("rho", 7.0, 100.0)]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, steps, sigma_max, sigma_min, rho):
        return (karras_sigmas(steps, sigma_min, sigma_max, rho),)


@node(SCHEDULERS, display_name="ExponentialScheduler")
class ExponentialScheduler:
    """Sigmas uniform in log sigma."""

    INPUTS = [_steps(), _param("sigma_max", SIGMA_MAX), _param("sigma_min", SIGMA_MIN)]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, steps, sigma_max, sigma_min):
        return (exponential_sigmas(steps, sigma_min, sigma_max),)


@node(SCHEDULERS, display_name="PolyexponentialScheduler")
class PolyexponentialScheduler:
    """Log sigma along a ramp raised to rho (rho 1 = exponential)."""

    INPUTS = [_steps(), _param("sigma_max", SIGMA_MAX), _param("sigma_min", SIGMA_MIN), _param("rho", 1.0, 100.0)]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, steps, sigma_max, sigma_min, rho):
        return (polyexponential_sigmas(steps, sigma_min, sigma_max, rho),)


@node(SCHEDULERS, display_name="LaplaceScheduler")
class LaplaceScheduler:
    """Log sigma at the quantiles of a Laplace(mu, beta) law."""

    INPUTS = [_steps(), _param("sigma_max", SIGMA_MAX), _param("sigma_min", SIGMA_MIN),
              _param("mu", 0.0, 10.0, min=-10.0, step=0.1), _param("beta", 0.5, 10.0, step=0.1)]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, steps, sigma_max, sigma_min, mu, beta):
        return (laplace_sigmas(steps, sigma_min, sigma_max, mu, beta),)


@node(SCHEDULERS, display_name="VPScheduler")
class VPScheduler:
    """The continuous variance-preserving SDE's noise levels."""

    INPUTS = [_steps(), _param("beta_d", 19.9), _param("beta_min", 0.1), _param("eps_s", 0.001, 1.0, step=0.0001)]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, steps, beta_d, beta_min, eps_s):
        return (vp_sigmas(steps, beta_d, beta_min, eps_s),)


@node(SCHEDULERS, display_name="SDTurboScheduler")
class SDTurboScheduler:
    """SD/SDXL Turbo's few-step schedule (timesteps 999, 899, ...; 1 step is the usual choice)."""

    INPUTS = [In("model", "MODEL"), _steps(1, 10), Float("denoise", 1.0, min=0, max=1.0, step=0.01)]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, model, steps, denoise):
        return (sd_turbo_sigmas(model.sampling, steps, denoise),)


@node(SCHEDULERS, display_name="BetaSamplingScheduler")
class BetaSamplingScheduler:
    """Timesteps at the quantiles of a Beta(alpha, beta) law (the "beta" schedule, parameters exposed)."""

    INPUTS = [In("model", "MODEL"), _steps(), _param("alpha", 0.6, 50.0), _param("beta", 0.6, 50.0)]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, model, steps, alpha, beta):
        return (beta_sigmas(model.sampling, steps, alpha, beta),)


@node(SCHEDULERS, display_name="AlignYourStepsScheduler")
class AlignYourStepsScheduler:
    """NVIDIA's "Align Your Steps" noise levels for SD1, SDXL or SVD, resampled to the step count."""

    INPUTS = [Combo("model_type", list(AYS_NOISE_LEVELS)), _steps(10), _denoise()]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, model_type, steps, denoise):
        return (align_your_steps_sigmas(model_type, steps, denoise),)


@node(SIGMAS, display_name="SplitSigmas")
class SplitSigmas:
    """Splits a sigma list at a step: both halves hold the sigma of that step."""

    INPUTS = [In("sigmas", "SIGMAS"), Int("step", 0, min=0, max=10000)]
    OUTPUTS = [Out("SIGMAS", "high_sigmas"), Out("SIGMAS", "low_sigmas")]

    def run(self, ctx, sigmas, step):
        return split_sigmas(sigmas, step)


@node(SIGMAS, display_name="SplitSigmasDenoise")
class SplitSigmasDenoise:
    """Splits a sigma list so the low part holds the last denoise fraction of the steps."""

    INPUTS = [In("sigmas", "SIGMAS"), _denoise()]
    OUTPUTS = [Out("SIGMAS", "high_sigmas"), Out("SIGMAS", "low_sigmas")]

    def run(self, ctx, sigmas, denoise):
        return split_sigmas_denoise(sigmas, denoise)


@node(SIGMAS, display_name="FlipSigmas")
class FlipSigmas:
    """Reverses a sigma list (noise → image becomes image → noise; a leading 0 becomes 0.0001)."""

    INPUTS = [In("sigmas", "SIGMAS")]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, sigmas):
        return (flip_sigmas(sigmas),)


@node(SIGMAS, display_name="SetFirstSigma")
class SetFirstSigma:
    """Replaces the first sigma of a list (e.g. to start from more or less noise)."""

    INPUTS = [In("sigmas", "SIGMAS"), _param("sigma", 136.0, 20000.0, step=0.001)]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, sigmas, sigma):
        return (set_first_sigma(sigmas, sigma),)


@node(SIGMAS, display_name="ExtendIntermediateSigmas")
class ExtendIntermediateSigmas:
    """Inserts extra sigmas between neighbours within a sigma range (more steps where they matter)."""

    INPUTS = [In("sigmas", "SIGMAS"), Int("steps", 2, min=1, max=100),
              _param("start_at_sigma", -1.0, 20000.0, min=-1.0), _param("end_at_sigma", 12.0, 20000.0),
              Combo("spacing", list(SPACINGS))]
    OUTPUTS = [Out("SIGMAS")]

    def run(self, ctx, sigmas, steps, start_at_sigma, end_at_sigma, spacing):
        return (extend_intermediate_sigmas(sigmas, steps, start_at_sigma, end_at_sigma, spacing),)


@node(SIGMAS, display_name="SamplingPercentToSigma")
class SamplingPercentToSigma:
    """The model's sigma at a fraction of the sampling (what start/end percentages compare against)."""

    INPUTS = [In("model", "MODEL"), Float("sampling_percent", 0.0, min=0.0, max=1.0, step=0.0001),
              Boolean("return_actual_sigma", False,
                      tooltip="Return the actual sigma value instead of the value used for interval checks.\n"
                              "This only affects results at 0.0 and 1.0.")]
    OUTPUTS = [Out("FLOAT", "sigma_value")]

    def run(self, ctx, model, sampling_percent, return_actual_sigma):
        return (percent_to_sigma(model.sampling, sampling_percent, return_actual_sigma),)
