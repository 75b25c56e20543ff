"""ComfyUI's custom-sampling family (comfy_extras/nodes_custom_sampler.py): KSampler taken apart.

NOISE, GUIDER, SAMPLER and SIGMAS sockets carry the small values of ldm.custom_sampling; the two
sampler nodes put them back together through the code path KSampler uses (same noise, guidance,
sampler call, progress previews and interrupt point). Names, inputs, defaults, ranges and
categories are ComfyUI 0.3.64's. The schedulers and sigma tools are in nodes/custom_sigmas.py.
"""
from __future__ import annotations

from ldm import custom_sampling as lcs
from nodes.latent_space import fit_empty_latent
from nodes.registry import Boolean, Combo, Float, In, Int, Out, node
from nodes.sampling import SAMPLER_OPTIONS, SEED_MAX, preview_callback, resolve_areas

CAT = "sampling/custom_sampling"
SAMPLERS = f"{CAT}/samplers"


def _run_custom(ctx, noise, guider, sampler, sigmas, latent: dict) -> tuple[dict, dict]:
    """(output, denoised_output) LATENTs of one custom sampling run (ComfyUI's shapes: both copy
    the input latent's keys; denoised_output is output itself when no step ran)."""
    latent = fit_empty_latent(guider.model, latent)
    samples = latent["samples"]
    h, w = samples.shape[-2], samples.shape[-1]
    guider = guider.map_conds(lambda conds: resolve_areas(conds, h, w))
    out, x0 = lcs.sample_custom(guider, sampler, sigmas, noise=noise.generate(latent), latent=samples,
                                seed=noise.seed, noise_mask=latent.get("noise_mask"),
                                callback=preview_callback(ctx, guider.model))
    result = {**latent, "samples": out}
    return result, ({**latent, "samples": x0} if x0 is not None else result)


SAMPLER_OUTPUTS = [Out("LATENT", "output"), Out("LATENT", "denoised_output")]


@node(CAT, display_name="SamplerCustom")
class SamplerCustom:
    """Samples a latent with a chosen sampler over a given sigma list, with cfg guidance (a KSampler
    whose schedule comes from a SIGMAS input)."""

    INPUTS = [
        In("model", "MODEL"), Boolean("add_noise", True),
        Int("noise_seed", 0, min=0, max=SEED_MAX, control_after_generate=True),
        Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01),
        In("positive", "CONDITIONING"), In("negative", "CONDITIONING"),
        In("sampler", "SAMPLER"), In("sigmas", "SIGMAS"), In("latent_image", "LATENT"),
    ]
    OUTPUTS = SAMPLER_OUTPUTS

    def run(self, ctx, model, add_noise, noise_seed, cfg, positive, negative, sampler, sigmas, latent_image):
        # ComfyUI seeds the samplers' own noise with noise_seed even when add_noise is off.
        noise = lcs.RandomNoise(noise_seed) if add_noise else lcs.DisableNoise(seed=noise_seed)
        return _run_custom(ctx, noise, lcs.CFGGuider.make(model, positive, negative, cfg), sampler, sigmas,
                           latent_image)


@node(CAT, display_name="SamplerCustomAdvanced")
class SamplerCustomAdvanced:
    """Samples a latent from its four parts: noise, guider, sampler and sigmas."""

    INPUTS = [In("noise", "NOISE"), In("guider", "GUIDER"), In("sampler", "SAMPLER"), In("sigmas", "SIGMAS"),
              In("latent_image", "LATENT")]
    OUTPUTS = SAMPLER_OUTPUTS

    def run(self, ctx, noise, guider, sampler, sigmas, latent_image):
        return _run_custom(ctx, noise, guider, sampler, sigmas, latent_image)


# ----------------------------------------------------------------------------------------- noise
@node(f"{CAT}/noise", display_name="RandomNoise")
class RandomNoise:
    """KSampler's initial noise for a seed."""

    INPUTS = [Int("noise_seed", 0, min=0, max=SEED_MAX, control_after_generate=True)]
    OUTPUTS = [Out("NOISE")]

    def run(self, ctx, noise_seed):
        return (lcs.RandomNoise(noise_seed),)


