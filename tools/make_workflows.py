"""Writes the example workflows: workflows/api/<name>.json (ComfyUI API prompts) and
workflows/<name>.json (native editor documents, laid out automatically, with a title and groups).

The graphs are defined here once, in Python, so the two formats can never drift apart:
`python tools/make_workflows.py` regenerates both (tests check the files are up to date).
Model names are the ones users have: the embedded demo checkpoint where it can do the job,
the usual file names of the public models otherwise.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = "latentgraph-demo.safetensors"
SD_INPAINT = "sd-v1-5-inpainting.ckpt"
SDXL_BASE = "sd_xl_base_1.0.safetensors"
SDXL_REFINER = "sd_xl_refiner_1.0.safetensors"
SDXL_TURBO = "sd_xl_turbo_1.0_fp16.safetensors"
UPSCALER = "RealESRGAN_x4plus.pth"
LDM_CIN = "cin256-v2.ckpt"  # CompVis latent-diffusion's class-conditional ImageNet LDM (VQ-f4)
LDM_CELEBA = "ldm-celebahq-256.ckpt"  # CompVis' unconditional CelebA-HQ LDM (VQ-f4)
SD_X4 = "x4-upscaler-ema.safetensors"
SD2_DEPTH = "512-depth-ema.safetensors"
LORA = "example_lora.safetensors"


def _n(class_type: str, title: str | None = None, **inputs) -> dict:
    node = {"class_type": class_type, "inputs": inputs}
    if title:
        node["_meta"] = {"title": title}
    return node


def _txt2img_core(ckpt: str = DEMO, width: int = 128, height: int = 128, steps: int = 20, cfg: float = 5.0,
                  positive: str = "a red circle on the left, on a blue background", negative: str = "",
                  seed: int = 42) -> dict:
    return {
        "4": _n("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name=ckpt),
        "6": _n("CLIPTextEncode", "Positive prompt", text=positive, clip=["4", 1]),
        "7": _n("CLIPTextEncode", "Negative prompt", text=negative, clip=["4", 1]),
        "5": _n("EmptyLatentImage", "Empty Latent Image", width=width, height=height, batch_size=1),
        "3": _n("KSampler", "KSampler", model=["4", 0], seed=seed, steps=steps, cfg=cfg, sampler_name="euler",
                scheduler="normal", positive=["6", 0], negative=["7", 0], latent_image=["5", 0], denoise=1.0),
        "8": _n("VAEDecode", "VAE Decode", samples=["3", 0], vae=["4", 2]),
        "9": _n("SaveImage", "Save Image", images=["8", 0], filename_prefix="Latentgraph"),
    }


def txt2img() -> dict:
    return _txt2img_core()


def img2img() -> dict:
    g = _txt2img_core(positive="a yellow star in the center, on a purple background")
    del g["5"]
    g["10"] = _n("LoadImage", "Load Image", image="example.png")
    g["11"] = _n("VAEEncode", "VAE Encode", pixels=["10", 0], vae=["4", 2])
    g["3"]["inputs"].update(latent_image=["11", 0], denoise=0.6)
    g["9"]["inputs"]["filename_prefix"] = "img2img"
    return g


def inpaint_noise_mask() -> dict:
    g = img2img()
    g["6"]["inputs"]["text"] = "a green square in the center, on a white background"
    g["10"]["inputs"]["image"] = "example_inpaint.png"
    g["12"] = _n("SetLatentNoiseMask", "Set Latent Noise Mask", samples=["11", 0], mask=["10", 1])
    g["3"]["inputs"].update(latent_image=["12", 0], denoise=1.0)
    g["9"]["inputs"]["filename_prefix"] = "inpaint"
    return g


def inpaint_model() -> dict:
    g = _txt2img_core(ckpt=SD_INPAINT, width=512, height=512, cfg=7.0,
                      positive="a cat sitting on a bench, photograph", negative="blurry, lowres")
    del g["5"]
    g["10"] = _n("LoadImage", "Load Image", image="example_inpaint.png")
    g["11"] = _n("VAEEncodeForInpaint", "VAE Encode (for Inpainting)", pixels=["10", 0], vae=["4", 2],
                 mask=["10", 1], grow_mask_by=6)
    g["3"]["inputs"]["latent_image"] = ["11", 0]
    g["9"]["inputs"]["filename_prefix"] = "inpaint_model"
    return g


def outpaint() -> dict:
    g = _txt2img_core(positive="a blue circle on the left, on a yellow background")
    del g["5"]
    g["10"] = _n("LoadImage", "Load Image", image="example.png")
    g["13"] = _n("ImagePadForOutpaint", "Pad Image for Outpainting", image=["10", 0], left=64, top=0,
                 right=64, bottom=0, feathering=16)
    g["11"] = _n("VAEEncodeForInpaint", "VAE Encode (for Inpainting)", pixels=["13", 0], vae=["4", 2],
                 mask=["13", 1], grow_mask_by=6)
    g["3"]["inputs"]["latent_image"] = ["11", 0]
    g["9"]["inputs"]["filename_prefix"] = "outpaint"
    return g


def hires_fix() -> dict:
    g = _txt2img_core(positive="a small orange triangle at the top, on a green background")
    g["10"] = _n("LatentUpscaleBy", "Upscale Latent By", samples=["3", 0], upscale_method="bislerp", scale_by=2.0)
    g["11"] = _n("KSampler", "KSampler (hires pass)", model=["4", 0], seed=43, steps=12, cfg=5.0,
                 sampler_name="dpmpp_2m", scheduler="karras", positive=["6", 0], negative=["7", 0],
                 latent_image=["10", 0], denoise=0.5)
    g["8"]["inputs"]["samples"] = ["11", 0]
    g["9"]["inputs"]["filename_prefix"] = "hires"
    return g


def upscale_model() -> dict:
    g = _txt2img_core()
    g["10"] = _n("UpscaleModelLoader", "Load Upscale Model", model_name=UPSCALER)
    g["11"] = _n("ImageUpscaleWithModel", "Upscale Image (using Model)", upscale_model=["10", 0], image=["8", 0])
    g["9"]["inputs"].update(images=["11", 0], filename_prefix="upscaled")
    return g


def lora() -> dict:
    g = _txt2img_core()
    g["10"] = _n("LoraLoader", "Load LoRA", model=["4", 0], clip=["4", 1], lora_name=LORA,
                 strength_model=0.8, strength_clip=0.8)
    g["6"]["inputs"]["clip"] = ["10", 1]
    g["7"]["inputs"]["clip"] = ["10", 1]
    g["3"]["inputs"]["model"] = ["10", 0]
    g["9"]["inputs"]["filename_prefix"] = "lora"
    return g


def area_composition() -> dict:
    g = _txt2img_core(width=256, height=128, positive="a green background")
    g["10"] = _n("CLIPTextEncode", "Left prompt", text="a red circle, on a green background", clip=["4", 1])
    g["11"] = _n("ConditioningSetArea", "Left area", conditioning=["10", 0], width=128, height=128, x=0, y=0,
                 strength=1.0)
    g["12"] = _n("CLIPTextEncode", "Right prompt", text="a blue square, on a green background", clip=["4", 1])
    g["13"] = _n("ConditioningSetArea", "Right area", conditioning=["12", 0], width=128, height=128, x=128, y=0,
                 strength=1.0)
    g["14"] = _n("ConditioningCombine", "Combine left", conditioning_1=["6", 0], conditioning_2=["11", 0])
    g["15"] = _n("ConditioningCombine", "Combine right", conditioning_1=["14", 0], conditioning_2=["13", 0])
    g["3"]["inputs"]["positive"] = ["15", 0]
    g["9"]["inputs"]["filename_prefix"] = "area"
    return g


def sdxl_refiner() -> dict:
    text = "a lighthouse on a cliff at sunset, dramatic sky"
    neg = "blurry, lowres"
    return {
        "4": _n("CheckpointLoaderSimple", "Load SDXL base", ckpt_name=SDXL_BASE),
        "12": _n("CheckpointLoaderSimple", "Load SDXL refiner", ckpt_name=SDXL_REFINER),
        "6": _n("CLIPTextEncodeSDXL", "Base positive", clip=["4", 1], width=1024, height=1024, crop_w=0,
                crop_h=0, target_width=1024, target_height=1024, text_g=text, text_l=text),
        "7": _n("CLIPTextEncodeSDXL", "Base negative", clip=["4", 1], width=1024, height=1024, crop_w=0,
                crop_h=0, target_width=1024, target_height=1024, text_g=neg, text_l=neg),
        "15": _n("CLIPTextEncodeSDXLRefiner", "Refiner positive", ascore=6.0, width=1024, height=1024,
                 text=text, clip=["12", 1]),
        "16": _n("CLIPTextEncodeSDXLRefiner", "Refiner negative", ascore=2.5, width=1024, height=1024,
                 text=neg, clip=["12", 1]),
        "5": _n("EmptyLatentImage", "Empty Latent Image", width=1024, height=1024, batch_size=1),
        "10": _n("KSamplerAdvanced", "Base (steps 0–20)", model=["4", 0], add_noise="enable", noise_seed=42,
                 steps=25, cfg=7.0, sampler_name="euler", scheduler="normal", positive=["6", 0],
                 negative=["7", 0], latent_image=["5", 0], start_at_step=0, end_at_step=20,
                 return_with_leftover_noise="enable"),
        "11": _n("KSamplerAdvanced", "Refiner (steps 20–25)", model=["12", 0], add_noise="disable",
                 noise_seed=42, steps=25, cfg=7.0, sampler_name="euler", scheduler="normal",
                 positive=["15", 0], negative=["16", 0], latent_image=["10", 0], start_at_step=20,
                 end_at_step=10000, return_with_leftover_noise="disable"),
        "17": _n("VAEDecode", "VAE Decode", samples=["11", 0], vae=["12", 2]),
        "19": _n("SaveImage", "Save Image", images=["17", 0], filename_prefix="sdxl"),
    }


def sdxl_turbo() -> dict:
    """SDXL Turbo in one step: SamplerCustom with the SD Turbo schedule, cfg 1 (no negative pass)."""
    return {
        "4": _n("CheckpointLoaderSimple", "Load SDXL Turbo", ckpt_name=SDXL_TURBO),
        "6": _n("CLIPTextEncode", "Positive prompt", text="a photo of a red fox in the snow, detailed fur",
                clip=["4", 1]),
        "7": _n("CLIPTextEncode", "Negative prompt (unused at cfg 1)", text="", clip=["4", 1]),
        "5": _n("EmptyLatentImage", "Empty Latent Image", width=512, height=512, batch_size=1),
        "10": _n("SDTurboScheduler", "SDTurboScheduler", model=["4", 0], steps=1, denoise=1.0),
        "11": _n("KSamplerSelect", "KSamplerSelect", sampler_name="euler_ancestral"),
        "12": _n("SamplerCustom", "SamplerCustom", model=["4", 0], add_noise=True, noise_seed=42, cfg=1.0,
                 positive=["6", 0], negative=["7", 0], sampler=["11", 0], sigmas=["10", 0],
                 latent_image=["5", 0]),
        "8": _n("VAEDecode", "VAE Decode", samples=["12", 0], vae=["4", 2]),
        "9": _n("SaveImage", "Save Image", images=["8", 0], filename_prefix="sdxl_turbo"),
    }


def ldm_class_conditional() -> dict:
    """The LDM paper's class-conditional ImageNet model: a class index instead of a prompt, the
    "no class" row (1000) as the negative for classifier-free guidance."""
    return {
        "4": _n("CheckpointLoaderSimple", "Load LDM cin256", ckpt_name=LDM_CIN),
        "6": _n("ClassEmbed", "Class: golden retriever", clip=["4", 1], class_index=207),
        "7": _n("ClassEmbed", "No class (guidance)", clip=["4", 1], class_index=1000),
        "5": _n("EmptyLatentImage", "Empty Latent Image", width=256, height=256, batch_size=1),
        "3": _n("KSampler", "KSampler", model=["4", 0], seed=42, steps=50, cfg=3.0, sampler_name="ddim",
                scheduler="ddim_uniform", positive=["6", 0], negative=["7", 0], latent_image=["5", 0],
                denoise=1.0),
        "8": _n("VAEDecode", "VAE Decode", samples=["3", 0], vae=["4", 2]),
        "9": _n("SaveImage", "Save Image", images=["8", 0], filename_prefix="ldm_cin256"),
    }


def ldm_unconditional() -> dict:
    """An unconditional LDM (CelebA-HQ faces): nothing to say, so one empty conditioning on both sides."""
    return {
        "4": _n("CheckpointLoaderSimple", "Load LDM CelebA-HQ", ckpt_name=LDM_CELEBA),
        "6": _n("UnconditionalConditioning", "Unconditional"),
        "5": _n("EmptyLatentImage", "Empty Latent Image", width=256, height=256, batch_size=1),
        "3": _n("KSampler", "KSampler", model=["4", 0], seed=42, steps=50, cfg=1.0, sampler_name="ddim",
                scheduler="ddim_uniform", positive=["6", 0], negative=["6", 0], latent_image=["5", 0],
                denoise=1.0),
        "8": _n("VAEDecode", "VAE Decode", samples=["3", 0], vae=["4", 2]),
        "9": _n("SaveImage", "Save Image", images=["8", 0], filename_prefix="ldm_celebahq"),
    }


def sd_x4_upscaler() -> dict:
    """Stable Diffusion's x4 upscaler: the image conditions the sampler, a prompt steers it."""
    return {
        "1": _n("LoadImage", "Load Image", image="example.png"),
        "4": _n("CheckpointLoaderSimple", "Load x4 upscaler", ckpt_name=SD_X4),
        "6": _n("CLIPTextEncode", "Positive prompt", text="a red circle on a blue background, sharp edges",
                clip=["4", 1]),
        "7": _n("CLIPTextEncode", "Negative prompt", text="blurry", clip=["4", 1]),
        "10": _n("SD_4XUpscale_Conditioning", "SD_4XUpscale_Conditioning", images=["1", 0], positive=["6", 0],
                 negative=["7", 0], scale_ratio=4.0, noise_augmentation=0.2),
        "3": _n("KSampler", "KSampler", model=["4", 0], seed=42, steps=20, cfg=4.0, sampler_name="euler",
                scheduler="normal", positive=["10", 0], negative=["10", 1], latent_image=["10", 2],
                denoise=1.0),
        "8": _n("VAEDecode", "VAE Decode", samples=["3", 0], vae=["4", 2]),
        "9": _n("SaveImage", "Save Image", images=["8", 0], filename_prefix="sd_x4"),
    }


