"""Our node declarations against ComfyUI 0.3.64's own (nodes.py and comfy_extras/nodes_*.py, Oct 2025).

The table below was written by hand from ComfyUI's declarations: class names, display names,
categories, input names and ORDER (required, then optional), types, defaults and ranges, combo
options in their order, outputs and output names. It is checked field by field against
``REGISTRY.object_info()``, so a declaration drifting away from ComfyUI fails here with the node
and field named. The UI-format tests convert workflows with positional ``widgets_values`` written
the way ComfyUI's frontend writes them: that only gives the right named inputs when our widget
order is ComfyUI's.

Where a value is not certain for 0.3.64 (e.g. GrowMask's display name changed around the V3
conversion of nodes_mask.py) the table leaves it out rather than guess.
"""
from __future__ import annotations

import sys

import pytest

from engine.formats.comfy_ui import ui_to_prompt
from nodes.plugins import load_all
from nodes.registry import REGISTRY

load_all()

MAXRES = 16384
SEED_MAX = 0xFFFFFFFFFFFFFFFF
FILES = object()  # marker: a combo listing files of a model folder (contents vary)

UPSCALE_LATENT = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
UPSCALE_IMAGE = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
CROP = ["disabled", "center"]
# markers (not type names: SAMPLER is also a socket type) for the sampler/scheduler combos checked below
SAMPLER = object()
SCHEDULER = object()
ANY_COMBO = "ANY_COMBO"  # a combo whose options depend on the machine (e.g. the .latent files in input/)

# ComfyUI 0.3.64 comfy/samplers.py: KSAMPLER_NAMES + ["ddim", "uni_pc", "uni_pc_bh2"], and the
# SCHEDULER_HANDLERS order.
COMFY_SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2"]
COMFY_SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                    "linear_quadratic", "kl_optimal"]


def I(name, type_, **opts):  # noqa: E743 - a table row: (name, TYPE | [choices] | FILES, {opts})
    return (name, type_, opts)


def INT(name, default, lo, hi, step=None, **extra):
    opts = {"default": default, "min": lo, "max": hi, **extra}
    if step is not None:
        opts["step"] = step
    return I(name, "INT", **opts)


def FLOAT(name, default, lo, hi, step=None, **extra):
    opts = {"default": default, "min": lo, "max": hi, **extra}
    if step is not None:
        opts["step"] = step
    return I(name, "FLOAT", **opts)


def N(category, display, inputs, outputs, names=None, optional=(), output_node=False, description=None,
      is_list=None):
    return {"category": category, "display": display, "inputs": inputs, "optional": list(optional),
            "outputs": outputs, "names": names or list(outputs), "output_node": output_node,
            "description": description, "is_list": is_list or [False] * len(outputs)}


LORA_STRENGTH = dict(default=1.0, min=-100.0, max=100.0, step=0.01)
TILE = [INT("overlap", 64, 0, 4096, 32), INT("temporal_size", 64, 8, 4096, 4), INT("temporal_overlap", 8, 4, 4096, 4)]
PIX = lambda n, d: INT(n, d, 0, MAXRES, 8)  # noqa: E731
MASK_XY = lambda n, d: INT(n, d, 0, MAXRES, 1)  # noqa: E731
CS = "sampling/custom_sampling"
SIGMA_MAX = FLOAT("sigma_max", 14.614642, 0.0, 5000.0, 0.01, round=False)
SIGMA_MIN = FLOAT("sigma_min", 0.0291675, 0.0, 5000.0, 0.01, round=False)
ETA = FLOAT("eta", 1.0, 0.0, 100.0, 0.01, round=False)
S_NOISE = FLOAT("s_noise", 1.0, 0.0, 100.0, 0.01, round=False)
NOISE_DEVICE = I("noise_device", ["gpu", "cpu"])

