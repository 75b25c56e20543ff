"""Architecture descriptions of Stable Diffusion checkpoints.

These dataclasses are what `ldm.checkpoint.detect` reads out of a state dict's key names and tensor
shapes, and what `UNetModel` / `AutoencoderKL` are built from. Real and tiny models go through the
same fields; only the numbers differ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

# "ldm": the Latent Diffusion paper's own models (CompVis latent-diffusion: unconditional,
# class-conditional, on VQ or KL first stages), which have no CLIP text encoder.
FAMILIES = ("sd1", "sd2", "sdxl", "sdxl_refiner", "ldm")
# What the UNet outputs: noise (eps), velocity (v, Salimans & Ho 2022) or the clean latent (x0,
# LDM configs' `parameterization: "x0"`).
PREDICTIONS = ("eps", "v", "x0")

# Text-encoder layouts per family, in the names `ldm.tiny_text` and `ldm.clip` use.
TEXT_ENCODER_LAYOUTS = {
    "sd1": ("sd1",),
    "sd2": ("sd2",),
    "sdxl": ("sdxl_l", "sdxl_g"),
    "sdxl_refiner": ("sdxl_refiner_g",),
    "ldm": (),
}

# Latent scaling per family (COMPAT.md).
SCALE_FACTORS = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025, "sdxl_refiner": 0.13025,
                 "ldm": 1.0}  # LDM configs leave scale_factor at 1.0 unless they say otherwise


def default_norm_groups(base_channels: int) -> int:
    """GroupNorm group count when a file does not say: 32 for real models (base width >= 128),
    gcd(base, 8) for tiny ones, so tiny widths such as 16/32/64 still normalise over several channels.
    A file may override it with safetensors metadata `latentgraph.norm_groups` /
    `latentgraph.vae_norm_groups` (see ARCHITECTURE.md §2)."""
    return 32 if base_channels >= 128 else math.gcd(base_channels, 8)


@dataclass(frozen=True)
class UNetConfig:
    """The LDM "openaimodel" UNet hyper-parameters (key layout of `model.diffusion_model.*`).

    `transformer_depth[i]` is the number of transformer blocks in each SpatialTransformer of level i
    (0 = no attention at that level); output blocks use the same depth per level as input blocks.
    Exactly one of `num_heads` (fixed head count, SD1) and `num_head_channels` (fixed head width,
    SD2/SDXL) is positive; the other is -1.
    """

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    transformer_depth: tuple[int, ...] = (1, 1, 1, 0)
    transformer_depth_middle: int = 1
    num_heads: int = 8
    num_head_channels: int = -1
    context_dim: int = 768
    use_linear_in_transformer: bool = False
    adm_in_channels: int | None = None
    norm_groups: int = 32
    # The LDM paper's UNets: "legacy" = self-attention AttentionBlocks (`use_spatial_transformer:
    # False`, no context) in place of SpatialTransformers; `num_classes` = an nn.Embedding label_emb
    # (class-conditional models, the x4 upscaler's noise level); `new_attention_order` the qkv layout.
    attention: str = "transformer"  # "transformer" | "legacy"
    disable_self_attn_levels: tuple[int, ...] = ()  # levels whose attn1 attends to the context
    num_classes: int | None = None
    new_attention_order: bool = False

    @property
    def attention_levels(self) -> tuple[int, ...]:
        """Indices of the levels that carry a SpatialTransformer."""
        return tuple(i for i, d in enumerate(self.transformer_depth) if d > 0)

    def heads_for(self, channels: int) -> tuple[int, int]:
        """(heads, head_dim) of an attention layer operating on `channels` features."""
        if self.num_head_channels > 0:
            return channels // self.num_head_channels, self.num_head_channels
        return self.num_heads, channels // self.num_heads

    def replace(self, **changes) -> "UNetConfig":
        """A copy with some fields changed (dataclasses.replace)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class VAEConfig:
    """First-stage autoencoder hyper-parameters (key layout of `first_stage_model.*`): the KL
    autoencoder of Stable Diffusion and the LDM paper's KL-f4…f32, or a VQ autoencoder (VQ-f4…f16).

    `embed_dim` is the latent channel count (KL: quant_conv output / 2; VQ: the codebook width);
    `z_channels` the encoder's. `attn_levels` are the encoder/decoder levels whose res blocks are
    each followed by an attention block (CompVis `attn_resolutions`, as level indices);
    `mid_attn` False for the `attn_type: none` configs; `n_embed` the VQ codebook size.
    """

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    in_channels: int = 3
    out_ch: int = 3
    norm_groups: int = 32
    kind: str = "kl"  # "kl" | "vq"
    attn_levels: tuple[int, ...] = ()
    mid_attn: bool = True
    n_embed: int = 0

    @property
    def double_z(self) -> bool:
        """KL encoders output mean and log-variance (2·z channels); VQ encoders z channels."""
        return self.kind == "kl"

    @property
    def downscale_ratio(self) -> int:
        """Pixels per latent cell along one axis: one stride-2 downsample per level but the last."""
        return 2 ** (len(self.ch_mult) - 1)

    def replace(self, **changes) -> "VAEConfig":
        """A copy with some fields changed (dataclasses.replace)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class ModelConfig:
    """Everything `detect` learns about a single-file checkpoint.

    `text_encoders` names the text-encoder layouts present (see TEXT_ENCODER_LAYOUTS); their widths
    and depths are read from the state dict by `ldm.clip`. `vae` is None when the file has no VAE.
    """

    family: str = "sd1"
    prediction: str = "eps"
    # "base" | "x4_upscaler" (SD x4 upscaler: low-res image concat + noise level) | "depth2img"
    # (SD2 depth: a depth map concatenated to the latent)
    kind: str = "base"
    inpaint: bool = False
    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig | None = field(default_factory=VAEConfig)
    text_encoders: tuple[str, ...] = ("sd1",)
    scale_factor: float = 0.18215
    # Live-preview latent→RGB map fitted for this file's own VAE (metadata
    # `latentgraph.latent_rgb_factors` / `..._bias`); None: the family's published factors.
    latent_rgb_factors: tuple[tuple[float, ...], ...] | None = None
    latent_rgb_factors_bias: tuple[float, ...] | None = None

    @property
    def latent_channels(self) -> int:
        """Channels of the (raw) latent the UNet denoises."""
        return self.unet.out_channels

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (dataclasses.replace)."""
        return replace(self, **changes)


# Real architectures, for benchmarks and as reference values in tests.
SD15_UNET = UNetConfig()
SD2_UNET = UNetConfig(num_heads=-1, num_head_channels=64, context_dim=1024,
                      use_linear_in_transformer=True)
SDXL_UNET = UNetConfig(model_channels=320, channel_mult=(1, 2, 4), num_res_blocks=2,
                       transformer_depth=(0, 2, 10), transformer_depth_middle=10, num_heads=-1,
                       num_head_channels=64, context_dim=2048, use_linear_in_transformer=True,
                       adm_in_channels=2816)
SDXL_REFINER_UNET = UNetConfig(model_channels=384, channel_mult=(1, 2, 4, 4), num_res_blocks=2,
                               transformer_depth=(0, 4, 4, 0), transformer_depth_middle=4,
                               num_heads=-1, num_head_channels=64, context_dim=1280,
                               use_linear_in_transformer=True, adm_in_channels=2560)
SD_VAE = VAEConfig()