def depth2img() -> dict:
    """SD2 depth-to-image: the depth map (brighter = nearer) comes from an image in the graph."""
    return {
        "1": _n("LoadImage", "Load depth map", image="example_depth.png"),
        "4": _n("CheckpointLoaderSimple", "Load SD2 depth", ckpt_name=SD2_DEPTH),
        "6": _n("CLIPTextEncode", "Positive prompt", text="a red ball in front of a stone wall", clip=["4", 1]),
        "7": _n("CLIPTextEncode", "Negative prompt", text="blurry", clip=["4", 1]),
        "10": _n("Depth2ImgConditioning", "Depth2Img Conditioning", positive=["6", 0], negative=["7", 0],
                 depth=["1", 0]),
        "5": _n("EmptyLatentImage", "Empty Latent Image", width=512, height=512, batch_size=1),
        "3": _n("KSampler", "KSampler", model=["4", 0], seed=42, steps=25, cfg=7.0, sampler_name="euler",
                scheduler="normal", positive=["10", 0], negative=["10", 1], latent_image=["5", 0], denoise=1.0),
        "8": _n("VAEDecode", "VAE Decode", samples=["3", 0], vae=["4", 2]),
        "9": _n("SaveImage", "Save Image", images=["8", 0], filename_prefix="depth2img"),
    }