@node(f"{CAT}/noise", display_name="DisableNoise")
class DisableNoise:
    """No initial noise (to continue sampling a latent that still holds noise)."""

    INPUTS: list = []
    OUTPUTS = [Out("NOISE")]

    def run(self, ctx):
        return (lcs.DisableNoise(),)


@node("_for_testing/custom_sampling/noise", display_name="AddNoise")
class AddNoise:
    """Adds the noise of a NOISE to a latent, scaled to the span of a sigma list."""

    INPUTS = [In("model", "MODEL"), In("noise", "NOISE"), In("sigmas", "SIGMAS"), In("latent_image", "LATENT")]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, model, noise, sigmas, latent_image):
        if len(sigmas) == 0:
            return (latent_image,)
        noisy = lcs.add_noise(model, noise.generate(latent_image), sigmas, latent_image["samples"])
        return ({**latent_image, "samples": noisy},)


# ---------------------------------------------------------------------------------------- guiders
@node(f"{CAT}/guiders", display_name="CFGGuider")
class CFGGuider:
    """Classifier-free guidance between a positive and a negative conditioning (KSampler's)."""

    INPUTS = [In("model", "MODEL"), In("positive", "CONDITIONING"), In("negative", "CONDITIONING"),
              Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01)]
    OUTPUTS = [Out("GUIDER")]

    def run(self, ctx, model, positive, negative, cfg):
        return (lcs.CFGGuider.make(model, positive, negative, cfg),)


@node(f"{CAT}/guiders", display_name="BasicGuider")
class BasicGuider:
    """The model's prediction for one conditioning, without guidance (cfg 1)."""

    INPUTS = [In("model", "MODEL"), In("conditioning", "CONDITIONING")]
    OUTPUTS = [Out("GUIDER")]

    def run(self, ctx, model, conditioning):
        return (lcs.CFGGuider.basic(model, conditioning),)


@node(f"{CAT}/guiders", display_name="DualCFGGuider")
class DualCFGGuider:
    """Two guidance scales: cond1 against cond2 (cfg_conds) and cond2 against negative (cfg_cond2_negative)."""

    INPUTS = [In("model", "MODEL"), In("cond1", "CONDITIONING"), In("cond2", "CONDITIONING"),
              In("negative", "CONDITIONING"),
              Float("cfg_conds", 8.0, min=0.0, max=100.0, step=0.1, round=0.01),
              Float("cfg_cond2_negative", 8.0, min=0.0, max=100.0, step=0.1, round=0.01),
              Combo("style", ["regular", "nested"])]
    OUTPUTS = [Out("GUIDER")]

    def run(self, ctx, model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style):
        return (lcs.DualCFGGuider.make(model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style),)


# --------------------------------------------------------------------------------------- samplers
def _opt(name: str, default: float, max: float = 100.0):  # noqa: A002 - ComfyUI's option name
    """A sampler option slider as ComfyUI declares them (step 0.01, unrounded)."""
    return Float(name, default, min=0.0, max=max, step=0.01, round=False)


def _noise_device():
    return Combo("noise_device", ["gpu", "cpu"])


def _sde_sampler(name: str, noise_device: str, **options) -> tuple:
    """An SDE sampler's output: ComfyUI picks the *_gpu row unless noise_device is "cpu" (the rows
    differ only in where ComfyUI draws the Brownian noise; the same computation here)."""
    return (lcs.Sampler(name if noise_device == "cpu" else f"{name}_gpu", options),)


@node(SAMPLERS, display_name="KSamplerSelect")
class KSamplerSelect:
    """A sampler by name, with its default options (as KSampler uses it)."""

    INPUTS = [Combo("sampler_name", SAMPLER_OPTIONS)]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, sampler_name):
        return (lcs.Sampler(sampler_name),)


@node(SAMPLERS, display_name="SamplerEulerAncestral")
class SamplerEulerAncestral:
    """Euler ancestral with its noise amount (eta) and noise scale (s_noise)."""

    INPUTS = [_opt("eta", 1.0), _opt("s_noise", 1.0)]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, eta, s_noise):
        return (lcs.Sampler("euler_ancestral", {"eta": eta, "s_noise": s_noise}),)


