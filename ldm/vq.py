"""VQModel, the vector-quantised first stage of the Latent Diffusion paper (VQ-f4, f8, f16), in the
key names of CompVis' checkpoints: `encoder.*`, `decoder.*`, `quant_conv`, `post_quant_conv` and the
codebook `quantize.embedding.weight` [n_embed, embed_dim].

As in the paper's `VQModelInterface`, `encode` returns the pre-quantisation latent (the diffusion
model works in that continuous space) and `decode` snaps each latent vector to its nearest codebook
entry before decoding, so a sampled latent decodes through the same discrete bottleneck the
autoencoder was trained with.
"""
from __future__ import annotations

import torch
from torch import nn

from ldm.configs import VAEConfig
from ldm.vae import AutoencoderKL, Decoder, Encoder


class VectorQuantizer(nn.Module):
    """Nearest-codebook-entry quantisation (Euclidean distance) over the channel axis."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Codebook index per latent cell: z [B,C,h,w] → [B,h,w] (distances computed in fp32)."""
        b, c, h, w = z.shape
        flat = z.float().permute(0, 2, 3, 1).reshape(-1, c)
        book = self.embedding.weight.float()
        # |z - e|² = |z|² + |e|² - 2 z·e; |z|² is the same for every entry, so it drops out.
        dist = (book * book).sum(1)[None, :] - 2.0 * flat @ book.t()
        return dist.argmin(dim=1).reshape(b, h, w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B,C,h,w] → the codebook vectors nearest to each cell, same shape and dtype."""
        idx = self.indices(z)
        return self.embedding(idx).permute(0, 3, 1, 2).to(z.dtype).contiguous()


class VQModel(nn.Module):
    """VQ-regularised autoencoder with the same encode/decode contract as AutoencoderKL."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.quantize = VectorQuantizer(cfg.n_embed, cfg.embed_dim)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x in -1..1 [B,3,H,W] → pre-quantisation latent [B,embed_dim,H/f,W/f]."""
        return self.quant_conv(self.encoder(x))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """latent → quantised to the codebook → pixels in about -1..1 [B,3,H,W]."""
        return self.decoder(self.post_quant_conv(self.quantize(h)))


def first_stage_class(cfg: VAEConfig) -> type[nn.Module]:
    """The module class a first-stage config builds: VQModel for `kind="vq"`, else AutoencoderKL."""
    return VQModel if cfg.kind == "vq" else AutoencoderKL