EXPECTED = {
    # ---- loaders (nodes.py, nodes_upscale_model.py)
    "CheckpointLoaderSimple": N("loaders", "Load Checkpoint", [I("ckpt_name", FILES)], ["MODEL", "CLIP", "VAE"],
                                description="Loads a diffusion model checkpoint, diffusion models are used to "
                                            "denoise latents."),
    "CheckpointLoader": N("advanced/loaders", "Load Checkpoint With Config (DEPRECATED)",
                          [I("config_name", FILES), I("ckpt_name", FILES)], ["MODEL", "CLIP", "VAE"]),
    "VAELoader": N("loaders", "Load VAE", [I("vae_name", FILES)], ["VAE"]),
    "UNETLoader": N("advanced/loaders", "Load Diffusion Model",
                    [I("unet_name", FILES), I("weight_dtype", ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"])],
                    ["MODEL"]),
    "CLIPLoader": N("advanced/loaders", "Load CLIP",
                    [I("clip_name", FILES),
                     I("type", ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
                                "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2",
                                "qwen_image", "hunyuan_image"])],
                    ["CLIP"], optional=[I("device", ["default", "cpu"])]),
    "DualCLIPLoader": N("advanced/loaders", "DualCLIPLoader",
                        [I("clip_name1", FILES), I("clip_name2", FILES),
                         I("type", ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"])],
                        ["CLIP"], optional=[I("device", ["default", "cpu"])]),
    "LoraLoader": N("loaders", "Load LoRA",
                    [I("model", "MODEL"), I("clip", "CLIP"), I("lora_name", FILES),
                     I("strength_model", "FLOAT", **LORA_STRENGTH), I("strength_clip", "FLOAT", **LORA_STRENGTH)],
                    ["MODEL", "CLIP"],
                    description="This LoRA loader is used to modify both diffusion and CLIP models, altering the "
                                "way in which latents are denoised such as applying styles. Multiple LoRA nodes "
                                "can be linked together."),
    "LoraLoaderModelOnly": N("loaders", "LoraLoaderModelOnly",
                             [I("model", "MODEL"), I("lora_name", FILES), I("strength_model", "FLOAT", **LORA_STRENGTH)],
                             ["MODEL"]),
    "UpscaleModelLoader": N("loaders", "Load Upscale Model", [I("model_name", FILES)], ["UPSCALE_MODEL"]),
    # ---- conditioning (nodes.py, nodes_clip_sdxl.py)
    "CLIPSetLastLayer": N("conditioning", "CLIP Set Last Layer",
                          [I("clip", "CLIP"), INT("stop_at_clip_layer", -1, -24, -1, 1)], ["CLIP"]),
    "CLIPTextEncode": N("conditioning", "CLIP Text Encode (Prompt)",
                        [I("text", "STRING", multiline=True, dynamicPrompts=True), I("clip", "CLIP")],
                        ["CONDITIONING"],
                        description="Encodes a text prompt using a CLIP model into an embedding that can be used "
                                    "to guide the diffusion model towards generating specific images."),
    "CLIPTextEncodeSDXL": N("advanced/conditioning", "CLIPTextEncodeSDXL",
                            [I("clip", "CLIP"), INT("width", 1024, 0, MAXRES), INT("height", 1024, 0, MAXRES),
                             INT("crop_w", 0, 0, MAXRES), INT("crop_h", 0, 0, MAXRES),
                             INT("target_width", 1024, 0, MAXRES), INT("target_height", 1024, 0, MAXRES),
                             I("text_g", "STRING", multiline=True, dynamicPrompts=True),
                             I("text_l", "STRING", multiline=True, dynamicPrompts=True)],
                            ["CONDITIONING"]),
    "CLIPTextEncodeSDXLRefiner": N("advanced/conditioning", "CLIPTextEncodeSDXLRefiner",
                                   [FLOAT("ascore", 6.0, 0.0, 1000.0, 0.01), INT("width", 1024, 0, MAXRES),
                                    INT("height", 1024, 0, MAXRES),
                                    I("text", "STRING", multiline=True, dynamicPrompts=True), I("clip", "CLIP")],
                                   ["CONDITIONING"]),
    "ConditioningCombine": N("conditioning", "Conditioning (Combine)",
                             [I("conditioning_1", "CONDITIONING"), I("conditioning_2", "CONDITIONING")],
                             ["CONDITIONING"]),
    # ComfyUI's NODE_DISPLAY_NAME_MAPPINGS key is "ConditioningAverage " (trailing space), so the
    # display name falls back to the class name.
    "ConditioningAverage": N("conditioning", "ConditioningAverage",
                             [I("conditioning_to", "CONDITIONING"), I("conditioning_from", "CONDITIONING"),
                              FLOAT("conditioning_to_strength", 1.0, 0.0, 1.0, 0.01)], ["CONDITIONING"]),
    "ConditioningConcat": N("conditioning", "Conditioning (Concat)",
                            [I("conditioning_to", "CONDITIONING"), I("conditioning_from", "CONDITIONING")],
                            ["CONDITIONING"]),
    "ConditioningSetArea": N("conditioning", "Conditioning (Set Area)",
                             [I("conditioning", "CONDITIONING"), INT("width", 64, 64, MAXRES, 8),
                              INT("height", 64, 64, MAXRES, 8), PIX("x", 0), PIX("y", 0),
                              FLOAT("strength", 1.0, 0.0, 10.0, 0.01)], ["CONDITIONING"]),
    "ConditioningSetAreaPercentage": N("conditioning", "Conditioning (Set Area with Percentage)",
                                       [I("conditioning", "CONDITIONING"), FLOAT("width", 1.0, 0, 1.0, 0.01),
                                        FLOAT("height", 1.0, 0, 1.0, 0.01), FLOAT("x", 0, 0, 1.0, 0.01),
                                        FLOAT("y", 0, 0, 1.0, 0.01), FLOAT("strength", 1.0, 0.0, 10.0, 0.01)],
                                       ["CONDITIONING"]),
    "ConditioningSetAreaStrength": N("conditioning", "ConditioningSetAreaStrength",
                                     [I("conditioning", "CONDITIONING"), FLOAT("strength", 1.0, 0.0, 10.0, 0.01)],
                                     ["CONDITIONING"]),
    "ConditioningSetMask": N("conditioning", "Conditioning (Set Mask)",
                             [I("conditioning", "CONDITIONING"), I("mask", "MASK"),
                              FLOAT("strength", 1.0, 0.0, 10.0, 0.01), I("set_cond_area", ["default", "mask bounds"])],
                             ["CONDITIONING"]),
    "ConditioningZeroOut": N("advanced/conditioning", "ConditioningZeroOut", [I("conditioning", "CONDITIONING")],
                             ["CONDITIONING"]),
    "ConditioningSetTimestepRange": N("advanced/conditioning", "ConditioningSetTimestepRange",
                                      [I("conditioning", "CONDITIONING"), FLOAT("start", 0.0, 0.0, 1.0, 0.001),
                                       FLOAT("end", 1.0, 0.0, 1.0, 0.001)], ["CONDITIONING"]),
    "InpaintModelConditioning": N("conditioning/inpaint", "InpaintModelConditioning",
                                  [I("positive", "CONDITIONING"), I("negative", "CONDITIONING"), I("vae", "VAE"),
                                   I("pixels", "IMAGE"), I("mask", "MASK"), I("noise_mask", "BOOLEAN", default=True)],
                                  ["CONDITIONING", "CONDITIONING", "LATENT"], names=["positive", "negative", "latent"]),
    # ---- latent (nodes.py, nodes_latent.py, nodes_mask.py)
    "EmptyLatentImage": N("latent", "Empty Latent Image",
                          [INT("width", 512, 16, MAXRES, 8), INT("height", 512, 16, MAXRES, 8),
                           INT("batch_size", 1, 1, 4096)], ["LATENT"],
                          description="Create a new batch of empty latent images to be denoised via sampling."),
    "LatentUpscale": N("latent", "Upscale Latent",
                       [I("samples", "LATENT"), I("upscale_method", UPSCALE_LATENT), PIX("width", 512),
                        PIX("height", 512), I("crop", CROP)], ["LATENT"]),
    "LatentUpscaleBy": N("latent", "Upscale Latent By",
                         [I("samples", "LATENT"), I("upscale_method", UPSCALE_LATENT),
                          FLOAT("scale_by", 1.5, 0.01, 8.0, 0.01)], ["LATENT"]),
    "LatentComposite": N("latent", "Latent Composite",
                         [I("samples_to", "LATENT"), I("samples_from", "LATENT"), PIX("x", 0), PIX("y", 0),
                          PIX("feather", 0)], ["LATENT"]),
    "LatentCompositeMasked": N("latent", "LatentCompositeMasked",
                               [I("destination", "LATENT"), I("source", "LATENT"), PIX("x", 0), PIX("y", 0),
                                I("resize_source", "BOOLEAN", default=False)], ["LATENT"],
                               optional=[I("mask", "MASK")]),
    "LatentBlend": N("_for_testing", "Latent Blend",
                     [I("samples1", "LATENT"), I("samples2", "LATENT"), FLOAT("blend_factor", 0.5, 0, 1, 0.01)],
                     ["LATENT"]),
    "LatentFromBatch": N("latent/batch", "Latent From Batch",
                         [I("samples", "LATENT"), INT("batch_index", 0, 0, 63), INT("length", 1, 1, 64)], ["LATENT"]),
    "RepeatLatentBatch": N("latent/batch", "Repeat Latent Batch", [I("samples", "LATENT"), INT("amount", 1, 1, 64)],
                           ["LATENT"]),
    "LatentBatch": N("latent/batch", "LatentBatch", [I("samples1", "LATENT"), I("samples2", "LATENT")], ["LATENT"]),
    "LatentFlip": N("latent/transform", "Flip Latent",
                    [I("samples", "LATENT"), I("flip_method", ["x-axis: vertically", "y-axis: horizontally"])],
                    ["LATENT"]),
    "LatentRotate": N("latent/transform", "Rotate Latent",
                      [I("samples", "LATENT"), I("rotation", ["none", "90 degrees", "180 degrees", "270 degrees"])],
                      ["LATENT"]),
    "LatentCrop": N("latent/transform", "Crop Latent",
                    [I("samples", "LATENT"), INT("width", 512, 64, MAXRES, 8), INT("height", 512, 64, MAXRES, 8),
                     PIX("x", 0), PIX("y", 0)], ["LATENT"]),
    "SetLatentNoiseMask": N("latent/inpaint", "Set Latent Noise Mask", [I("samples", "LATENT"), I("mask", "MASK")],
                            ["LATENT"]),
    # ---- sampling
    "KSampler": N("sampling", "KSampler",
                  [I("model", "MODEL"), INT("seed", 0, 0, SEED_MAX, control_after_generate=True),
                   INT("steps", 20, 1, 10000), FLOAT("cfg", 8.0, 0.0, 100.0, 0.1, round=0.01),
                   I("sampler_name", SAMPLER), I("scheduler", SCHEDULER), I("positive", "CONDITIONING"),
                   I("negative", "CONDITIONING"), I("latent_image", "LATENT"), FLOAT("denoise", 1.0, 0.0, 1.0, 0.01)],
                  ["LATENT"],
                  description="Uses the provided model, positive and negative conditioning to denoise the latent "
                              "image."),
    "KSamplerAdvanced": N("sampling", "KSampler (Advanced)",
                          [I("model", "MODEL"), I("add_noise", ["enable", "disable"]),
                           INT("noise_seed", 0, 0, SEED_MAX, control_after_generate=True), INT("steps", 20, 1, 10000),
                           FLOAT("cfg", 8.0, 0.0, 100.0, 0.1, round=0.01), I("sampler_name", SAMPLER),
                           I("scheduler", SCHEDULER), I("positive", "CONDITIONING"), I("negative", "CONDITIONING"),
                           I("latent_image", "LATENT"), INT("start_at_step", 0, 0, 10000),
                           INT("end_at_step", 10000, 0, 10000), I("return_with_leftover_noise", ["disable", "enable"])],
                          ["LATENT"]),
    # ---- custom sampling (comfy_extras/nodes_custom_sampler.py, nodes_align_your_steps.py); display
    # names are the class names (no display mapping in 0.3.64) except the guiders, renamed in the V3 schema
    "SamplerCustom": N(CS, "SamplerCustom",
                       [I("model", "MODEL"), I("add_noise", "BOOLEAN", default=True),
                        INT("noise_seed", 0, 0, SEED_MAX, control_after_generate=True),
                        FLOAT("cfg", 8.0, 0.0, 100.0, 0.1, round=0.01), I("positive", "CONDITIONING"),
                        I("negative", "CONDITIONING"), I("sampler", "SAMPLER"), I("sigmas", "SIGMAS"),
                        I("latent_image", "LATENT")],
                       ["LATENT", "LATENT"], names=["output", "denoised_output"]),
    "SamplerCustomAdvanced": N(CS, "SamplerCustomAdvanced",
                               [I("noise", "NOISE"), I("guider", "GUIDER"), I("sampler", "SAMPLER"),
                                I("sigmas", "SIGMAS"), I("latent_image", "LATENT")],
                               ["LATENT", "LATENT"], names=["output", "denoised_output"]),
    "BasicScheduler": N(CS + "/schedulers", "BasicScheduler",
                        [I("model", "MODEL"), I("scheduler", SCHEDULER), INT("steps", 20, 1, 10000),
                         FLOAT("denoise", 1.0, 0.0, 1.0, 0.01)], ["SIGMAS"]),
    "KarrasScheduler": N(CS + "/schedulers", "KarrasScheduler",
                         [INT("steps", 20, 1, 10000), SIGMA_MAX, SIGMA_MIN,
                          FLOAT("rho", 7.0, 0.0, 100.0, 0.01, round=False)],
                         ["SIGMAS"]),
    "ExponentialScheduler": N(CS + "/schedulers", "ExponentialScheduler",
                              [INT("steps", 20, 1, 10000), SIGMA_MAX, SIGMA_MIN],
                              ["SIGMAS"]),
    "PolyexponentialScheduler": N(CS + "/schedulers", "PolyexponentialScheduler",
                                  [INT("steps", 20, 1, 10000), SIGMA_MAX, SIGMA_MIN,
                                   FLOAT("rho", 1.0, 0.0, 100.0, 0.01, round=False)], ["SIGMAS"]),
    "LaplaceScheduler": N(CS + "/schedulers", "LaplaceScheduler",
                          [INT("steps", 20, 1, 10000), SIGMA_MAX, SIGMA_MIN,
                           FLOAT("mu", 0.0, -10.0, 10.0, 0.1, round=False),
                           FLOAT("beta", 0.5, 0.0, 10.0, 0.1, round=False)], ["SIGMAS"]),
    "VPScheduler": N(CS + "/schedulers", "VPScheduler",
                     [INT("steps", 20, 1, 10000), FLOAT("beta_d", 19.9, 0.0, 5000.0, 0.01, round=False),
                      FLOAT("beta_min", 0.1, 0.0, 5000.0, 0.01, round=False),
                      FLOAT("eps_s", 0.001, 0.0, 1.0, 0.0001, round=False)], ["SIGMAS"]),
    "SetFirstSigma": N(CS + "/sigmas", "SetFirstSigma",
                       [I("sigmas", "SIGMAS"), FLOAT("sigma", 136.0, 0.0, 20000.0, 0.001, round=False)], ["SIGMAS"]),
    "ExtendIntermediateSigmas": N(CS + "/sigmas", "ExtendIntermediateSigmas",
                                  [I("sigmas", "SIGMAS"), INT("steps", 2, 1, 100),
                                   FLOAT("start_at_sigma", -1.0, -1.0, 20000.0, 0.01, round=False),
                                   FLOAT("end_at_sigma", 12.0, 0.0, 20000.0, 0.01, round=False),
                                   I("spacing", ["linear", "cosine", "sine"])], ["SIGMAS"]),
    "SamplingPercentToSigma": N(CS + "/sigmas", "SamplingPercentToSigma",
                                [I("model", "MODEL"), FLOAT("sampling_percent", 0.0, 0.0, 1.0, 0.0001),
                                 I("return_actual_sigma", "BOOLEAN", default=False,
                                   tooltip="Return the actual sigma value instead of the value used for interval "
                                           "checks.\nThis only affects results at 0.0 and 1.0.")],
                                ["FLOAT"], names=["sigma_value"]),
    "AddNoise": N("_for_testing/custom_sampling/noise", "AddNoise",
                  [I("model", "MODEL"), I("noise", "NOISE"), I("sigmas", "SIGMAS"), I("latent_image", "LATENT")],
                  ["LATENT"]),
    "SamplerER_SDE": N(CS + "/samplers", "SamplerER_SDE",
                       [I("solver_type", ["ER-SDE", "Reverse-time SDE", "ODE"]), INT("max_stage", 3, 1, 3),
                        FLOAT("eta", 1.0, 0.0, 100.0, 0.01, round=False,
                              tooltip="Stochastic strength of reverse-time SDE.\nWhen eta=0, it reduces to "
                                      "deterministic ODE. This setting doesn't apply to ER-SDE solver type."),
                        S_NOISE], ["SAMPLER"]),
    "SDTurboScheduler": N(CS + "/schedulers", "SDTurboScheduler",
                          [I("model", "MODEL"), INT("steps", 1, 1, 10), FLOAT("denoise", 1.0, 0, 1.0, 0.01)],
                          ["SIGMAS"]),
    "BetaSamplingScheduler": N(CS + "/schedulers", "BetaSamplingScheduler",
                               [I("model", "MODEL"), INT("steps", 20, 1, 10000),
                                FLOAT("alpha", 0.6, 0.0, 50.0, 0.01, round=False),
                                FLOAT("beta", 0.6, 0.0, 50.0, 0.01, round=False)], ["SIGMAS"]),
    "AlignYourStepsScheduler": N(CS + "/schedulers", "AlignYourStepsScheduler",
                                 [I("model_type", ["SD1", "SDXL", "SVD"]), INT("steps", 10, 1, 10000),
                                  FLOAT("denoise", 1.0, 0.0, 1.0, 0.01)], ["SIGMAS"]),
    "SplitSigmas": N(CS + "/sigmas", "SplitSigmas", [I("sigmas", "SIGMAS"), INT("step", 0, 0, 10000)],
                     ["SIGMAS", "SIGMAS"], names=["high_sigmas", "low_sigmas"]),
    "SplitSigmasDenoise": N(CS + "/sigmas", "SplitSigmasDenoise",
                            [I("sigmas", "SIGMAS"), FLOAT("denoise", 1.0, 0.0, 1.0, 0.01)],
                            ["SIGMAS", "SIGMAS"], names=["high_sigmas", "low_sigmas"]),
    "FlipSigmas": N(CS + "/sigmas", "FlipSigmas", [I("sigmas", "SIGMAS")], ["SIGMAS"]),
    "RandomNoise": N(CS + "/noise", "RandomNoise", [INT("noise_seed", 0, 0, SEED_MAX, control_after_generate=True)],
                     ["NOISE"]),
    "DisableNoise": N(CS + "/noise", "DisableNoise", [], ["NOISE"]),
    "CFGGuider": N(CS + "/guiders", None,
                   [I("model", "MODEL"), I("positive", "CONDITIONING"), I("negative", "CONDITIONING"),
                    FLOAT("cfg", 8.0, 0.0, 100.0, 0.1, round=0.01)], ["GUIDER"]),
    "BasicGuider": N(CS + "/guiders", None, [I("model", "MODEL"), I("conditioning", "CONDITIONING")], ["GUIDER"]),
    "DualCFGGuider": N(CS + "/guiders", None,
                       [I("model", "MODEL"), I("cond1", "CONDITIONING"), I("cond2", "CONDITIONING"),
                        I("negative", "CONDITIONING"), FLOAT("cfg_conds", 8.0, 0.0, 100.0, 0.1, round=0.01),
                        FLOAT("cfg_cond2_negative", 8.0, 0.0, 100.0, 0.1, round=0.01),
                        I("style", ["regular", "nested"])], ["GUIDER"]),
    "KSamplerSelect": N(CS + "/samplers", "KSamplerSelect", [I("sampler_name", SAMPLER)], ["SAMPLER"]),
    "SamplerEulerAncestral": N(CS + "/samplers", "SamplerEulerAncestral", [ETA, S_NOISE], ["SAMPLER"]),
    "SamplerEulerAncestralCFGPP": N(CS + "/samplers", "SamplerEulerAncestralCFG++",
                                    [FLOAT("eta", 1.0, 0.0, 1.0, 0.01, round=False),
                                     FLOAT("s_noise", 1.0, 0.0, 10.0, 0.01, round=False)], ["SAMPLER"]),
    "SamplerLMS": N(CS + "/samplers", "SamplerLMS", [INT("order", 4, 1, 100)], ["SAMPLER"]),
    "SamplerDPMPP_3M_SDE": N(CS + "/samplers", "SamplerDPMPP_3M_SDE", [ETA, S_NOISE, NOISE_DEVICE], ["SAMPLER"]),
    "SamplerDPMPP_2M_SDE": N(CS + "/samplers", "SamplerDPMPP_2M_SDE",
                             [I("solver_type", ["midpoint", "heun"]), ETA, S_NOISE, NOISE_DEVICE], ["SAMPLER"]),
    "SamplerDPMPP_SDE": N(CS + "/samplers", "SamplerDPMPP_SDE",
                          [ETA, S_NOISE, FLOAT("r", 0.5, 0.0, 100.0, 0.01, round=False), NOISE_DEVICE], ["SAMPLER"]),
    "SamplerDPMPP_2S_Ancestral": N(CS + "/samplers", "SamplerDPMPP_2S_Ancestral", [ETA, S_NOISE], ["SAMPLER"]),
    # ---- VAE
    "VAEDecode": N("latent", "VAE Decode", [I("samples", "LATENT"), I("vae", "VAE")], ["IMAGE"],
                   description="Decodes latent images back into pixel space images."),
    "VAEEncode": N("latent", "VAE Encode", [I("pixels", "IMAGE"), I("vae", "VAE")], ["LATENT"]),
    "VAEDecodeTiled": N("_for_testing", "VAE Decode (Tiled)",
                        [I("samples", "LATENT"), I("vae", "VAE"), INT("tile_size", 512, 64, 4096, 32)] + TILE,
                        ["IMAGE"]),
    "VAEEncodeTiled": N("_for_testing", "VAE Encode (Tiled)",
                        [I("pixels", "IMAGE"), I("vae", "VAE"), INT("tile_size", 512, 64, 4096, 64)] + TILE,
                        ["LATENT"]),
    "VAEEncodeForInpaint": N("latent/inpaint", "VAE Encode (for Inpainting)",
                             [I("pixels", "IMAGE"), I("vae", "VAE"), I("mask", "MASK"),
                              INT("grow_mask_by", 6, 0, 64, 1)], ["LATENT"]),
    # ---- image (nodes.py, nodes_images.py, nodes_post_processing.py, nodes_upscale_model.py)
    "LoadImage": N("image", "Load Image", [I("image", FILES, image_upload=True)], ["IMAGE", "MASK"]),
    "LoadImageMask": N("mask", "Load Image (as Mask)",
                       [I("image", FILES, image_upload=True), I("channel", ["alpha", "red", "green", "blue"])],
                       ["MASK"]),
    "SaveImage": N("image", "Save Image", [I("images", "IMAGE"), I("filename_prefix", "STRING", default="ComfyUI")],
                   [], output_node=True,
                   description="Saves the input images to your ComfyUI output directory."),
    "PreviewImage": N("image", "Preview Image", [I("images", "IMAGE")], [], output_node=True),
    "ImageScale": N("image/upscaling", "Upscale Image",
                    [I("image", "IMAGE"), I("upscale_method", UPSCALE_IMAGE), INT("width", 512, 0, MAXRES, 1),
                     INT("height", 512, 0, MAXRES, 1), I("crop", CROP)], ["IMAGE"]),
    "ImageScaleBy": N("image/upscaling", "Upscale Image By",
                      [I("image", "IMAGE"), I("upscale_method", UPSCALE_IMAGE), FLOAT("scale_by", 1.0, 0.01, 8.0, 0.01)],
                      ["IMAGE"]),
    "ImageScaleToTotalPixels": N("image/upscaling", "Scale Image to Total Pixels",
                                 [I("image", "IMAGE"), I("upscale_method", UPSCALE_IMAGE),
                                  FLOAT("megapixels", 1.0, 0.01, 16.0, 0.01)], ["IMAGE"]),
    "ImageInvert": N("image", "Invert Image", [I("image", "IMAGE")], ["IMAGE"]),
    "ImageBatch": N("image", "Batch Images", [I("image1", "IMAGE"), I("image2", "IMAGE")], ["IMAGE"]),
    "ImagePadForOutpaint": N("image", "Pad Image for Outpainting",
                             [I("image", "IMAGE"), PIX("left", 0), PIX("top", 0), PIX("right", 0), PIX("bottom", 0),
                              INT("feathering", 40, 0, MAXRES, 1)], ["IMAGE", "MASK"]),
    "ImageCrop": N("image/transform", "Image Crop",
                   [I("image", "IMAGE"), INT("width", 512, 1, MAXRES, 1), INT("height", 512, 1, MAXRES, 1),
                    MASK_XY("x", 0), MASK_XY("y", 0)], ["IMAGE"]),
    "ImageBlend": N("image/postprocessing", "Image Blend",
                    [I("image1", "IMAGE"), I("image2", "IMAGE"), FLOAT("blend_factor", 0.5, 0.0, 1.0, 0.01),
                     I("blend_mode", ["normal", "multiply", "screen", "overlay", "soft_light", "difference"])],
                    ["IMAGE"]),
    "ImageBlur": N("image/postprocessing", "Image Blur",
                   [I("image", "IMAGE"), INT("blur_radius", 1, 1, 31, 1), FLOAT("sigma", 1.0, 0.1, 10.0, 0.1)],
                   ["IMAGE"]),
    "ImageSharpen": N("image/postprocessing", "Image Sharpen",
                      [I("image", "IMAGE"), INT("sharpen_radius", 1, 1, 31, 1), FLOAT("sigma", 1.0, 0.1, 10.0, 0.01),
                       FLOAT("alpha", 1.0, 0.0, 5.0, 0.01)], ["IMAGE"]),
    "ImageUpscaleWithModel": N("image/upscaling", "Upscale Image (using Model)",
                               [I("upscale_model", "UPSCALE_MODEL"), I("image", "IMAGE")], ["IMAGE"]),
    # ---- mask (nodes_mask.py)
    "SolidMask": N("mask", "SolidMask",
                   [FLOAT("value", 1.0, 0.0, 1.0, 0.01), INT("width", 512, 1, MAXRES, 1), INT("height", 512, 1, MAXRES, 1)],
                   ["MASK"]),
    "InvertMask": N("mask", "InvertMask", [I("mask", "MASK")], ["MASK"]),
    "MaskComposite": N("mask", "MaskComposite",
                       [I("destination", "MASK"), I("source", "MASK"), MASK_XY("x", 0), MASK_XY("y", 0),
                        I("operation", ["multiply", "add", "subtract", "and", "or", "xor"])], ["MASK"]),
    "FeatherMask": N("mask", "FeatherMask",
                     [I("mask", "MASK"), MASK_XY("left", 0), MASK_XY("top", 0), MASK_XY("right", 0),
                      MASK_XY("bottom", 0)], ["MASK"]),
    "GrowMask": N("mask", None,  # "GrowMask" (V1) vs "Grow Mask" (V3 schema): not asserted
                  [I("mask", "MASK"), INT("expand", 0, -MAXRES, MAXRES, 1), I("tapered_corners", "BOOLEAN", default=True)],
                  ["MASK"]),
    "ImageToMask": N("mask", "Convert Image to Mask",
                     [I("image", "IMAGE"), I("channel", ["red", "green", "blue", "alpha"])], ["MASK"]),
    "MaskToImage": N("mask", "Convert Mask to Image", [I("mask", "MASK")], ["IMAGE"]),
    "ThresholdMask": N("mask", "ThresholdMask", [I("mask", "MASK"), FLOAT("value", 0.5, 0.0, 1.0, 0.01)], ["MASK"]),
    "CropMask": N("mask", "CropMask",
                  [I("mask", "MASK"), MASK_XY("x", 0), MASK_XY("y", 0), INT("width", 512, 1, MAXRES, 1),
                   INT("height", 512, 1, MAXRES, 1)], ["MASK"]),
    # ---- utility nodes (nodes_primitive.py, nodes_preview_any.py, nodes_images.py, nodes_mask.py,
    # nodes_compositing.py, nodes_morphology.py, nodes_post_processing.py, nodes_latent.py,
    # nodes_rebatch.py; EmptyImage, SaveLatent, LoadLatent from nodes.py)
    "PrimitiveInt": N("utils/primitive", "Int",
                      [I("value", "INT", min=-sys.maxsize, max=sys.maxsize, control_after_generate=True)], ["INT"]),
    "PrimitiveFloat": N("utils/primitive", "Float", [I("value", "FLOAT", min=-sys.maxsize, max=sys.maxsize, step=0.1)],
                        ["FLOAT"]),
    "PrimitiveString": N("utils/primitive", "String", [I("value", "STRING")], ["STRING"]),
    "PrimitiveStringMultiline": N("utils/primitive", "String (Multiline)", [I("value", "STRING", multiline=True)],
                                  ["STRING"]),
    "PrimitiveBoolean": N("utils/primitive", "Boolean", [I("value", "BOOLEAN")], ["BOOLEAN"]),
    "PreviewAny": N("utils", "Preview Any", [I("source", "*")], [], output_node=True),
    "GetImageSize": N("image", "Get Image Size", [I("image", "IMAGE")], ["INT", "INT", "INT"],
                      names=["width", "height", "batch_size"],
                      description="Returns width and height of the image, and passes it through unchanged."),
    "ImageCompositeMasked": N("image", "ImageCompositeMasked",
                              [I("destination", "IMAGE"), I("source", "IMAGE"), MASK_XY("x", 0), MASK_XY("y", 0),
                               I("resize_source", "BOOLEAN", default=False)], ["IMAGE"], optional=[I("mask", "MASK")]),
    "ImageStitch": N("image/transform", "Image Stitch",
                     [I("image1", "IMAGE"), I("direction", ["right", "down", "left", "up"], default="right"),
                      I("match_image_size", "BOOLEAN", default=True), INT("spacing_width", 0, 0, 1024, 2),
                      I("spacing_color", ["white", "black", "red", "green", "blue"], default="white")], ["IMAGE"],
                     optional=[I("image2", "IMAGE")]),
    "ImageFlip": N("image/transform", "ImageFlip",
                   [I("image", "IMAGE"), I("flip_method", ["x-axis: vertically", "y-axis: horizontally"])], ["IMAGE"]),
    "ImageRotate": N("image/transform", "ImageRotate",
                     [I("image", "IMAGE"), I("rotation", ["none", "90 degrees", "180 degrees", "270 degrees"])],
                     ["IMAGE"]),
    "EmptyImage": N("image", "EmptyImage",
                    [INT("width", 512, 1, MAXRES, 1), INT("height", 512, 1, MAXRES, 1), INT("batch_size", 1, 1, 4096),
                     INT("color", 0, 0, 0xFFFFFF, 1, display="color")], ["IMAGE"]),
    "RepeatImageBatch": N("image/batch", "RepeatImageBatch", [I("image", "IMAGE"), INT("amount", 1, 1, 4096)],
                          ["IMAGE"]),
    "ImageFromBatch": N("image/batch", "ImageFromBatch",
                        [I("image", "IMAGE"), INT("batch_index", 0, 0, 4095), INT("length", 1, 1, 4096)], ["IMAGE"]),
    "RebatchImages": N("image/batch", "Rebatch Images", [I("images", "IMAGE"), INT("batch_size", 1, 1, 4096)],
                       ["IMAGE"], is_list=[True]),
    "RebatchLatents": N("latent/batch", "Rebatch Latents", [I("latents", "LATENT"), INT("batch_size", 1, 1, 4096)],
                        ["LATENT"], is_list=[True]),
    "SplitImageWithAlpha": N("mask/compositing", "Split Image with Alpha", [I("image", "IMAGE")], ["IMAGE", "MASK"]),
    "JoinImageWithAlpha": N("mask/compositing", "Join Image with Alpha", [I("image", "IMAGE"), I("alpha", "MASK")],
                            ["IMAGE"]),
    "Morphology": N("image/postprocessing", "ImageMorphology",
                    [I("image", "IMAGE"),
                     I("operation", ["erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat"]),
                     INT("kernel_size", 3, 3, 999, 1)], ["IMAGE"]),
    "ImageQuantize": N("image/postprocessing", "Image Quantize",
                       [I("image", "IMAGE"), INT("colors", 256, 1, 256, 1),
                        I("dither", ["none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"])],
                       ["IMAGE"]),
    "LatentAdd": N("latent/advanced", "LatentAdd", [I("samples1", "LATENT"), I("samples2", "LATENT")], ["LATENT"]),
    "LatentSubtract": N("latent/advanced", "LatentSubtract", [I("samples1", "LATENT"), I("samples2", "LATENT")],
                        ["LATENT"]),
    "LatentMultiply": N("latent/advanced", "LatentMultiply",
                        [I("samples", "LATENT"), FLOAT("multiplier", 1.0, -10.0, 10.0, 0.01)], ["LATENT"]),
    "LatentInterpolate": N("latent/advanced", "LatentInterpolate",
                           [I("samples1", "LATENT"), I("samples2", "LATENT"), FLOAT("ratio", 1.0, 0.0, 1.0, 0.01)],
                           ["LATENT"]),
    "SaveLatent": N("_for_testing", "SaveLatent",
                    [I("samples", "LATENT"), I("filename_prefix", "STRING", default="latents/ComfyUI")], [],
                    output_node=True),
    "LoadLatent": N("_for_testing", "LoadLatent", [I("latent", ANY_COMBO)], ["LATENT"]),
}

CLASS_KEYS = {"input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
              "description", "python_module", "category", "output_node", "output_tooltips"}


class _FakePaths:
    """Just enough of engine.paths.Paths for file combos."""

    def list_files(self, folder: str) -> list[str]:
        return [f"{folder}_a.safetensors", f"{folder}_b.safetensors"]


@pytest.fixture(scope="module")
def info() -> dict:
    return REGISTRY.object_info(_FakePaths())


def test_every_comfyui_core_node_is_declared():
    missing = sorted(set(EXPECTED) - {nd.class_type for nd in REGISTRY.all()})
    assert not missing, f"ComfyUI core nodes we do not declare: {missing}"


def _check_input(cls: str, section: str, entry: list, row: tuple, problems: list) -> None:
    name, want_type, want_opts = row
    where = f"{cls}.{section}.{name}"
    assert isinstance(entry, list) and len(entry) in (1, 2), f"{where}: malformed entry {entry!r}"
    head, opts = entry[0], (entry[1] if len(entry) == 2 else {})
    if want_type is FILES:
        if not (isinstance(head, list) and all(isinstance(c, str) for c in head) and head):
            problems.append(f"{where}: expected a file combo, got {head!r}")
    elif want_type in (SAMPLER, SCHEDULER, ANY_COMBO):
        if not isinstance(head, list):
            problems.append(f"{where}: expected a combo, got {head!r}")
    elif isinstance(want_type, list):
        if head != want_type:
            problems.append(f"{where}: options {head!r} != ComfyUI's {want_type!r}")
    elif head != want_type:
        problems.append(f"{where}: type {head!r} != {want_type!r}")
    for key, value in want_opts.items():
        got = opts.get(key, "<missing>")
        if got != value or type(got) is bool and type(value) is not bool:
            problems.append(f"{where}: {key} = {got!r}, ComfyUI has {value!r}")


@pytest.mark.parametrize("cls", sorted(EXPECTED))
def test_declaration_matches_comfyui(cls, info):
    exp, got = EXPECTED[cls], info[cls]
    problems: list[str] = []
    req = [r[0] for r in exp["inputs"]]
    opt = [r[0] for r in exp["optional"]]
    if got["input_order"].get("required", []) != req:
        problems.append(f"required order {got['input_order'].get('required')} != {req}")
    if got["input_order"].get("optional", []) != opt:
        problems.append(f"optional order {got['input_order'].get('optional', [])} != {opt}")
    for section, rows in (("required", exp["inputs"]), ("optional", exp["optional"])):
        declared = got["input"].get(section, {})
        if list(declared) != [r[0] for r in rows]:
            problems.append(f"input.{section} keys {list(declared)} != {[r[0] for r in rows]}")
        for row in rows:
            if row[0] in declared:
                _check_input(cls, section, declared[row[0]], row, problems)
    checks = [("output", exp["outputs"]), ("output_name", exp["names"]),
              ("output_is_list", exp["is_list"]), ("output_node", exp["output_node"]),
              ("category", exp["category"]), ("name", cls)]
    if exp["display"] is not None:
        checks.append(("display_name", exp["display"]))
    if exp["description"] is not None:
        checks.append(("description", exp["description"]))
    for key, value in checks:
        if got[key] != value:
            problems.append(f"{key} = {got[key]!r}, ComfyUI has {value!r}")
    assert not problems, f"{cls}:\n  " + "\n  ".join(problems)


def test_entry_shape(info):
    for cls, entry in info.items():
        assert set(entry) == CLASS_KEYS, (cls, set(entry) ^ CLASS_KEYS)
        assert set(entry["input"]) <= {"required", "optional", "hidden"} and "required" in entry["input"], cls
        assert set(entry["input_order"]) <= {"required", "optional"}, cls
        for section in ("required", "optional"):
            assert list(entry["input"].get(section, {})) == entry["input_order"].get(section, []), (cls, section)
        n = len(entry["output"])
        assert len(entry["output_is_list"]) == n and len(entry["output_name"]) == n, cls
        assert len(entry["output_tooltips"]) == n, cls
        assert isinstance(entry["description"], str) and isinstance(entry["python_module"], str), cls
        assert isinstance(entry["output_node"], bool), cls
        for section in ("required", "optional"):
            for name, spec in entry["input"].get(section, {}).items():
                assert isinstance(spec, list) and 1 <= len(spec) <= 2, (cls, name, spec)
                assert isinstance(spec[0], (str, list)), (cls, name, spec)
                if len(spec) == 2:
                    assert isinstance(spec[1], dict), (cls, name, spec)
    assert info["SaveImage"]["input"]["hidden"]["prompt"] == "PROMPT"
    assert info["SaveImage"]["input"]["hidden"]["extra_pnginfo"] == "EXTRA_PNGINFO"
    assert "hidden" not in info["KSampler"]["input"]


def test_file_combo_shape(info):
    ckpt = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    assert ckpt[0] == ["checkpoints_a.safetensors", "checkpoints_b.safetensors"]
    assert isinstance(ckpt[1], dict) and ckpt[1]["tooltip"] == "The name of the checkpoint (model) to load."
    image = info["LoadImage"]["input"]["required"]["image"]
    assert isinstance(image[0], list) and image[1].get("image_upload") is True
    # Without paths (schema-only use), the file list is empty but still a list.
    bare = REGISTRY.get("VAELoader").object_info()["input"]["required"]["vae_name"]
    assert bare == [[], {}]


def test_tooltips_match_comfyui(info):
    ks = info["KSampler"]["input"]["required"]
    assert ks["seed"][1]["tooltip"] == "The random seed used for creating the noise."
    assert ks["scheduler"][1]["tooltip"] == "The scheduler controls how noise is gradually removed to form the image."
    assert ks["denoise"][1]["tooltip"].startswith("The amount of denoising applied, lower values will maintain")
    assert info["KSampler"]["output_tooltips"] == ["The denoised latent."]
    assert info["CheckpointLoaderSimple"]["output_tooltips"] == [
        "The model used for denoising latents.", "The CLIP model used for encoding text prompts.",
        "The VAE model used for encoding and decoding images to and from latent space."]
    assert info["VAEDecode"]["output_tooltips"] == ["The decoded image."]
    tiled = info["VAEEncodeTiled"]["input"]["required"]
    assert tiled["temporal_size"][1]["tooltip"] == "Only used for video VAEs: Amount of frames to encode at a time."
    assert info["VAEDecodeTiled"]["input"]["required"]["temporal_overlap"][1]["tooltip"] == \
        "Only used for video VAEs: Amount of frames to overlap."


def test_scheduler_options_are_comfyuis_in_comfyuis_order(info):
    for cls in ("KSampler", "KSamplerAdvanced", "BasicScheduler"):
        assert info[cls]["input"]["required"]["scheduler"][0] == COMFY_SCHEDULERS, cls


def test_sampler_options_follow_comfyuis_order(info):
    offered = info["KSampler"]["input"]["required"]["sampler_name"][0]
    assert offered == info["KSamplerAdvanced"]["input"]["required"]["sampler_name"][0]
    assert offered == info["KSamplerSelect"]["input"]["required"]["sampler_name"][0]
    known = [n for n in offered if n in COMFY_SAMPLERS]
    assert known == [n for n in COMFY_SAMPLERS if n in offered], "ComfyUI's relative order is not kept"
    assert offered[0] == "euler"
    must = ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral", "dpmpp_sde",
            "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc", "uni_pc_bh2", "lcm", "ddpm", "ipndm", "deis",
            "heunpp2", "dpm_fast", "dpm_adaptive"]
    assert not [n for n in must if n not in offered]


def test_every_comfyui_sampler_is_offered(info):
    offered = info["KSampler"]["input"]["required"]["sampler_name"][0]
    assert [n for n in COMFY_SAMPLERS if n not in offered] == []


# ------------------------------------------------------------------------ UI-format workflows
def _ui_node(nid, type_, widgets, inputs=(), outputs=(), mode=0):
    return {"id": nid, "type": type_, "pos": [100 * nid, 100], "size": [315, 100], "flags": {}, "order": nid,
            "mode": mode, "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs],
            "properties": {"Node name for S&R": type_}, "widgets_values": list(widgets)}


def _in(name, type_, link=None):
    return {"name": name, "type": type_, "link": link}


def _out(name, type_, links=(), slot=0):
    return {"name": name, "type": type_, "links": list(links), "slot_index": slot}


def _workflow(nodes, links=()):
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": [list(l) for l in links], "groups": [], "config": {},
            "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}


def test_ui_txt2img_positional_widgets_map_to_named_inputs():
    """ComfyUI's default workflow as its frontend saves it (seed followed by its control value)."""
    nodes = [
        _ui_node(4, "CheckpointLoaderSimple", ["v1-5-pruned-emaonly.safetensors"],
                 outputs=[_out("MODEL", "MODEL", [1], 0), _out("CLIP", "CLIP", [3, 5], 1), _out("VAE", "VAE", [8], 2)]),
        _ui_node(6, "CLIPTextEncode", ["beautiful scenery nature glass bottle landscape"],
                 inputs=[_in("clip", "CLIP", 3)], outputs=[_out("CONDITIONING", "CONDITIONING", [4])]),
        _ui_node(7, "CLIPTextEncode", ["text, watermark"], inputs=[_in("clip", "CLIP", 5)],
                 outputs=[_out("CONDITIONING", "CONDITIONING", [6])]),
        _ui_node(5, "EmptyLatentImage", [512, 768, 2], outputs=[_out("LATENT", "LATENT", [2])]),
        _ui_node(3, "KSampler", [156680208700286, "randomize", 20, 8, "euler", "normal", 1],
                 inputs=[_in("model", "MODEL", 1), _in("positive", "CONDITIONING", 4),
                         _in("negative", "CONDITIONING", 6), _in("latent_image", "LATENT", 2)],
                 outputs=[_out("LATENT", "LATENT", [7])]),
        _ui_node(8, "VAEDecode", [], inputs=[_in("samples", "LATENT", 7), _in("vae", "VAE", 8)],
                 outputs=[_out("IMAGE", "IMAGE", [9])]),
        _ui_node(9, "SaveImage", ["ComfyUI"], inputs=[_in("images", "IMAGE", 9)]),
    ]
    links = [(1, 4, 0, 3, 0, "MODEL"), (2, 5, 0, 3, 3, "LATENT"), (3, 4, 1, 6, 0, "CLIP"),
             (4, 6, 0, 3, 1, "CONDITIONING"), (5, 4, 1, 7, 0, "CLIP"), (6, 7, 0, 3, 2, "CONDITIONING"),
             (7, 3, 0, 8, 0, "LATENT"), (8, 4, 2, 8, 1, "VAE"), (9, 8, 0, 9, 0, "IMAGE")]
    prompt = ui_to_prompt(_workflow(nodes, links), REGISTRY)
    assert prompt["3"]["inputs"] == {"seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler",
                                     "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                     "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}
    assert prompt["5"]["inputs"] == {"width": 512, "height": 768, "batch_size": 2}
    assert prompt["4"]["inputs"] == {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}
    assert prompt["6"]["inputs"] == {"text": "beautiful scenery nature glass bottle landscape", "clip": ["4", 1]}
    assert prompt["8"]["inputs"] == {"samples": ["3", 0], "vae": ["4", 2]}
    assert prompt["9"]["inputs"] == {"filename_prefix": "ComfyUI", "images": ["8", 0]}


# (class, widgets_values as ComfyUI's frontend writes them, expected widget inputs)
UI_CASES = [
    ("CheckpointLoader", ["v1-inference.yaml", "model.ckpt"], {"config_name": "v1-inference.yaml", "ckpt_name": "model.ckpt"}),
    ("VAELoader", ["vae-ft-mse.safetensors"], {"vae_name": "vae-ft-mse.safetensors"}),
    ("UNETLoader", ["sd15_unet.safetensors", "default"], {"unet_name": "sd15_unet.safetensors", "weight_dtype": "default"}),
    ("CLIPLoader", ["clip_l.safetensors", "stable_diffusion", "default"],
     {"clip_name": "clip_l.safetensors", "type": "stable_diffusion", "device": "default"}),
    ("DualCLIPLoader", ["clip_l.safetensors", "clip_g.safetensors", "sdxl", "default"],
     {"clip_name1": "clip_l.safetensors", "clip_name2": "clip_g.safetensors", "type": "sdxl", "device": "default"}),
    ("LoraLoader", ["style.safetensors", 0.8, 0.6],
     {"lora_name": "style.safetensors", "strength_model": 0.8, "strength_clip": 0.6}),
    ("LoraLoaderModelOnly", ["style.safetensors", 0.7], {"lora_name": "style.safetensors", "strength_model": 0.7}),
    ("UpscaleModelLoader", ["4x-UltraSharp.pth"], {"model_name": "4x-UltraSharp.pth"}),
    ("CLIPSetLastLayer", [-2], {"stop_at_clip_layer": -2}),
    ("CLIPTextEncodeSDXL", [1024, 1024, 0, 0, 1024, 1024, "a castle", "a castle, oil"],
     {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024,
      "text_g": "a castle", "text_l": "a castle, oil"}),
    ("CLIPTextEncodeSDXLRefiner", [6, 1024, 1024, "a castle"],
     {"ascore": 6, "width": 1024, "height": 1024, "text": "a castle"}),
    ("ConditioningAverage", [0.3], {"conditioning_to_strength": 0.3}),
    ("ConditioningSetArea", [256, 512, 64, 0, 1.0], {"width": 256, "height": 512, "x": 64, "y": 0, "strength": 1.0}),
    ("ConditioningSetAreaPercentage", [0.5, 1.0, 0.5, 0, 1.2],
     {"width": 0.5, "height": 1.0, "x": 0.5, "y": 0, "strength": 1.2}),
    ("ConditioningSetAreaStrength", [0.8], {"strength": 0.8}),
    ("ConditioningSetMask", [1.0, "mask bounds"], {"strength": 1.0, "set_cond_area": "mask bounds"}),
    ("ConditioningSetTimestepRange", [0.0, 0.5], {"start": 0.0, "end": 0.5}),
    ("InpaintModelConditioning", [True], {"noise_mask": True}),
    ("KSamplerAdvanced", ["enable", 42, "fixed", 25, 7.5, "dpmpp_2m", "karras", 0, 10000, "disable"],
     {"add_noise": "enable", "noise_seed": 42, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m",
      "scheduler": "karras", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}),
    ("KSampler", [5, True, 30, 7, "euler_ancestral", "karras", 0.6],  # a 2023 file: boolean control value
     {"seed": 5, "steps": 30, "cfg": 7, "sampler_name": "euler_ancestral", "scheduler": "karras", "denoise": 0.6}),
    ("LatentUpscale", ["nearest-exact", 1152, 1536, "disabled"],
     {"upscale_method": "nearest-exact", "width": 1152, "height": 1536, "crop": "disabled"}),
    ("LatentUpscaleBy", ["bislerp", 1.5], {"upscale_method": "bislerp", "scale_by": 1.5}),
    ("LatentComposite", [64, 128, 16], {"x": 64, "y": 128, "feather": 16}),
    ("LatentCompositeMasked", [8, 16, True], {"x": 8, "y": 16, "resize_source": True}),
    ("LatentBlend", [0.25], {"blend_factor": 0.25}),
    ("LatentFromBatch", [1, 2], {"batch_index": 1, "length": 2}),
    ("RepeatLatentBatch", [3], {"amount": 3}),
    ("LatentFlip", ["y-axis: horizontally"], {"flip_method": "y-axis: horizontally"}),
    ("LatentRotate", ["90 degrees"], {"rotation": "90 degrees"}),
    ("LatentCrop", [256, 320, 32, 64], {"width": 256, "height": 320, "x": 32, "y": 64}),
    ("VAEDecodeTiled", [512, 64, 64, 8], {"tile_size": 512, "overlap": 64, "temporal_size": 64, "temporal_overlap": 8}),
    ("VAEEncodeTiled", [1024, 128, 32, 4], {"tile_size": 1024, "overlap": 128, "temporal_size": 32, "temporal_overlap": 4}),
    ("VAEEncodeForInpaint", [6], {"grow_mask_by": 6}),
    ("LoadImage", ["example.png", "image"], {"image": "example.png"}),  # the upload button's value trails
    ("LoadImageMask", ["mask.png", "alpha", "image"], {"image": "mask.png", "channel": "alpha"}),
    ("SaveImage", ["portraits/%date:yyyy-MM-dd%/img"], {"filename_prefix": "portraits/%date:yyyy-MM-dd%/img"}),
    ("PreviewImage", [], {}),
    ("ImageScale", ["lanczos", 1024, 0, "center"], {"upscale_method": "lanczos", "width": 1024, "height": 0, "crop": "center"}),
    ("ImageScaleBy", ["area", 0.5], {"upscale_method": "area", "scale_by": 0.5}),
    ("ImageScaleToTotalPixels", ["bicubic", 1.0], {"upscale_method": "bicubic", "megapixels": 1.0}),
    ("ImagePadForOutpaint", [64, 0, 128, 0, 40], {"left": 64, "top": 0, "right": 128, "bottom": 0, "feathering": 40}),
    ("ImageCrop", [256, 128, 10, 20], {"width": 256, "height": 128, "x": 10, "y": 20}),
    ("ImageBlend", [0.5, "overlay"], {"blend_factor": 0.5, "blend_mode": "overlay"}),
    ("ImageBlur", [3, 1.5], {"blur_radius": 3, "sigma": 1.5}),
    ("ImageSharpen", [2, 1.0, 0.5], {"sharpen_radius": 2, "sigma": 1.0, "alpha": 0.5}),
    ("SolidMask", [0.5, 512, 256], {"value": 0.5, "width": 512, "height": 256}),
    ("MaskComposite", [10, 20, "add"], {"x": 10, "y": 20, "operation": "add"}),
    ("FeatherMask", [4, 8, 12, 16], {"left": 4, "top": 8, "right": 12, "bottom": 16}),
    ("GrowMask", [5, False], {"expand": 5, "tapered_corners": False}),
    ("ImageToMask", ["green"], {"channel": "green"}),
    ("ThresholdMask", [0.25], {"value": 0.25}),
    ("CropMask", [1, 2, 300, 200], {"x": 1, "y": 2, "width": 300, "height": 200}),
    ("SamplerCustom", [True, 42, "randomize", 1.0], {"add_noise": True, "noise_seed": 42, "cfg": 1.0}),
    ("BasicScheduler", ["karras", 12, 0.5], {"scheduler": "karras", "steps": 12, "denoise": 0.5}),
    ("KarrasScheduler", [20, 14.6, 0.03, 7.0], {"steps": 20, "sigma_max": 14.6, "sigma_min": 0.03, "rho": 7.0}),
    ("ExponentialScheduler", [20, 14.6, 0.03], {"steps": 20, "sigma_max": 14.6, "sigma_min": 0.03}),
    ("PolyexponentialScheduler", [20, 14.6, 0.03, 1.5],
     {"steps": 20, "sigma_max": 14.6, "sigma_min": 0.03, "rho": 1.5}),
    ("SDTurboScheduler", [1, 1.0], {"steps": 1, "denoise": 1.0}),
    ("LaplaceScheduler", [20, 14.6, 0.03, 0.5, 0.6],
     {"steps": 20, "sigma_max": 14.6, "sigma_min": 0.03, "mu": 0.5, "beta": 0.6}),
    ("VPScheduler", [20, 19.9, 0.1, 0.001], {"steps": 20, "beta_d": 19.9, "beta_min": 0.1, "eps_s": 0.001}),
    ("SetFirstSigma", [100.0], {"sigma": 100.0}),
    ("ExtendIntermediateSigmas", [3, -1.0, 12.0, "cosine"],
     {"steps": 3, "start_at_sigma": -1.0, "end_at_sigma": 12.0, "spacing": "cosine"}),
    ("SamplingPercentToSigma", [0.25, True], {"sampling_percent": 0.25, "return_actual_sigma": True}),
    ("SamplerER_SDE", ["ODE", 2, 0.5, 1.0], {"solver_type": "ODE", "max_stage": 2, "eta": 0.5, "s_noise": 1.0}),
    ("BetaSamplingScheduler", [20, 0.6, 0.6], {"steps": 20, "alpha": 0.6, "beta": 0.6}),
    ("AlignYourStepsScheduler", ["SDXL", 10, 1.0], {"model_type": "SDXL", "steps": 10, "denoise": 1.0}),
    ("SplitSigmas", [5], {"step": 5}),
    ("SplitSigmasDenoise", [0.4], {"denoise": 0.4}),
    ("RandomNoise", [7, "fixed"], {"noise_seed": 7}),
    ("CFGGuider", [4.5], {"cfg": 4.5}),
    ("DualCFGGuider", [5.0, 3.0, "nested"], {"cfg_conds": 5.0, "cfg_cond2_negative": 3.0, "style": "nested"}),
    ("KSamplerSelect", ["dpmpp_2m"], {"sampler_name": "dpmpp_2m"}),
    ("SamplerEulerAncestral", [0.8, 1.0], {"eta": 0.8, "s_noise": 1.0}),
    ("SamplerEulerAncestralCFGPP", [0.5, 1.0], {"eta": 0.5, "s_noise": 1.0}),
    ("SamplerLMS", [3], {"order": 3}),
    ("SamplerDPMPP_3M_SDE", [1.0, 1.0, "cpu"], {"eta": 1.0, "s_noise": 1.0, "noise_device": "cpu"}),
    ("SamplerDPMPP_2M_SDE", ["heun", 1.0, 1.0, "gpu"],
     {"solver_type": "heun", "eta": 1.0, "s_noise": 1.0, "noise_device": "gpu"}),
    ("SamplerDPMPP_SDE", [1.0, 1.0, 0.5, "cpu"], {"eta": 1.0, "s_noise": 1.0, "r": 0.5, "noise_device": "cpu"}),
    ("SamplerDPMPP_2S_Ancestral", [1.0, 0.9], {"eta": 1.0, "s_noise": 0.9}),
    ("PrimitiveInt", [5, "fixed"], {"value": 5}),
    ("PrimitiveFloat", [1.5], {"value": 1.5}),
    ("PrimitiveString", ["hi"], {"value": "hi"}),
    ("PrimitiveStringMultiline", ["a\nb"], {"value": "a\nb"}),
    ("PrimitiveBoolean", [True], {"value": True}),
    ("ImageCompositeMasked", [10, 20, True], {"x": 10, "y": 20, "resize_source": True}),
    ("ImageStitch", ["down", False, 4, "red"],
     {"direction": "down", "match_image_size": False, "spacing_width": 4, "spacing_color": "red"}),
    ("ImageFlip", ["x-axis: vertically"], {"flip_method": "x-axis: vertically"}),
    ("ImageRotate", ["90 degrees"], {"rotation": "90 degrees"}),
    ("EmptyImage", [64, 32, 2, 255], {"width": 64, "height": 32, "batch_size": 2, "color": 255}),
    ("RepeatImageBatch", [2], {"amount": 2}),
    ("ImageFromBatch", [1, 2], {"batch_index": 1, "length": 2}),
    ("RebatchImages", [3], {"batch_size": 3}),
    ("RebatchLatents", [2], {"batch_size": 2}),
    ("Morphology", ["dilate", 5], {"operation": "dilate", "kernel_size": 5}),
    ("ImageQuantize", [16, "bayer-4"], {"colors": 16, "dither": "bayer-4"}),
    ("LatentMultiply", [0.5], {"multiplier": 0.5}),
    ("LatentInterpolate", [0.3], {"ratio": 0.3}),
    ("SaveLatent", ["latents/x"], {"filename_prefix": "latents/x"}),
    ("LoadLatent", ["x.latent"], {"latent": "x.latent"}),
]


@pytest.mark.parametrize("cls,widgets,expected", UI_CASES, ids=[c[0] for c in UI_CASES])
def test_ui_widget_order_per_node(cls, widgets, expected):
    prompt = ui_to_prompt(_workflow([_ui_node(1, cls, widgets)]), REGISTRY)
    assert prompt["1"]["class_type"] == cls
    assert prompt["1"]["inputs"] == expected


def test_ui_cases_cover_every_node_with_widgets():
    covered = {c[0] for c in UI_CASES} | {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
                                          "SaveImage"}
    with_widgets = {cls for cls in EXPECTED if any(s.widget for s in REGISTRY.get(cls).inputs)}
    assert with_widgets <= covered, sorted(with_widgets - covered)