@node(SAMPLERS, display_name="SamplerEulerAncestralCFG++")
class SamplerEulerAncestralCFGPP:
    """Euler ancestral with CFG++ (steps along the unguided prediction)."""

    INPUTS = [_opt("eta", 1.0, max=1.0), _opt("s_noise", 1.0, max=10.0)]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, eta, s_noise):
        return (lcs.Sampler("euler_ancestral_cfg_pp", {"eta": eta, "s_noise": s_noise}),)


@node(SAMPLERS, display_name="SamplerLMS")
class SamplerLMS:
    """Linear multistep with a chosen order."""

    INPUTS = [Int("order", 4, min=1, max=100)]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, order):
        return (lcs.Sampler("lms", {"order": order}),)


@node(SAMPLERS, display_name="SamplerDPMPP_3M_SDE")
class SamplerDPMPP_3M_SDE:  # noqa: N801 - ComfyUI's class name
    """DPM-Solver++(3M) SDE with its noise amount and scale."""

    INPUTS = [_opt("eta", 1.0), _opt("s_noise", 1.0), _noise_device()]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, eta, s_noise, noise_device):
        return _sde_sampler("dpmpp_3m_sde", noise_device, eta=eta, s_noise=s_noise)


@node(SAMPLERS, display_name="SamplerDPMPP_2M_SDE")
class SamplerDPMPP_2M_SDE:  # noqa: N801 - ComfyUI's class name
    """DPM-Solver++(2M) SDE with its second-order correction (midpoint or heun), noise amount and scale."""

    INPUTS = [Combo("solver_type", ["midpoint", "heun"]), _opt("eta", 1.0), _opt("s_noise", 1.0), _noise_device()]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, solver_type, eta, s_noise, noise_device):
        return _sde_sampler("dpmpp_2m_sde", noise_device, eta=eta, s_noise=s_noise, solver_type=solver_type)


@node(SAMPLERS, display_name="SamplerDPMPP_SDE")
class SamplerDPMPP_SDE:  # noqa: N801 - ComfyUI's class name
    """DPM-Solver++ SDE with its noise amount, scale and intermediate step ratio r."""

    INPUTS = [_opt("eta", 1.0), _opt("s_noise", 1.0), _opt("r", 0.5), _noise_device()]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, eta, s_noise, r, noise_device):
        return _sde_sampler("dpmpp_sde", noise_device, eta=eta, s_noise=s_noise, r=r)


@node(SAMPLERS, display_name="SamplerDPMPP_2S_Ancestral")
class SamplerDPMPP_2S_Ancestral:  # noqa: N801 - ComfyUI's class name
    """DPM-Solver++(2S) ancestral with its noise amount and scale."""

    INPUTS = [_opt("eta", 1.0), _opt("s_noise", 1.0)]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, eta, s_noise):
        return (lcs.Sampler("dpmpp_2s_ancestral", {"eta": eta, "s_noise": s_noise}),)


ER_SDE_ETA_TIP = ("Stochastic strength of reverse-time SDE.\nWhen eta=0, it reduces to deterministic ODE. "
                  "This setting doesn't apply to ER-SDE solver type.")


@node(SAMPLERS, display_name="SamplerER_SDE")
class SamplerER_SDE:  # noqa: N801 - ComfyUI's class name
    """The extended reverse-time SDE solver: ER-SDE noise, reverse-time SDE noise (eta) or the ODE."""

    INPUTS = [Combo("solver_type", ["ER-SDE", "Reverse-time SDE", "ODE"]), Int("max_stage", 3, min=1, max=3),
              Float("eta", 1.0, min=0.0, max=100.0, step=0.01, round=False, tooltip=ER_SDE_ETA_TIP),
              _opt("s_noise", 1.0)]
    OUTPUTS = [Out("SAMPLER")]

    def run(self, ctx, solver_type, max_stage, eta, s_noise):
        return (lcs.Sampler("er_sde", lcs.er_sde_options(solver_type, max_stage, eta, s_noise)),)
