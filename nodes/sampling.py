"""KSampler and KSamplerAdvanced: thin adapters from the graph to ldm.sample.

They prepare ComfyUI's noise (bit-identical for a seed), resolve percentage areas against the
latent size, and report every step as a progress event with a live latent preview.
"""
from __future__ import annotations

import torch

from ldm import devices, memory
from ldm.preview import find_taesd_decoder, load_taesd_decoder, preview_jpeg
from ldm.sample import SAMPLER_NAMES, SCHEDULER_NAMES, prepare_noise, sample
from nodes.latent_space import fit_empty_latent, model_latent_space
from nodes.loaders import file_key
from nodes.memory import ensure_fits
from nodes.registry import Combo, Float, In, Int, Out, node

SEED_MAX = 0xFFFFFFFFFFFFFFFF

# ldm.sampling.SAMPLER_NAMES / ldm.schedules.SCHEDULER_NAMES are already in ComfyUI 0.3.64's order
# (KSAMPLER_NAMES + ddim/uni_pc, SCHEDULER_HANDLERS): the first entry is what a new node shows, and
# clients compare the lists.
SAMPLER_OPTIONS = list(SAMPLER_NAMES)
SCHEDULER_OPTIONS = list(SCHEDULER_NAMES)


def resolve_areas(conditioning: list, latent_h: int, latent_w: int) -> list:
    """Turns ('percentage', h, w, y, x) areas into latent cells for this latent size."""
    out = []
    for cond, opts in conditioning:
        area = opts.get("area")
        if area is not None and area[0] == "percentage":
            _, h, w, y, x = area
            opts = {**opts, "area": (max(1, round(h * latent_h)), max(1, round(w * latent_w)),
                                     round(y * latent_h), round(x * latent_w))}
        out.append([cond, opts])
    return out


def _taesd_for(ctx, model):
    """The TAESD decoder for this model family from models/vae_approx/, if the user has one."""
    dirs = ctx.paths.folder_dirs("vae_approx") if ctx.paths is not None else []
    path = find_taesd_decoder(dirs, getattr(model.config, "family", "sd1"))
    if path is None:
        return None
    key = ("taesd",) + file_key(path)
    return ctx.models.get(key, lambda: load_taesd_decoder(path)) if ctx.models is not None \
        else load_taesd_decoder(path)


def preview_callback(ctx, model):
    """A sampler callback that reports progress with a JPEG preview (and is the interrupt point)."""
    try:
        taesd = _taesd_for(ctx, model)
    except Exception as exc:  # a broken TAESD file only costs the nicer preview
        ctx.warn(f"TAESD preview decoder not usable ({exc}); using the linear preview")
        taesd = None

    def callback(step: int, total: int, x0) -> None:
        jpeg = None
        if x0 is not None:
            try:
                jpeg = preview_jpeg(x0[:1], model.latent_format, taesd=taesd)
            except Exception:  # a preview failure must never fail the job
                jpeg = None
        ctx.progress(step + 1, total, jpeg)

    return callback


def check_sampling_memory(ctx, model, samples, cfg: float, positive: list, negative: list) -> None:
    """Refuses (NodeError on latent_image) a sampling step that cannot fit on the compute device:
    the UNet forward on the CFG batch at this latent size, plus the weights on a GPU."""
    unet_config = getattr(getattr(model, "config", None), "unet", None)
    if unet_config is None:  # a MODEL stand-in without an LDM UNet: nothing to size it by
        return
    device = devices.get_device()
    dtype = devices.compute_dtype(device)
    tokens = max([c.shape[1] for c, _ in positive + negative if hasattr(c, "shape")] or [77])
    b, _, h, w = samples.shape
    needed = memory.sampling_bytes(unet_config, b, h, w, cfg_scale=cfg, dtype=dtype,
                                   context_tokens=tokens, device=device)
    unet = getattr(model, "unet", None)
    if unet is not None and devices.module_device(unet).type != device.type:  # moved there to sample
        needed += sum(p.numel() for p in unet.parameters()) * dtype.itemsize
    f = (model_latent_space(model) or (4, 8))[1]
    ensure_fits(ctx, needed, input_name="latent_image", device=device,
                what=f"sampling a {w}×{h} latent (batch {b}, {w * f}×{h * f} pixels)")


