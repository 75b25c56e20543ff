"""Image utility nodes: size, flips and rotations, stitching, batches, morphology and palette
quantisation (ComfyUI names: comfy_extras/nodes_images.py, nodes_morphology.py,
nodes_post_processing.py, nodes_rebatch.py; EmptyImage from nodes.py).

An IMAGE is [B,H,W,C] float 0..1 on the CPU (ARCHITECTURE.md §1); the maths lives in
ldm/pixel_ops.py.
"""
from __future__ import annotations

import torch

from ldm import pixel_ops
from nodes.registry import Boolean, Combo, In, Int, Out, node

MAX_RES = 16384
ROTATIONS = ["none", "90 degrees", "180 degrees", "270 degrees"]
FLIPS = ["x-axis: vertically", "y-axis: horizontally"]


@node("image", display_name="Get Image Size")
class GetImageSize:
    """Returns width and height of the image, and passes it through unchanged."""

    INPUTS = [In("image", "IMAGE")]
    OUTPUTS = [Out("INT", "width"), Out("INT", "height"), Out("INT", "batch_size")]

    def run(self, ctx, image):
        return int(image.shape[2]), int(image.shape[1]), int(image.shape[0])


@node("image/transform", display_name="ImageRotate")
class ImageRotate:
    """Rotates images clockwise by a multiple of 90 degrees."""

    INPUTS = [In("image", "IMAGE"), Combo("rotation", ROTATIONS)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, rotation):
        quarter_turns = ROTATIONS.index(rotation)
        # dims (W, H): a positive turn from the width axis towards the height axis is clockwise.
        return (torch.rot90(image, k=quarter_turns, dims=[2, 1]),)


@node("image/transform", display_name="ImageFlip")
class ImageFlip:
    """Mirrors images across the x-axis (upside down) or the y-axis (left-right)."""

    INPUTS = [In("image", "IMAGE"), Combo("flip_method", FLIPS)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, flip_method):
        return (torch.flip(image, dims=[1] if flip_method.startswith("x") else [2]),)


@node("image/transform", display_name="Image Stitch")
class ImageStitch:
    """Stitches image2 to image1 in the specified direction. If image2 is not provided, returns
    image1 unchanged. Optional spacing can be added between images."""

    INPUTS = [
        In("image1", "IMAGE"),
        Combo("direction", pixel_ops.STITCH_DIRECTIONS, default="right"),
        Boolean("match_image_size", True),
        Int("spacing_width", 0, min=0, max=1024, step=2),
        Combo("spacing_color", list(pixel_ops.SPACING_COLORS), default="white"),
        In("image2", "IMAGE", optional=True),
    ]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image1, direction, match_image_size, spacing_width, spacing_color, image2=None):
        if image2 is None:
            return (image1,)
        return (pixel_ops.stitch(image1, image2, direction, match_image_size, spacing_width, spacing_color),)


@node("image", display_name="EmptyImage")
class EmptyImage:
    """A batch of images of one colour (0xRRGGBB)."""

    INPUTS = [
        Int("width", 512, min=1, max=MAX_RES, step=1),
        Int("height", 512, min=1, max=MAX_RES, step=1),
        Int("batch_size", 1, min=1, max=4096),
        Int("color", 0, min=0, max=0xFFFFFF, step=1, display="color"),
    ]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, width, height, batch_size, color):
        rgb = [((color >> shift) & 0xFF) / 0xFF for shift in (16, 8, 0)]
        return (torch.tensor(rgb, dtype=torch.float32).expand(batch_size, height, width, 3).contiguous(),)


@node("image/batch", display_name="RepeatImageBatch")
class RepeatImageBatch:
    """Repeats the whole image batch `amount` times."""

    INPUTS = [In("image", "IMAGE"), Int("amount", 1, min=1, max=4096)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, amount):
        return (image.repeat((amount, 1, 1, 1)),)


@node("image/batch", display_name="ImageFromBatch")
class ImageFromBatch:
    """Takes `length` images starting at batch_index (both clamped to the batch)."""

    INPUTS = [In("image", "IMAGE"), Int("batch_index", 0, min=0, max=4095), Int("length", 1, min=1, max=4096)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, batch_index, length):
        start = min(image.shape[0] - 1, batch_index)
        return (image[start:start + min(image.shape[0] - start, length)].clone(),)


def _as_list(value: object) -> list:
    """INPUT_IS_LIST nodes get lists from the executor; a direct call may pass one value."""
    return value if isinstance(value, list) else [value]


@node("image/batch", display_name="Rebatch Images")
class RebatchImages:
    """Regroups a list of image batches into batches of batch_size (the last may be shorter)."""

    INPUT_IS_LIST = True
    INPUTS = [In("images", "IMAGE"), Int("batch_size", 1, min=1, max=4096)]
    OUTPUTS = [Out("IMAGE", is_list=True)]

    def run(self, ctx, images, batch_size):
        size = _as_list(batch_size)[0]
        frames = [img[i:i + 1] for img in _as_list(images) for i in range(img.shape[0])]
        return ([torch.cat(frames[i:i + size]) for i in range(0, len(frames), size)],)


@node("image/postprocessing", display_name="ImageMorphology")
class Morphology:
    """Erode, dilate, open, close, morphological gradient, top-hat or bottom-hat with a square kernel."""

    INPUTS = [In("image", "IMAGE"), Combo("operation", pixel_ops.MORPHOLOGY_OPS),
              Int("kernel_size", 3, min=3, max=999, step=1)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, operation, kernel_size):
        return (pixel_ops.morphology(image, operation, kernel_size),)


@node("image/postprocessing", display_name="Image Quantize")
class ImageQuantize:
    """Reduces images to a palette of at most `colors`, optionally dithered."""

    INPUTS = [In("image", "IMAGE"), Int("colors", 256, min=1, max=256, step=1), Combo("dither", pixel_ops.DITHERS)]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image, colors, dither):
        return (pixel_ops.quantize(image, colors, dither),)
