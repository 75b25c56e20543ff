"""Image nodes: load/save/preview, resizing, padding, cropping and post-processing (ComfyUI names).

An IMAGE is [B,H,W,C] float 0..1 on the CPU (ARCHITECTURE.md §1).
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import random
import re
import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence

from engine.formats.png import write_png
from engine.paths import safe_join
from ldm import image_ops as ops
from nodes.memory import ensure_image_fits, ensure_resize_fits
from nodes.registry import Combo, Float, In, Int, NodeOutput, Out, String, files, node

MAX_RES = 16384
SCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
BLEND_MODES = ["normal", "multiply", "screen", "overlay", "soft_light", "difference"]


# ----------------------------------------------------------------------------------------- loading
def _input_file(ctx, name: str) -> Path:
    return ctx.paths.model_path("input_images", name)


def _frames(img: Image.Image):
    """The frames of a (possibly animated) image; MPO files are stereo pairs, so only the first."""
    if getattr(img, "format", None) == "MPO":
        return [img]
    return ImageSequence.Iterator(img)


def _frame_to_tensors(frame: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One frame → (RGB [H,W,3], mask [H,W] = 1 − alpha, or None without alpha)."""
    frame = ImageOps.exif_transpose(frame)
    if frame.mode == "I":
        frame = frame.point(lambda i: i * (1 / 255))
    if frame.mode == "P" and "transparency" in frame.info:
        frame = frame.convert("RGBA")
    rgb = torch.from_numpy(np.asarray(frame.convert("RGB")).astype(np.float32) / 255.0)
    mask = None
    if "A" in frame.getbands():
        alpha = np.asarray(frame.getchannel("A")).astype(np.float32) / 255.0
        mask = 1.0 - torch.from_numpy(alpha)
    return rgb, mask