def run_sampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                denoise=1.0, disable_noise=False, start_step=None, last_step=None, force_full_denoise=True):
    """The shared body of both samplers: returns the new LATENT dict."""
    latent = fit_empty_latent(model, latent)
    samples = latent["samples"]
    check_sampling_memory(ctx, model, samples, cfg, positive, negative)
    if disable_noise:
        noise = torch.zeros(samples.shape, dtype=samples.dtype, device="cpu")
    else:
        noise = prepare_noise(samples, seed, latent.get("batch_index"))
    h, w = samples.shape[-2], samples.shape[-1]
    out = sample(model, noise=noise, latent=samples, positive=resolve_areas(positive, h, w),
                 negative=resolve_areas(negative, h, w), cfg=cfg, sampler_name=sampler_name,
                 scheduler=scheduler, steps=steps, seed=seed, denoise=denoise, start_step=start_step,
                 last_step=last_step, force_full_denoise=force_full_denoise, disable_noise=disable_noise,
                 noise_mask=latent.get("noise_mask"), callback=preview_callback(ctx, model))
    result = dict(latent)
    result["samples"] = out
    return result


@node("sampling", display_name="KSampler")
class KSampler:
    """Uses the provided model, positive and negative conditioning to denoise the latent image."""

    INPUTS = [
        In("model", "MODEL", tooltip="The model used for denoising the input latent."),
        Int("seed", 0, min=0, max=SEED_MAX, control_after_generate=True,
            tooltip="The random seed used for creating the noise."),
        Int("steps", 20, min=1, max=10000, tooltip="The number of steps used in the denoising process."),
        Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01,
              tooltip="The Classifier-Free Guidance scale balances creativity and adherence to the prompt. "
                      "Higher values result in images more closely matching the prompt however too high values "
                      "will negatively impact quality."),
        Combo("sampler_name", SAMPLER_OPTIONS, tooltip="The algorithm used when sampling, this can affect the "
                                                        "quality, speed, and style of the generated output."),
        Combo("scheduler", SCHEDULER_OPTIONS,
              tooltip="The scheduler controls how noise is gradually removed to form the image."),
        In("positive", "CONDITIONING",
           tooltip="The conditioning describing the attributes you want to include in the image."),
        In("negative", "CONDITIONING",
           tooltip="The conditioning describing the attributes you want to exclude from the image."),
        In("latent_image", "LATENT", tooltip="The latent image to denoise."),
        Float("denoise", 1.0, min=0.0, max=1.0, step=0.01,
              tooltip="The amount of denoising applied, lower values will maintain the structure of the initial "
                      "image allowing for image to image sampling."),
    ]
    OUTPUTS = [Out("LATENT", tooltip="The denoised latent.")]

    def run(self, ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
            latent_image, denoise):
        return (run_sampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                            latent_image, denoise=denoise),)


@node("sampling", display_name="KSampler (Advanced)")
class KSamplerAdvanced:
    """KSampler with control over the noise and the step range (for multi-stage sampling)."""

    INPUTS = [
        In("model", "MODEL"),
        Combo("add_noise", ["enable", "disable"]),
        Int("noise_seed", 0, min=0, max=SEED_MAX, control_after_generate=True),
        Int("steps", 20, min=1, max=10000),
        Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01),
        Combo("sampler_name", SAMPLER_OPTIONS), Combo("scheduler", SCHEDULER_OPTIONS),
        In("positive", "CONDITIONING"), In("negative", "CONDITIONING"), In("latent_image", "LATENT"),
        Int("start_at_step", 0, min=0, max=10000), Int("end_at_step", 10000, min=0, max=10000),
        Combo("return_with_leftover_noise", ["disable", "enable"]),
    ]
    OUTPUTS = [Out("LATENT")]

    def run(self, ctx, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive,
            negative, latent_image, start_at_step, end_at_step, return_with_leftover_noise):
        return (run_sampler(ctx, model, noise_seed, steps, cfg, sampler_name, scheduler, positive,
                            negative, latent_image, disable_noise=add_noise == "disable",
                            start_step=start_at_step, last_step=end_at_step,
                            force_full_denoise=return_with_leftover_noise != "enable"),)
