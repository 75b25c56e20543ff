"""Live previews of the x0 estimate during sampling: a linear latent→RGB map, or TAESD when present.

The x0 the sampler reports is in model space (raw latent × scale factor); the published
`latent_rgb_factors` (COMPAT.md) are fitted for that space, and so is TAESD ("tiny autoencoder
for Stable Diffusion", Bohan 2023), which decodes a latent to an image with a few 3×3 convs.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable

import torch
from PIL import Image
from safetensors.torch import load_file
from torch import Tensor, nn

__all__ = ["latent_to_rgb", "preview_jpeg", "TAESDDecoder", "load_taesd_decoder", "find_taesd_decoder"]


def _linear_rgb(x0: Tensor, latent_format: Any) -> Tensor:
    """[h, w, 3] in −1..1 (unclamped) from the first latent of the batch."""
    factors = torch.tensor(latent_format.latent_rgb_factors, dtype=torch.float32)
    lat = x0[0].detach().float().cpu()
    rgb = torch.einsum("chw,ck->hwk", lat[: factors.shape[0]], factors)
    bias = getattr(latent_format, "latent_rgb_factors_bias", None)
    if bias is not None:
        rgb = rgb + torch.tensor(bias, dtype=torch.float32)
    return rgb


def latent_to_rgb(x0: Tensor, latent_format: Any, taesd: "TAESDDecoder | None" = None) -> Image.Image:
    """Preview image of x0 [B, C, h, w] (model space): TAESD at 8× size when given, else the linear
    map at latent size (values −1..1 → 0..255)."""
    if taesd is not None:
        with torch.no_grad():
            img = taesd(x0[:1].detach().float().cpu())[0].permute(1, 2, 0)  # 0..1
        data = (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return Image.fromarray(data, "RGB")
    rgb = ((_linear_rgb(x0, latent_format) + 1.0) / 2.0).clamp(0, 1)
    return Image.fromarray((rgb * 255).round().to(torch.uint8).numpy(), "RGB")


def preview_jpeg(x0: Tensor, latent_format: Any, max_size: int = 512, taesd: "TAESDDecoder | None" = None,
                 quality: int = 85) -> bytes:
    """JPEG bytes of the preview, enlarged towards pixel size (×8) but no side above max_size."""
    img = latent_to_rgb(x0, latent_format, taesd)
    w, h = img.size
    factor = 1 if taesd is not None else 8
    scale = min(factor, max_size / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# ---------------------------------------------------------------------------- TAESD decoder
def _conv(n_in: int, n_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, bias=bias)


class _Clamp(nn.Module):
    """Soft clamp of the latent to ±3 (tanh), as in the published decoder."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


class _Block(nn.Module):
    """Residual block: three 3×3 convs with ReLUs, 1×1 skip when the width changes."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


class TAESDDecoder(nn.Sequential):
    """The published TAESD decoder layout (state-dict keys "1.weight", "3.conv.0.weight", ...).

    Input: model-space latent [B, 4, h, w]; output: image [B, 3, 8h, 8w] in about 0..1.
    """

    def __init__(self, latent_channels: int = 4, width: int = 64) -> None:
        layers: list[nn.Module] = [_Clamp(), _conv(latent_channels, width), nn.ReLU()]
        for _ in range(3):
            layers += [_Block(width, width), _Block(width, width), _Block(width, width),
                       nn.Upsample(scale_factor=2), _conv(width, width, bias=False)]
        layers += [_Block(width, width), _conv(width, 3)]
        super().__init__(*layers)


def load_taesd_decoder(path: str | Path) -> TAESDDecoder:
    """TAESD decoder from `taesd_decoder.safetensors|.pth` (also accepts a `decoder.`/`taesd_decoder.` prefix)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
    
        sd = load_file(str(path))
    else:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    for prefix in ("taesd_decoder.", "decoder."):
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    width = sd["1.weight"].shape[0]
    model = TAESDDecoder(latent_channels=sd["1.weight"].shape[1], width=width)
    model.load_state_dict(sd)
    return model.eval()


def find_taesd_decoder(vae_approx_dirs: Iterable[str | Path], family: str = "sd1") -> Path | None:
    """`taesd_decoder.*` (SD1/SD2) or `taesdxl_decoder.*` (SDXL) in the vae_approx folders, if any."""
    stem = "taesdxl_decoder" if family in ("sdxl", "sdxl_refiner") else "taesd_decoder"
    for d in vae_approx_dirs:
        for ext in (".safetensors", ".pth"):
            p = Path(d) / f"{stem}{ext}"
            if p.is_file():
                return p
    return None