def load_image_file(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE batch (frames of the first frame's size) and MASK (64×64 zeros when there is no alpha)."""
    with Image.open(path) as img:
        images, masks, size = [], [], None
        for frame in _frames(img):
            rgb, mask = _frame_to_tensors(frame)
            if size is None:
                size = rgb.shape[:2]
            if rgb.shape[:2] != size:
                continue
            images.append(rgb)
            masks.append(mask if mask is not None else torch.zeros((64, 64), dtype=torch.float32))
    return torch.stack(images), torch.stack(masks)


def _file_hash(ctx, name: str) -> str:
    try:
        return hashlib.sha256(_input_file(ctx, name).read_bytes()).hexdigest()
    except Exception as exc:  # a missing file is reported by run(); the signature just differs
        return f"missing:{exc}"


@node("image", display_name="Load Image")
class LoadImage:
    """Loads an image from the input folder; its alpha channel becomes the mask (mask = 1 − alpha)."""

    INPUTS = [Combo("image", files("input_images"), image_upload=True)]
    OUTPUTS = [Out("IMAGE"), Out("MASK")]

    @classmethod
    def fingerprint(cls, ctx, image):
        return _file_hash(ctx, image)

    def run(self, ctx, image):
        path = _input_file(ctx, image)
        try:
            return load_image_file(path)
        except (OSError, SyntaxError) as exc:  # PIL: UnidentifiedImageError (an OSError), broken PNGs
            raise ValueError(f"input 'image': {image} is not a readable image "
                             f"({type(exc).__name__})") from exc


@node("mask", display_name="Load Image (as Mask)")
class LoadImageMask:
    """Loads one channel of an input image as a mask (alpha is inverted: mask = 1 − alpha)."""

    INPUTS = [Combo("image", files("input_images"), image_upload=True),
              Combo("channel", ["alpha", "red", "green", "blue"])]
    OUTPUTS = [Out("MASK")]

    @classmethod
    def fingerprint(cls, ctx, image, channel):
        return _file_hash(ctx, image)

    def run(self, ctx, image, channel):
        with Image.open(_input_file(ctx, image)) as img:
            img = ImageOps.exif_transpose(img)
            if img.getbands() != ("R", "G", "B", "A"):
                if img.mode == "I":
                    img = img.point(lambda i: i * (1 / 255))
                img = img.convert("RGBA")
            band = channel[0].upper()
            m = torch.from_numpy(np.asarray(img.getchannel(band)).astype(np.float32) / 255.0)
        if band == "A":
            m = 1.0 - m
        return (m.unsqueeze(0),)


# ------------------------------------------------------------------------------------------ saving
_TOKEN = re.compile(r"%(date:[^%]+|year|month|day|hour|minute|second|width|height)%")


def _expand_prefix(prefix: str, image: torch.Tensor) -> str:
    """ComfyUI-style %year%/%date:yyyy-MM-dd%/%width% placeholders in filename prefixes."""
    now = datetime.datetime.now()

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key.startswith("date:"):
            fmt = key[5:]
            for k, v in (("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("hh", "%H"),
                         ("mm", "%M"), ("ss", "%S")):
                fmt = fmt.replace(k, v)
            return now.strftime(fmt)
        return {"year": f"{now.year}", "month": f"{now.month:02}", "day": f"{now.day:02}",
                "hour": f"{now.hour:02}", "minute": f"{now.minute:02}", "second": f"{now.second:02}",
                "width": str(image.shape[2]), "height": str(image.shape[1])}[key]

    return _TOKEN.sub(sub, prefix)


def _next_counter(folder: Path, name: str) -> int:
    pattern = re.compile(re.escape(name) + r"_(\d+)_?\.png$")
    found = [int(m.group(1)) for p in folder.glob("*.png") if (m := pattern.match(p.name))]
    return max(found, default=0) + 1


def save_images(ctx, images: torch.Tensor, prefix: str, root: Path, kind: str,
                compress_level: int) -> list[dict]:
    """Writes each image as `{prefix}_{counter:05}_.png` under root (atomically, with metadata)."""
    prefix = _expand_prefix(prefix or "ComfyUI", images)
    rel = Path(prefix.replace("\\", "/"))
    folder = safe_join(root, *rel.parent.parts) if rel.parent.parts else root
    folder.mkdir(parents=True, exist_ok=True)
    subfolder = rel.parent.as_posix() if rel.parent.parts else ""
    text = {"prompt": json.dumps(ctx.prompt)} if ctx.prompt is not None else {}
    for key, value in (ctx.extra_pnginfo or {}).items():
        text[key] = json.dumps(value)
    counter = _next_counter(folder, rel.name)
    results = []
    for i, img in enumerate(images):
        arr = np.clip(255.0 * img.cpu().float().numpy(), 0, 255).astype(np.uint8)
        name = f"{rel.name}_{counter + i:05}_.png"
        write_png(safe_join(folder, name), Image.fromarray(arr), text, compress_level=compress_level)
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
    return results


@node("image", display_name="Save Image", output_node=True)
class SaveImage:
    """Saves the input images to your ComfyUI output directory."""

    INPUTS = [In("images", "IMAGE", tooltip="The images to save."),
              String("filename_prefix", "ComfyUI", tooltip="The prefix for the file to save. This may include "
                     "formatting information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to "
                     "include values from nodes.")]
    OUTPUTS = []

    def run(self, ctx, images, filename_prefix):
        saved = save_images(ctx, images, filename_prefix, ctx.paths.output_dir, "output", 4)
        return NodeOutput((), {"images": saved})


@node("image", display_name="Preview Image", output_node=True)
class PreviewImage:
    """Shows images without keeping them: written to the temp folder."""

    INPUTS = [In("images", "IMAGE")]
    OUTPUTS = []

    def run(self, ctx, images):
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        saved = save_images(ctx, images, f"ComfyUI_temp_{suffix}", ctx.paths.temp_dir, "temp", 1)
        return NodeOutput((), {"images": saved})


@node("api node/image", display_name="SaveImageWebsocket", output_node=True, never_cache=True)
class SaveImageWebsocket:
    """Sends each image as a PNG in a binary WebSocket frame to the client that queued the prompt
    (preview-image frame, format 2 = PNG); nothing is written to disk. ComfyUI ships this node as
    custom_nodes/websocket_image_save.py and its websocket image API example relies on it."""

    INPUTS = [In("images", "IMAGE")]
    OUTPUTS = []

    def run(self, ctx, images):
        for i, img in enumerate(images):
            arr = np.clip(255.0 * img.cpu().float().numpy(), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "PNG", compress_level=1)
            ctx.send_image(buf.getvalue())
            ctx.progress(i + 1, len(images))
        return ()


# ------------------------------------------------------------------------------------- transforms
@node("image/upscaling", display_name="Upscale Image")
class ImageScale:
    """Resizes images to width×height (0 keeps the aspect ratio), optionally centre-cropping."""

    INPUTS = [In("image", "IMAGE"), Combo("upscale_method", SCALE_METHODS),
              Int("width", 512, min=0, max=MAX_RES, step=1), Int("height", 512, min=0, max=MAX_RES, step=1),
              Combo("crop", ["disabled", "center"])]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, upscale_method, width, height, crop):
        h, w = image.shape[1], image.shape[2]
        tw = width or max(1, round(w * height / h))
        th = height or max(1, round(h * width / w))
        _check_resize(ctx, image, tw, th, upscale_method, "width")
        return (ops.resize_image(image, width, height, upscale_method, crop),)


def _check_resize(ctx, image: torch.Tensor, width: int, height: int, method: str, input_name: str) -> None:
    """IMAGE resizes work channel-first: the input moved, the output, the method's temporaries."""
    b, h, w, c = image.shape
    ensure_resize_fits(ctx, (b, c, h, w), width, height, method, input_name=input_name,
                       what="resizing the image")


@node("image/upscaling", display_name="Upscale Image By")
class ImageScaleBy:
    """Scales images by a factor."""

    INPUTS = [In("image", "IMAGE"), Combo("upscale_method", SCALE_METHODS),
              Float("scale_by", 1.0, min=0.01, max=8.0, step=0.01)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, upscale_method, scale_by):
        w, h = max(1, round(image.shape[2] * scale_by)), max(1, round(image.shape[1] * scale_by))
        _check_resize(ctx, image, w, h, upscale_method, "scale_by")
        return (ops.resize_image(image, w, h, upscale_method),)


@node("image/upscaling", display_name="Scale Image to Total Pixels")
class ImageScaleToTotalPixels:
    """Scales images to about `megapixels` × 1024² pixels, keeping the aspect ratio."""

    INPUTS = [In("image", "IMAGE"), Combo("upscale_method", SCALE_METHODS),
              Float("megapixels", 1.0, min=0.01, max=16.0, step=0.01)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, upscale_method, megapixels):
        total = int(megapixels * 1024 * 1024)
        scale = math.sqrt(total / (image.shape[2] * image.shape[1]))
        w, h = max(1, round(image.shape[2] * scale)), max(1, round(image.shape[1] * scale))
        _check_resize(ctx, image, w, h, upscale_method, "megapixels")
        return (ops.resize_image(image, w, h, upscale_method),)


@node("image", display_name="Invert Image")
class ImageInvert:
    """1 − image."""

    INPUTS = [In("image", "IMAGE")]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image):
        return (1.0 - image,)


@node("image", display_name="Batch Images")
class ImageBatch:
    """Concatenates two image batches (image2 resized to image1's size)."""

    INPUTS = [In("image1", "IMAGE"), In("image2", "IMAGE")]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image1, image2):
        b = ops.match_size(ops.image_to_bchw(image2), ops.image_to_bchw(image1), "bilinear")
        return (torch.cat([image1, ops.bchw_to_image(b)]),)