def pyramid_sampling() -> dict:
    """The demo model sampled coarse-to-fine: half size for the first half of the steps."""
    w = _txt2img_core()
    w["3"] = _n("KSamplerPyramid", "KSampler (Laplacian pyramid)", model=["4", 0], seed=42, steps=20, cfg=5.0,
                sampler_name="euler", scheduler="normal", positive=["6", 0], negative=["7", 0],
                latent_image=["5", 0], levels=2, switch_points="0.5")
    w["9"]["inputs"]["filename_prefix"] = "pyramid"
    return w


WORKFLOWS = {
    "default": ("Text to image (demo model)", txt2img),
    "img2img": ("Image to image", img2img),
    "inpaint": ("Inpaint with a noise mask", inpaint_noise_mask),
    "inpaint_model": ("Inpaint with an inpainting model", inpaint_model),
    "outpaint": ("Outpaint (pad the image)", outpaint),
    "hires_fix": ("Hires fix (latent upscale + second pass)", hires_fix),
    "upscale_model": ("Upscale with a model", upscale_model),
    "lora": ("LoRA", lora),
    "area_composition": ("Area composition", area_composition),
    "sdxl_refiner": ("SDXL base + refiner", sdxl_refiner),
    "sdxl_turbo": ("SDXL Turbo with SamplerCustom", sdxl_turbo),
    "ldm_class_conditional": ("LDM: class-conditional ImageNet (cin256)", ldm_class_conditional),
    "ldm_unconditional": ("LDM: unconditional CelebA-HQ", ldm_unconditional),
    "sd_x4_upscaler": ("SD x4 upscaler", sd_x4_upscaler),
    "depth2img": ("SD2 depth-to-image from a depth map", depth2img),
    "pyramid_sampling": ("Laplacian-pyramid sampling (demo model)", pyramid_sampling),
}


