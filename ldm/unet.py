"""The latent-diffusion UNet ("openaimodel" layout) used by SD1.x, SD2.x and SDXL.

Module names reproduce the single-file checkpoint keys under `model.diffusion_model.`, so a state
dict loads with `load_state_dict(strict=True)` and no renaming. Sizes come from `UNetConfig`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ldm.attention import AttentionBlock, SpatialTransformer
from ldm.configs import UNetConfig


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos | sin] of (possibly fractional) timesteps, as in the LDM code."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class ResBlock(nn.Module):
    """Two 3x3 convolutions with the timestep embedding added in between; 1x1 skip if widths differ."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, out_channels), nn.SiLU(),
                                        nn.Dropout(0.0),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    """Stride-2 3x3 convolution (key `op`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 (or to the skip's size) then a 3x3 convolution (key `conv`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)


class TimestepEmbedSequential(nn.Sequential):
    """A block list whose members each get what they need: emb (ResBlock), context (transformer)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor,
                out_size: tuple[int, int] | None = None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, Upsample):
                x = layer(x, out_size)
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """Noise-prediction UNet: forward(x, timesteps, context, y=None) -> eps (or v) of x's shape."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.config = cfg
        mc, groups = cfg.model_channels, cfg.norm_groups
        emb_dim = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if cfg.adm_in_channels:
            self.label_emb = nn.Sequential(nn.Sequential(
                nn.Linear(cfg.adm_in_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)))
        elif cfg.num_classes:
            self.label_emb = nn.Embedding(cfg.num_classes, emb_dim)
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        skip_chans = self._build_input(cfg, emb_dim)
        ch = mc * cfg.channel_mult[-1]
        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, emb_dim, ch, groups),
            self._transformer(cfg, ch, cfg.transformer_depth_middle),
            ResBlock(ch, emb_dim, ch, groups))
        self._build_output(cfg, emb_dim, skip_chans)
        self.out = nn.Sequential(nn.GroupNorm(groups, mc), nn.SiLU(),
                                 nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    @staticmethod
    def _transformer(cfg: UNetConfig, ch: int, depth: int, level: int | None = None) -> nn.Module:
        heads, dim_head = cfg.heads_for(ch)
        if cfg.attention == "legacy":
            return AttentionBlock(ch, heads, cfg.norm_groups, cfg.new_attention_order)
        return SpatialTransformer(ch, heads, dim_head, depth, cfg.context_dim,
                                  cfg.use_linear_in_transformer, cfg.norm_groups,
                                  level in cfg.disable_self_attn_levels)

    def _build_input(self, cfg: UNetConfig, emb_dim: int) -> list[int]:
        ch = cfg.model_channels
        skip_chans = [ch]
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * cfg.model_channels,
                                                   cfg.norm_groups)]
                ch = mult * cfg.model_channels
                if cfg.transformer_depth[level] > 0:
                    layers.append(self._transformer(cfg, ch, cfg.transformer_depth[level], level))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_chans.append(ch)
        return skip_chans

    def _build_output(self, cfg: UNetConfig, emb_dim: int, skip_chans: list[int]) -> None:
        self.output_blocks = nn.ModuleList()
        ch = cfg.model_channels * cfg.channel_mult[-1]
        skip_chans = list(skip_chans)
        for level in reversed(range(len(cfg.channel_mult))):
            out_ch = cfg.model_channels * cfg.channel_mult[level]
            for i in range(cfg.num_res_blocks + 1):
                layers: list[nn.Module] = [ResBlock(ch + skip_chans.pop(), emb_dim, out_ch,
                                                   cfg.norm_groups)]
                ch = out_ch
                if cfg.transformer_depth[level] > 0:
                    layers.append(self._transformer(cfg, ch, cfg.transformer_depth[level], level))
                if level > 0 and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                y: torch.Tensor | None = None) -> torch.Tensor:
        """x [B,C,h,w], timesteps [B] (float ok), context [B,T,context_dim], y [B,adm] for SDXL."""
        dtype = self.input_blocks[0][0].weight.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))
        if self.config.adm_in_channels:
            if y is None:
                raise ValueError("this UNet needs the adm vector y (SDXL size/pooled conditioning)")
            emb = emb + self.label_emb(y.to(dtype))
        elif self.config.num_classes:
            if y is None:
                raise ValueError("this UNet needs class labels y")
            emb = emb + self.label_emb(y.long().reshape(-1)).to(dtype)
        h, context = x.to(dtype), context.to(dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb, context)
            skips.append(h)
        h = self.middle_block(h, emb, context)
        for block in self.output_blocks:
            skip = skips.pop()
            h = torch.cat([h, skip], dim=1)
            target = tuple(skips[-1].shape[-2:]) if skips else None
            h = block(h, emb, context, target)
        return self.out(h).to(x.dtype)