@node("image", display_name="Pad Image for Outpainting")
class ImagePadForOutpaint:
    """Adds grey borders to outpaint into; the mask is 1 on the border, feathered into the image."""

    INPUTS = [In("image", "IMAGE"),
              Int("left", 0, min=0, max=MAX_RES, step=8), Int("top", 0, min=0, max=MAX_RES, step=8),
              Int("right", 0, min=0, max=MAX_RES, step=8), Int("bottom", 0, min=0, max=MAX_RES, step=8),
              Int("feathering", 40, min=0, max=MAX_RES, step=1)]
    OUTPUTS = [Out("IMAGE"), Out("MASK")]

    def run(self, ctx, image, left, top, right, bottom, feathering):
        b, h, w, c = image.shape
        # the padded image and its mask, plus the feathering's distance maps
        ensure_image_fits(ctx, b, h + top + bottom, w + left + right, c + 4, copies=1,
                          input_name="left" if left + right >= top + bottom else "top",
                          what="padding the image")
        return ops.outpaint_pad(image, left, top, right, bottom, feathering)


@node("image/transform", display_name="Image Crop")
class ImageCrop:
    """Crops images to width×height at (x, y)."""

    INPUTS = [In("image", "IMAGE"),
              Int("width", 512, min=1, max=MAX_RES, step=1), Int("height", 512, min=1, max=MAX_RES, step=1),
              Int("x", 0, min=0, max=MAX_RES, step=1), Int("y", 0, min=0, max=MAX_RES, step=1)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, width, height, x, y):
        x = min(x, image.shape[2] - 1)
        y = min(y, image.shape[1] - 1)
        return (image[:, y:y + height, x:x + width, :].clone(),)


def _blend(a: torch.Tensor, b: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "normal":
        return b
    if mode == "multiply":
        return a * b
    if mode == "screen":
        return 1 - (1 - a) * (1 - b)
    if mode == "overlay":
        return torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    if mode == "soft_light":
        g = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, torch.sqrt(a))
        return torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a))
    if mode == "difference":
        return a - b
    raise ValueError(f"input 'blend_mode': unknown mode {mode!r}")


@node("image/postprocessing", display_name="Image Blend")
class ImageBlend:
    """Blends image2 over image1 with a blend mode and factor."""

    INPUTS = [In("image1", "IMAGE"), In("image2", "IMAGE"),
              Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01), Combo("blend_mode", BLEND_MODES)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image1, image2, blend_factor, blend_mode):
        b = ops.bchw_to_image(ops.match_size(ops.image_to_bchw(image2), ops.image_to_bchw(image1), "bicubic"))
        blended = _blend(image1, b, blend_mode)
        return ((image1 * (1 - blend_factor) + blended * blend_factor).clamp(0, 1),)


@node("image/postprocessing", display_name="Image Blur")
class ImageBlur:
    """Gaussian blur."""

    INPUTS = [In("image", "IMAGE"), Int("blur_radius", 1, min=1, max=31, step=1),
              Float("sigma", 1.0, min=0.1, max=10.0, step=0.1)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, blur_radius, sigma):
        return (ops.blur(image, blur_radius, sigma),)


@node("image/postprocessing", display_name="Image Sharpen")
class ImageSharpen:
    """Sharpening with a negated Gaussian kernel."""

    INPUTS = [In("image", "IMAGE"), Int("sharpen_radius", 1, min=1, max=31, step=1),
              Float("sigma", 1.0, min=0.1, max=10.0, step=0.01), Float("alpha", 1.0, min=0.0, max=5.0, step=0.01)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, sharpen_radius, sigma, alpha):
        return (ops.sharpen(image, sharpen_radius, sigma, alpha),)
