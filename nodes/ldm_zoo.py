"""Conditioning nodes for the Latent Diffusion paper's own models (family "ldm"): class-conditional
LDMs take a class index instead of a prompt, unconditional ones take nothing; and the SD x4
upscaler's image conditioning. All go into the same KSampler / custom sampling nodes as Stable
Diffusion's conditioning."""
from __future__ import annotations

import torch

from ldm.class_embed import ClassEmbedder
from ldm.image_ops import resize
from nodes.registry import Float, In, Int, Out, node

CAT = "conditioning/ldm"


@node(CAT, display_name="Class Embed (class-conditional LDM)")
class ClassEmbed:
    """The conditioning of one class of a class-conditional LDM (e.g. an ImageNet class of cin256;
    its last class index is the "no class" row classifier-free guidance uses as negative)."""

    INPUTS = [In("clip", "CLIP", tooltip="The class embedder a class-conditional LDM checkpoint loads as its CLIP."),
              Int("class_index", 0, min=0, max=100000, tooltip="Row of the class table (0-based).")]
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx, clip, class_index):
        if not isinstance(clip, ClassEmbedder):
            raise ValueError("input 'clip': not a class embedder; Class Embed needs the CLIP output "
                             "of a class-conditional LDM checkpoint (e.g. cin256)")
        if class_index >= clip.num_classes:
            raise ValueError(f"input 'class_index': {class_index} is outside this model's "
                             f"{clip.num_classes} classes (0..{clip.num_classes - 1})")
        return ([[clip.embed(class_index), {}]],)


@node(CAT, display_name="Unconditional (no prompt)")
class UnconditionalConditioning:
    """Conditioning for an unconditional LDM (CelebA-HQ, FFHQ, LSUN …), whose UNet attends only to
    itself: wire it to both positive and negative of the sampler (cfg has no effect)."""

    INPUTS = []
    OUTPUTS = [Out("CONDITIONING")]

    def run(self, ctx):
        return ([[torch.zeros(1, 1, 1), {}]],)


@node("conditioning/upscale_diffusion", display_name="SD_4XUpscale_Conditioning")
class SD_4XUpscale_Conditioning:
    """Conditioning and an empty latent for the SD x4 upscaler: the image (in -1..1, at the
    latent's size) rides on both conditionings with its noise augmentation, as ComfyUI does."""

    INPUTS = [In("images", "IMAGE"), In("positive", "CONDITIONING"), In("negative", "CONDITIONING"),
              Float("scale_ratio", 4.0, min=0.0, max=10.0, step=0.01),
              Float("noise_augmentation", 0.0, min=0.0, max=1.0, step=0.001)]
    OUTPUTS = [Out("CONDITIONING", "positive"), Out("CONDITIONING", "negative"), Out("LATENT", "latent")]

    def run(self, ctx, images, positive, negative, scale_ratio, noise_augmentation):
        width = max(1, round(images.shape[-2] * scale_ratio))
        height = max(1, round(images.shape[-3] * scale_ratio))
        pixels = resize(images.movedim(-1, 1) * 2.0 - 1.0, width // 4, height // 4, "bilinear", "center")

        def attach(conds: list) -> list:
            return [[c, {**opts, "concat_image": pixels, "noise_augmentation": noise_augmentation}]
                    for c, opts in conds]

        latent = torch.zeros([images.shape[0], 4, height // 4, width // 4])
        return (attach(positive), attach(negative), {"samples": latent, "downscale_ratio_spacial": 4})


@node("conditioning/depth", display_name="Depth2Img Conditioning (SD2 depth)")
class Depth2ImgConditioning:
    """Gives an SD2 depth-to-image model its depth map (brighter = nearer; it is normalised per
    image, so any depth preprocessor's output or a painted map works). The checkpoint's own MiDaS
    estimator is not run: make the map in the graph."""

    INPUTS = [In("positive", "CONDITIONING"), In("negative", "CONDITIONING"), In("depth", "IMAGE")]
    OUTPUTS = [Out("CONDITIONING", "positive"), Out("CONDITIONING", "negative")]

    def run(self, ctx, positive, negative, depth):
        d = depth[..., :3].mean(dim=-1, keepdim=True).movedim(-1, 1)  # [N, 1, H, W]

        def attach(conds: list) -> list:
            return [[c, {**opts, "concat_depth": d}] for c, opts in conds]

        return (attach(positive), attach(negative))
