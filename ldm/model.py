"""DiffusionModel: the MODEL value — a UNet plus what samplers need to use it.

It turns the k-diffusion view (noisy latent x = x0 + σ·ε, a σ per sample) into the UNet's view
(scaled input, discrete timestep, eps or v output) and back to a denoised x0, adds the SDXL adm
vector, the inpainting concat channels, and applies LoRA patches only while sampling.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor

from ldm import devices
from ldm.configs import ModelConfig
from ldm import upscale_x4 as x4
from ldm.lora import patched_weights
from ldm.unet import UNetModel, timestep_embedding

SD15_RGB_FACTORS = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
                    (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))
SDXL_RGB_FACTORS = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
                    (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188))
UNET_KEY_PREFIX = "model.diffusion_model."


@dataclass(frozen=True)
class LatentFormat:
    """How raw VAE latents map to the space the UNet was trained in, and to preview colours."""

    scale_factor: float
    latent_channels: int = 4
    latent_rgb_factors: tuple[tuple[float, float, float], ...] = SD15_RGB_FACTORS
    latent_rgb_factors_bias: tuple[float, float, float] | None = None

    def process_in(self, x: Tensor) -> Tensor:
        """raw latent → model space."""
        return x * self.scale_factor

    def process_out(self, x: Tensor) -> Tensor:
        """model space → raw latent."""
        return x / self.scale_factor


def latent_format_for(config: ModelConfig) -> LatentFormat:
    """SD1/SD2: 0.18215 with the SD1.5 preview factors; SDXL (+refiner): 0.13025 with SDXL's;
    a file that carries its own factors (the demo model) uses those."""
    xl = config.family in ("sdxl", "sdxl_refiner")
    if config.latent_rgb_factors is not None:  # the file's own (fitted for its VAE)
        return LatentFormat(config.scale_factor, config.latent_channels, config.latent_rgb_factors,
                            config.latent_rgb_factors_bias)
    if config.kind == "x4_upscaler":
        return LatentFormat(config.scale_factor, 4, x4.RGB_FACTORS)
    if config.latent_channels != 4:  # an LDM-zoo latent (3, 8, 16 … channels): no fitted factors
        return LatentFormat(config.scale_factor, config.latent_channels,
                            generic_rgb_factors(config.latent_channels))
    return LatentFormat(config.scale_factor, config.latent_channels,
                        SDXL_RGB_FACTORS if xl else SD15_RGB_FACTORS)


def generic_rgb_factors(channels: int) -> tuple[tuple[float, float, float], ...]:
    """A preview map for latents nobody fitted factors for: channel i feeds colour i mod 3, each
    colour averaging its channels, so a 3-channel (f4) latent previews as its own RGB."""
    per_colour = [len(range(c, channels, 3)) for c in range(3)]
    return tuple(tuple((1.0 / per_colour[c]) if i % 3 == c else 0.0 for c in range(3))
                 for i in range(channels))


class DiffusionModel:
    """UNet + ModelSampling + LatentFormat + LoRA patches (see ARCHITECTURE.md §2)."""

    def __init__(self, unet: UNetModel, config: ModelConfig, sampling: Any) -> None:
        self.unet = unet
        self.config = config
        self.sampling = sampling
        self.latent_format = latent_format_for(config)
        self.patches: dict[str, list[tuple[float, Any]]] = {}

    # ------------------------------------------------------------------ denoising
    def apply_model(self, x: Tensor, sigma: Tensor, *, context: Tensor, y: Tensor | None = None,
                    concat: Tensor | None = None) -> Tensor:
        """Denoised x0 estimate for noisy model-space latents x [B,4,h,w] at noise levels sigma [B].

        `concat` (9-channel inpainting UNets): [B or 1, 5, h, w] = mask channel then the masked-image
        latent in model space, appended after x. When None, the mask is all ones and the image
        latent all zeros (the documented contract). Sampling never relies on this: ldm.guidance
        always passes the concat, with ComfyUI's blank_inpaint_image_like latent when there is no mask.
        """
        unet = devices.to_device(self.unet)
        p = next(unet.parameters())
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        if sigma.numel() == 1 and x.shape[0] > 1:
            sigma = sigma.expand(x.shape[0])
        x_in = self.sampling.calculate_input(sigma, x)
        extra = self.config.unet.in_channels - x.shape[1]
        if extra > 0:
            x_in = torch.cat([x_in, self._concat_channels(x, concat, extra)], dim=1)
        t = self.sampling.timestep(sigma.cpu()).to(p.device)
        ctx = context.to(device=p.device, dtype=p.dtype)
        if ctx.shape[0] != x.shape[0]:
            ctx = ctx.expand(x.shape[0], -1, -1) if ctx.shape[0] == 1 else ctx
        y_in = None if y is None else y.to(device=p.device, dtype=p.dtype)
        if y_in is not None and y_in.shape[0] == 1 and x.shape[0] > 1:
            y_in = y_in.expand(x.shape[0], -1)
        with torch.no_grad():
            out = unet(x_in.to(device=p.device, dtype=p.dtype), t, ctx, y_in)
        out = out.to(device=x.device, dtype=torch.float32)
        return self.sampling.calculate_denoised(sigma, out, x.float())

    @staticmethod
    def _concat_channels(x: Tensor, concat: Tensor | None, extra: int) -> Tensor:
        b, _, h, w = x.shape
        if concat is None and extra == 3:  # the x4 upscaler without an image: a blank one
            return torch.zeros(b, 3, h, w, dtype=x.dtype, device=x.device)
        if concat is None and extra == 1:
            raise ValueError("this SD2 depth-to-image model needs a depth map: condition it with "
                             "Depth2ImgConditioning")
        if concat is None:
            mask = torch.ones(b, 1, h, w, dtype=x.dtype, device=x.device)
            return torch.cat([mask, torch.zeros(b, extra - 1, h, w, dtype=x.dtype,
                                                device=x.device)], dim=1)
        concat = concat.to(device=x.device, dtype=x.dtype)
        if concat.shape[1] != extra:
            raise ValueError(f"inpainting UNet expects {extra} concat channels, got {concat.shape[1]}")
        if concat.shape[-2:] != (h, w):
            concat = torch.nn.functional.interpolate(concat, size=(h, w), mode="bilinear")
        return concat.expand(b, -1, -1, -1) if concat.shape[0] == 1 else concat

    # ------------------------------------------------------------------ SDXL vector conditioning
    def encode_adm(self, opts: dict, batch: int) -> Tensor | None:
        """SDXL `y`: pooled text (zeros if absent) + 256-dim sinusoidal embeddings of
        (height, width, crop_h, crop_w, target_height, target_width) — refiner: (height, width,
        crop_h, crop_w, aesthetic_score, default 6, or 2.5 when opts["prompt_type"] == "negative");
        None for models without adm. The sampler (ldm.guidance) supplies width/height = latent
        size × 8 when the conditioning has none, as ComfyUI does; 768 is only the bare default."""
        if getattr(self.config, "kind", "base") == "x4_upscaler":  # the class label is the noise level
            return torch.full((batch,), x4.noise_level(opts), dtype=torch.long)
        adm = self.config.unet.adm_in_channels
        if not adm:
            return None
        width, height = opts.get("width", 768), opts.get("height", 768)
        values = [height, width, opts.get("crop_h", 0), opts.get("crop_w", 0)]
        if self.config.family == "sdxl_refiner":
            # ComfyUI's refiner default: 6 for the positive prompt, 2.5 for the negative one.
            default_score = 2.5 if opts.get("prompt_type") == "negative" else 6.0
            values.append(opts.get("aesthetic_score", default_score))
        else:
            values += [opts.get("target_height", height), opts.get("target_width", width)]
        emb = timestep_embedding(torch.tensor(values, dtype=torch.float32), 256).reshape(1, -1)
        pooled_dim = adm - emb.shape[1]
        pooled = opts.get("pooled_output")
        if pooled is None:
            pooled = torch.zeros(1, pooled_dim)
        pooled = pooled.float().reshape(pooled.shape[0], -1)[:, :pooled_dim]
        if pooled.shape[1] != pooled_dim:
            raise ValueError(f"pooled output has {pooled.shape[1]} values, the model needs {pooled_dim}")
        y = torch.cat([pooled, emb.expand(pooled.shape[0], -1)], dim=1)
        reps = -(-batch // y.shape[0])
        return y.repeat(reps, 1)[:batch]

    # ------------------------------------------------------------------ LoRA patches
    def clone(self) -> "DiffusionModel":
        """A new MODEL sharing the UNet weights with its own copy of the patch list."""
        other = DiffusionModel(self.unet, self.config, self.sampling)
        other.patches = {k: list(v) for k, v in self.patches.items()}
        return other

    def add_patches(self, patches: dict[str, Any], strength: float = 1.0) -> list[str]:
        """Record weight patches (keys with or without `model.diffusion_model.`); returns the UNet
        parameter names that were accepted (unknown keys are ignored, as ComfyUI does)."""
        params = dict(self.unet.named_parameters())
        added = []
        for key, patch in patches.items():
            name = key[len(UNET_KEY_PREFIX):] if key.startswith(UNET_KEY_PREFIX) else key
            if name in params:
                self.patches.setdefault(name, []).append((float(strength), patch))
                added.append(name)
        return added

    @contextlib.contextmanager
    def patched(self) -> Iterator["DiffusionModel"]:
        """Weights with the patches applied for the duration of the block, restored after."""
        if not self.patches:
            yield self
            return
        # patch where the weights will be used, so the restored originals are device tensors too
        with patched_weights(devices.to_device(self.unet), self.patches):
            yield self