def build_all() -> dict[str, tuple[str, dict, dict]]:
    """{name: (title, api prompt, native document)}."""
    from engine.formats.native import from_prompt
    from nodes.plugins import load_all
    from nodes.registry import REGISTRY

    load_all()
    out = {}
    for name, (title, fn) in WORKFLOWS.items():
        prompt = fn()
        doc = from_prompt(prompt, REGISTRY, layout=True)
        doc["title"] = title
        out[name] = (title, prompt, doc)
    return out


def _dump(obj: dict) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_example_inputs() -> None:
    """input/example.png (a large red circle on blue, 128×128, the demo's native size) and
    input/example_inpaint.png (the same with a transparent centre square: LoadImage's mask)."""
    import numpy as np
    from PIL import Image

    from tools.demo_data import DemoObject, DemoScene, render

    scene = DemoScene((DemoObject("circle", "red", "large", "center"),), "blue")
    rgb = render(scene, np.random.default_rng(0), size=128)
    Image.fromarray(rgb).save(ROOT / "input" / "example.png")
    alpha = np.full(rgb.shape[:2], 255, dtype=np.uint8)
    alpha[32:96, 32:96] = 0
    Image.fromarray(np.dstack([rgb, alpha])).save(ROOT / "input" / "example_inpaint.png")
    y, x = np.mgrid[0:128, 0:128]
    near = np.clip(255 - np.hypot(x - 64, y - 72) * 4, 40, 255)  # a ball in front of a far wall
    Image.fromarray(np.repeat(near[..., None], 3, -1).astype(np.uint8)).save(ROOT / "input" / "example_depth.png")


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    write_example_inputs()
    (ROOT / "workflows" / "api").mkdir(parents=True, exist_ok=True)
    for name, (_title, prompt, doc) in build_all().items():
        (ROOT / "workflows" / "api" / f"{name}.json").write_text(_dump(prompt), encoding="utf-8")
        (ROOT / "workflows" / f"{name}.json").write_text(_dump(doc), encoding="utf-8")
        print(f"workflows/{name}.json  workflows/api/{name}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
