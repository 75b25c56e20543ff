"""The Stable Diffusion x4 upscaler's extra inputs (stabilityai `x4-upscaler-ema` layout).

Its UNet takes 7 channels: the 4-channel latent (KL-f4 first stage, scale 0.08333) followed by the
low-resolution image itself in -1..1 at the latent's size, and its class-label embedding
(`label_emb.weight`, 1000 rows) is the noise level of that image: the image may be noised along a
linear 1e-4 → 0.02 schedule up to level 350 (ComfyUI's `noise_augmentation` 0..1, noise drawn from
the sampling seed − 10), telling the model how much to trust it. A v-prediction model on the linear
1e-4 → 0.02 schedule.
"""
from __future__ import annotations

import contextvars

import torch
from torch import Tensor

from ldm.image_ops import resize
from ldm.model_sampling import make_betas

MAX_NOISE_LEVEL = 350
SCHEDULE = dict(linear_start=0.0001, linear_end=0.02)
SCALE_FACTOR = 0.08333
# Published live-preview factors of the x4 upscaler's latent space (ComfyUI's latent_formats.SD_X4).
RGB_FACTORS = ((-0.2340, -0.3863, -0.3257), (0.0994, 0.0885, -0.0908),
               (-0.2833, -0.2349, -0.3741), (0.2523, -0.0055, -0.1651))

# The seed of the sampling run in progress: the augmentation noise is drawn from it (seed − 10).
SAMPLING_SEED: contextvars.ContextVar[int] = contextvars.ContextVar("sampling_seed", default=0)


def noise_level(opts: dict) -> int:
    """The class label the UNet sees: round(350 · noise_augmentation)."""
    return round(MAX_NOISE_LEVEL * float(opts.get("noise_augmentation", 0.0)))


def concat_image(opts: dict, b: int, h: int, w: int, device: torch.device) -> Tensor:
    """[b, 3, h, w]: the conditioning's low-res image (zeros when absent) at the latent size,
    noised to its noise level as the model was trained (q_sample at that timestep)."""
    image = opts.get("concat_image")
    if image is None:
        image = torch.zeros(1, 3, h, w)
    image = image.float()
    if tuple(image.shape[-2:]) != (h, w):
        image = resize(image, w, h, "bilinear", "center")
    level = noise_level(opts)
    if level > 0:
        alphas = torch.cumprod(1 - make_betas("linear", 1000, **SCHEDULE), 0)[level]
        gen = torch.Generator().manual_seed(SAMPLING_SEED.get() - 10)
        noise = torch.randn(image.shape, generator=gen, dtype=image.dtype)
        image = float(alphas ** 0.5) * image + float((1 - alphas) ** 0.5) * noise
    if image.shape[0] != b:
        reps = -(-b // image.shape[0])
        image = image.repeat(reps, 1, 1, 1)[:b]
    return image.to(device)
