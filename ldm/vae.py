"""The first stages in the checkpoint's `first_stage_model.*` key names: AutoencoderKL (Stable
Diffusion's VAE and the LDM paper's KL-f4…f32, attention at the configured levels) and VQModel
(VQ-f4…f16, codebook quantisation on decode), and `VAE`, the IMAGE <-> LATENT wrapper the nodes use
(plain and tiled).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ldm.configs import VAEConfig


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class VAEResBlock(nn.Module):
    """Pre-activation residual block (norm1/conv1/norm2/conv2, `nin_shortcut` if widths differ)."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, with 1x1-conv q/k/v/proj_out (mid block only)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        # Contiguous [B,1,HW,C]: with the channel-first stride torch's CPU kernel falls back to
        # the math path and builds the HW×HW score matrix twice (a 1024² image: 2.3 GB vs 0.2 GB).
        q, k, v = (m(n).flatten(2).transpose(1, 2).contiguous()[:, None]
                   for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)[:, 0]
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Asymmetric pad (right/bottom by 1) then stride-2 3x3 conv, as the LDM VAE does."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2 then 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Mid(nn.Module):
    def __init__(self, ch: int, groups: int, attn: bool = True) -> None:
        super().__init__()
        self.block_1 = VAEResBlock(ch, ch, groups)
        # `attn_type: none` configs have no mid attention at all (no keys): an identity there.
        self.attn_1 = AttnBlock(ch, groups) if attn else nn.Identity()
        self.block_2 = VAEResBlock(ch, ch, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


def _level(cin: int, cout: int, blocks: int, attn: bool, groups: int) -> nn.Module:
    """One resolution level: `blocks` res blocks, each followed by attention at attention levels."""
    level = nn.Module()
    level.block = nn.ModuleList(VAEResBlock(cin if j == 0 else cout, cout, groups)
                                for j in range(blocks))
    if attn:
        level.attn = nn.ModuleList(AttnBlock(cout, groups) for _ in range(blocks))
    return level


def _run_level(level: nn.Module, h: torch.Tensor) -> torch.Tensor:
    attn = getattr(level, "attn", None)
    for j, block in enumerate(level.block):
        h = block(h)
        if attn is not None:
            h = attn[j](h)
    return h


class Encoder(nn.Module):
    """Pixels [B,3,H,W] in -1..1 → moments [B, 2·z, H/f, W/f] (KL) or features [B, z, H/f, W/f] (VQ)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        g = cfg.norm_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = cfg.ch
        for i, mult in enumerate(cfg.ch_mult):
            cout = cfg.ch * mult
            level = _level(cin, cout, cfg.num_res_blocks, i in cfg.attn_levels, g)
            if i != len(cfg.ch_mult) - 1:
                level.downsample = Downsample(cout)
            self.down.append(level)
            cin = cout
        self.mid = _Mid(cin, g, cfg.mid_attn)
        self.norm_out = _norm(cin, g)
        self.conv_out = nn.Conv2d(cin, (2 if cfg.double_z else 1) * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = _run_level(level, h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent z [B,z,h,w] → pixels [B,3,h·f,w·f] in about -1..1 (levels stored in `up` reversed)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        g = cfg.norm_groups
        cin = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, padding=1)
        self.mid = _Mid(cin, g, cfg.mid_attn)
        levels: list[nn.Module] = []
        for i in reversed(range(len(cfg.ch_mult))):
            cout = cfg.ch * cfg.ch_mult[i]
            level = _level(cin, cout, cfg.num_res_blocks + 1, i in cfg.attn_levels, g)
            if i != 0:
                level.upsample = Upsample(cout)
            levels.insert(0, level)
            cin = cout
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(cin, g)
        self.conv_out = nn.Conv2d(cin, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = _run_level(level, h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """KL-regularised autoencoder; encode returns the posterior mean (mode), deterministic."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    def encode_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of the diagonal Gaussian posterior; logvar clamped as in LDM."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x in -1..1 [B,3,H,W] → latent mode [B,embed_dim,H/f,W/f]."""
        return self.encode_moments(x)[0]

    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A posterior sample mean + std·ε (for training; the nodes use the mode)."""
        mean, logvar = self.encode_moments(x)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latent → pixels in about -1..1 [B,3,H,W]."""
        return self.decoder(self.post_quant_conv(z))


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins covering [0, size) with at least `overlap` shared between neighbours."""
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _feather(h: int, w: int, ramp: int, device: torch.device) -> torch.Tensor:
    """Blend weights for one tile: 1 inside, falling linearly (never to 0) over `ramp` cells at
    every edge; the accumulated weights are divided out, so image borders stay at full weight."""
    def axis(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32, device=device)
        d = torch.minimum(i, n - 1 - i) + 0.5
        return (d / max(ramp, 1)).clamp(max=1.0)
    return axis(h)[:, None] * axis(w)[None, :]


def run_tiled(fn, x: torch.Tensor, tile: int, overlap: int, scale: float,
              out_channels: int) -> torch.Tensor:
    """Apply `fn` (e.g. decode) over overlapping tiles of x [B,C,H,W] (tile/overlap in x's cells),
    each output tile `scale`x the input's size, and blend the tiles with feathered weights."""
    b, _, h, w = x.shape
    oh, ow = round(h * scale), round(w * scale)
    out = torch.zeros(b, out_channels, oh, ow, dtype=torch.float32, device=x.device)
    weight = torch.zeros(1, 1, oh, ow, dtype=torch.float32, device=x.device)
    ramp = max(1, round(overlap * scale))
    for y0 in _tile_starts(h, tile, overlap):
        for x0 in _tile_starts(w, tile, overlap):
            piece = fn(x[:, :, y0:y0 + tile, x0:x0 + tile]).float()
            ty, tx = round(y0 * scale), round(x0 * scale)
            ph, pw = piece.shape[-2:]
            mask = _feather(ph, pw, ramp, x.device)
            out[:, :, ty:ty + ph, tx:tx + pw] += piece * mask
            weight[:, :, ty:ty + ph, tx:tx + pw] += mask
    return out / weight


class VAE:
    """IMAGE [B,H,W,3] 0..1 ↔ raw latent [B,C,H/f,W/f]; moves the model to the compute device per call."""

    def __init__(self, model: AutoencoderKL) -> None:
        self.model = model.eval()
        self.config = model.config

    @property
    def downscale_ratio(self) -> int:
        """Pixels per latent cell along one axis (8 for SD)."""
        return self.config.downscale_ratio

    @property
    def latent_channels(self) -> int:
        """Channels of the latent this VAE produces."""
        return self.config.embed_dim

    def _prepare(self) -> tuple[torch.device, torch.dtype]:
        from ldm import devices
        devices.to_device(self.model)
        p = next(self.model.parameters())
        return p.device, p.dtype

    def _pixels_in(self, pixels: torch.Tensor) -> torch.Tensor:
        f = self.downscale_ratio
        h, w = (pixels.shape[1] // f) * f, (pixels.shape[2] // f) * f
        if h == 0 or w == 0:
            raise ValueError(f"image {tuple(pixels.shape[1:3])} is smaller than the VAE factor {f}")
        device, dtype = self._prepare()
        x = pixels[:, :h, :w, :3].to(device=device, dtype=dtype)
        return x.permute(0, 3, 1, 2) * 2.0 - 1.0

    @staticmethod
    def _pixels_out(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu().contiguous()

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B,H,W,3] 0..1 (cropped to a multiple of the factor) → raw latent (posterior mode)."""
        return self.model.encode(self._pixels_in(pixels)).float().cpu()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """raw latent [B,C,h,w] → pixels [B,h·f,w·f,3] in 0..1, clamped."""
        device, dtype = self._prepare()
        return self._pixels_out(self.model.decode(latent.to(device=device, dtype=dtype)))

    @torch.no_grad()
    def encode_tiled(self, pixels: torch.Tensor, tile: int = 512, overlap: int = 64) -> torch.Tensor:
        """Like encode, in overlapping pixel tiles of `tile` (blended over `overlap` pixels)."""
        x = self._pixels_in(pixels)
        f = self.downscale_ratio
        tile, overlap = max(f, tile // f * f), min(overlap // f * f, tile // 2)
        out = run_tiled(self.model.encode, x, tile, overlap, 1.0 / f, self.latent_channels)
        return out.cpu()

    @torch.no_grad()
    def decode_tiled(self, latent: torch.Tensor, tile: int = 512, overlap: int = 64) -> torch.Tensor:
        """Like decode, in overlapping tiles of `tile` pixels (tile/overlap given in pixels)."""
        device, dtype = self._prepare()
        f = self.downscale_ratio
        lt, lo = max(1, tile // f), max(0, min(overlap // f, tile // f // 2))
        z = latent.to(device=device, dtype=dtype)
        return self._pixels_out(run_tiled(self.model.decode, z, lt, lo, float(f), 3))
