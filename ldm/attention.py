"""Transformer pieces of the LDM UNet (SpatialTransformer and friends), in the checkpoint's key names.

Attention runs through `torch.nn.functional.scaled_dot_product_attention`, which picks the best
kernel for the device (flash / memory-efficient on GPUs, a fused math path on CPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttention(nn.Module):
    """Multi-head attention; `context=None` makes it self-attention (attn1), else cross (attn2)."""

    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        q, k, v = (t.view(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class GEGLU(nn.Module):
    """Gated GELU (Shazeer 2020): one projection yields value and gate halves."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU MLP with 4x expansion; `net.0.proj` / `net.2` are the checkpoint keys."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm block: self-attention, cross-attention on the text context, feed-forward."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int,
                 disable_self_attn: bool = False) -> None:
        super().__init__()
        # disable_self_attn (the SD x4 upscaler's first levels): attn1 attends to the context too
        self.disable_self_attn = disable_self_attn
        self.attn1 = CrossAttention(dim, context_dim if disable_self_attn else None, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x), context if self.disable_self_attn else None)
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Image features → tokens → transformer blocks → back, with a residual around all of it.

    SD1 uses 1x1 convolutions for proj_in/proj_out; SD2 and SDXL use linear layers on tokens.
    """

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int,
                 use_linear: bool, norm_groups: int, disable_self_attn: bool = False) -> None:
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        if use_linear:
            self.proj_in = nn.Linear(channels, inner)
            self.proj_out = nn.Linear(inner, channels)
        else:
            self.proj_in = nn.Conv2d(channels, inner, 1)
            self.proj_out = nn.Conv2d(inner, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim, disable_self_attn)
            for _ in range(depth))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        residual = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2)
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + residual


class AttentionBlock(nn.Module):
    """The pre-SD self-attention block of the LDM paper's UNets (`use_spatial_transformer: False`):
    GroupNorm, a 1x1 Conv1d to q/k/v, attention over all pixels, 1x1 Conv1d out, residual. No
    context: unconditional, class- and concat-conditioned LDMs attend only to themselves.

    `new_order` False is openaimodel's default "legacy" layout (QKVAttentionLegacy): the qkv
    channels are grouped per head as [q_h, k_h, v_h]; True (`use_new_attention_order`) groups them
    as [all q | all k | all v].
    """

    def __init__(self, channels: int, heads: int, norm_groups: int, new_order: bool = False) -> None:
        super().__init__()
        self.heads, self.new_order = heads, new_order
        self.norm = nn.GroupNorm(norm_groups, channels)  # openaimodel's normalization(): eps 1e-5
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, -1))  # [B, 3C, T]
        d = c // self.heads
        if self.new_order:
            q, k, v = (t.reshape(b, self.heads, d, -1) for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b, self.heads, 3 * d, -1).split(d, dim=2)
        out = F.scaled_dot_product_attention(q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3))
        out = out.transpose(2, 3).reshape(b, c, -1)
        return x + self.proj_out(out).reshape(b, c, h, w)
