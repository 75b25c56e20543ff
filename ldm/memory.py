"""How much memory a computation will need, how much there is, and refusing what cannot fit.

Every node that allocates in proportion to sizes a user typed (a 16384² latent, batch 4096, an
upscale to 16384²) asks here first, so an impossible request becomes a clear error instead of
the OOM killer ending the server. The estimators are pure functions of configs and shapes; they
walk the same layer sequence as `ldm.unet.UNetModel` / `ldm.vae.AutoencoderKL` and add up what
is alive at the worst moment of one no-grad forward pass:

- UNet: every skip tensor (kept until the decoder half consumes it) + the worst block's
  temporaries: a ResBlock holds input + GroupNorm/SiLU/conv outputs (≈ cin + 4·cout), a
  transformer block's feed-forward holds x, norm, the 8·C GEGLU projection, gelu(gate) and the
  product (≈ 18·C per token), an Upsample the input + 2 outputs at 4× the pixels.
- Attention score matrices (B·heads·Nq·Nk) only where `scores_materialised` says the kernel
  builds them: torch's CPU `scaled_dot_product_attention` is a flash kernel (measured here:
  8192 tokens, 1 head, d 64 → 2.9 MiB peak, not the 256 MiB of the scores), CUDA flash /
  memory-efficient kernels too up to head width 256; wider heads (the VAE's single 512-wide head)
  and MPS are counted with their N² scores.
- VAE: the decoder's full-resolution levels (ResBlocks at 2·ch channels before the last
  upsample) dominate; tiled work needs the output + weight buffers plus one tile's pass.

Calibration (bench/bench_memory.py; peak RSS growth of a fresh process, fp32, 1 thread, this
2-core CPU; ratio = estimate / measured; the plain tensor count came out at 0.65-0.87 of the
UNet's measured peak — allocator retention, oneDNN layout copies — hence UNET_SLACK = 1.6):

    UNet (batch 2)     tiny 64²/128²  demo 64²/128²  medium(mc 96) 32²/64²  SD1.5 64²/96²
    ratio              1.04 / 1.29    1.15 / 1.10    1.46 / 1.07            1.47 / 1.13
    VAE decode         tiny 512²/1024²  demo 512²/1024²  medium(ch 64) 512²  SD 512²  demo 1024² in 256 tiles
    ratio              1.77 / 1.84      1.24 / 1.82      1.88                1.79     1.26
    VAE encode         demo 512²/1024²  medium 512²  SD 512²
    ratio              1.47 / 1.46      1.49         1.49

Repeated measurements of one case vary by up to ±25 % (the demo VAE's 512² decode: 151-244 MiB),
so the small cases carry more margin. Estimates for everyday work stay far from refusing it:
SD1.5 512² txt2img step 0.47 GiB, SDXL 1024² 1.1 GiB, SD VAE 512² decode 1.6 GiB.

What is available: free RAM (`MemAvailable`, capped by a cgroup limit when one is set; psutil
when /proc is missing) or free CUDA memory (`torch.cuda.mem_get_info` + memory the allocator
holds unused), and at most the process-wide budget of `set_memory_budget` (`--max-memory`):
the most one node may allocate for its work, on top of loaded models and cached outputs.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ldm.configs import UNetConfig, VAEConfig

MiB, GiB = 1 << 20, 1 << 30
# Measured peaks exceed the plain tensor count by allocator rounding, oneDNN's blocked-layout
# copies of conv inputs/outputs and thread scratch; these factors cover that (see calibration).
UNET_SLACK = 1.6
VAE_SLACK = 1.3  # decoder only; the encoder's plain count is already ~1.45× the measured peak
FIXED_OVERHEAD = 64 * MiB  # kernels' scratch, small temporaries, the sampler's bookkeeping

_budget: int | None = None


class MemoryEstimateError(Exception):
    """A computation would need more memory than is available; says how much of each."""

    def __init__(self, needed: int, available: int, what: str = "this step", hint: str = "") -> None:
        self.needed, self.available, self.what, self.hint = int(needed), int(available), what, hint
        text = f"{what} needs ~{format_bytes(needed)}, {format_bytes(available)} available"
        super().__init__(text + (f"; {hint}" if hint else ""))


# ------------------------------------------------------------------------------------ budget + RAM
def format_bytes(n: float) -> str:
    """1.5 GiB / 640 MiB / 12 KiB (binary units, as the figures users compare with `free -h`)."""
    for unit, size in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def parse_size(text: str) -> int | None:
    """`8G`, `512M`, `1.5GiB`, `1024K`, `123456` (bytes) → bytes; `0` / `none` → None (no budget)."""
    s = str(text).strip().lower().removesuffix("ib").removesuffix("b")
    if s in ("0", "none", ""):
        return None
    units = {"k": 1 << 10, "m": MiB, "g": GiB, "t": 1 << 40}
    scale = units.get(s[-1:], 1)
    number = s[:-1] if s[-1:] in units else s
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (e.g. 8G, 512M, 0 = no limit)") from None
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"{text!r} is not a size (e.g. 8G, 512M, 0 = no limit)")
    return int(value * scale) or None


def set_memory_budget(nbytes: int | None) -> None:
    """Process-wide cap on what one node may allocate (None = only the machine's free memory)."""
    global _budget
    _budget = None if nbytes is None or nbytes <= 0 else int(nbytes)


def memory_budget() -> int | None:
    """The cap set by `set_memory_budget` (None when there is none)."""
    return _budget


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    """Limit − usage of this process's memory cgroup (v2, then v1); None when unlimited/unknown."""
    pairs = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))
    for limit_path, usage_path in pairs:
        try:
            limit = Path(limit_path).read_text().strip()
            usage = int(Path(usage_path).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:  # "no limit" is a huge number in v1
            return None
        return max(0, int(limit) - usage)
    return None


def system_available_bytes() -> int | None:
    """RAM the process can still take without swapping or the OOM killer; None if unknown."""
    free = _meminfo_available()
    if free is None:
        try:
            import psutil  # optional: macOS / Windows have no /proc

            free = int(psutil.virtual_memory().available)
        except Exception:
            return None
    headroom = _cgroup_headroom()
    return free if headroom is None else min(free, headroom)


def _cuda_available(device: torch.device) -> int:
    free, _ = torch.cuda.mem_get_info(device)
    # Memory torch's caching allocator holds but does not use is reusable by the next tensors.
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def available_bytes(device: torch.device | str | None = None) -> int | None:
    """What a computation on `device` may still allocate: free RAM / free VRAM, capped by the
    budget; None when neither the machine nor the budget says (then nothing is refused)."""
    from ldm import devices

    device = devices.get_device() if device is None else torch.device(device)
    free = _cuda_available(device) if device.type == "cuda" else system_available_bytes()
    if _budget is None:
        return free
    return _budget if free is None else min(free, _budget)


def check_fits(needed: int, what: str, hint: str = "",
               device: torch.device | str | None = None) -> None:
    """Raises MemoryEstimateError when `needed` bytes exceed what is available on `device`."""
    available = available_bytes(device)
    if available is not None and needed > available:
        raise MemoryEstimateError(needed, available, what, hint)


def fits(needed: int, device: torch.device | str | None = None) -> bool:
    """True when `needed` bytes are available (or nothing is known)."""
    available = available_bytes(device)
    return available is None or needed <= available


# ------------------------------------------------------------------------------------ tensors
def _itemsize(dtype: torch.dtype | int) -> int:
    return dtype if isinstance(dtype, int) else dtype.itemsize


def tensor_bytes(shape: tuple[int, ...] | list[int], dtype: torch.dtype | int = torch.float32) -> int:
    """Bytes of one dense tensor of this shape."""
    return math.prod(int(s) for s in shape) * _itemsize(dtype)


def image_bytes(batch: int, height: int, width: int, channels: int = 3,
                dtype: torch.dtype | int = torch.float32) -> int:
    """An IMAGE [B,H,W,C] (or MASK with channels=1)."""
    return tensor_bytes((batch, height, width, channels), dtype)


def resize_bytes(batch: int, channels: int, in_hw: tuple[int, int], out_hw: tuple[int, int],
                 method: str = "bilinear") -> int:
    """Resizing [B,C,h,w] → out_hw: the output plus the method's temporaries (bislerp works on
    several float copies of the output; lanczos goes through 8-bit PIL images and back; the
    channel-last ↔ channel-first moves of IMAGE copy the input once)."""
    out = tensor_bytes((batch, channels, *out_hw))
    extra = {"bislerp": 10, "lanczos": 2}.get(method, 1)
    return tensor_bytes((batch, channels, *in_hw)) + out * (1 + extra)


def scores_materialised(device: torch.device | str, head_dim: int) -> bool:
    """Whether `scaled_dot_product_attention` builds the N×N score matrix on this device."""
    kind = torch.device(device).type
    if kind == "cpu":
        return False  # flash kernel (measured, see module docstring)
    if kind == "cuda":
        return head_dim > 256  # flash/mem-efficient kernels stop at 256-wide heads
    return True  # MPS and others: assume the math path


# ------------------------------------------------------------------------------------ UNet
def _down(n: int) -> int:
    return (n + 1) // 2  # stride-2, padding-1 3x3 conv


def _resblock(cin: int, cout: int) -> int:
    """Channels alive at a ResBlock's worst moment (input, skip conv, h, norm/SiLU/conv outputs)."""
    return cin + 5 * cout + (cout if cin != cout else 0)


def _transformer(cfg: UNetConfig, ch: int, tokens: int, context: int, scores: bool) -> tuple[int, int]:
    """(channels alive per pixel, extra score bytes per batch item) of a SpatialTransformer."""
    heads, head_dim = cfg.heads_for(ch)
    inner = heads * head_dim
    # residual + block input + FF (norm, 8·C GEGLU projection, gelu(gate), product) + the
    # contiguous copies LayerNorm/Linear make of the transposed tokens: ~23·C measured
    per_pixel = ch + 23 * inner
    score = heads * tokens * (tokens + context) if scores else 0
    return per_pixel, score


class _Walk:
    """Accumulates live skips and the worst transient while walking a network's blocks."""

    def __init__(self, batch: int, itemsize: int) -> None:
        self.unit = batch * itemsize
        self.skips: list[int] = []
        self.peak = 0

    def at(self, channels_per_pixel: int, pixels: int, extra: int = 0) -> None:
        live = sum(self.skips) + self.unit * (channels_per_pixel * pixels + extra)
        self.peak = max(self.peak, live)


def unet_step_bytes(cfg: UNetConfig, batch: int, latent_h: int, latent_w: int,
                    dtype: torch.dtype | int = torch.float32, context_tokens: int = 77,
                    device: torch.device | str = "cpu") -> int:
    """Peak activation bytes of one UNet forward on [batch, C, h, w] (batch already includes the
    cond/uncond pair of CFG), weights not included."""
    walk = _Walk(batch, _itemsize(dtype))
    h, w, ch = latent_h, latent_w, cfg.model_channels
    walk.at(cfg.in_channels + ch, h * w)
    walk.skips.append(walk.unit * ch * h * w)
    skip_ch = [ch]
    for level, mult in enumerate(cfg.channel_mult):
        for _ in range(cfg.num_res_blocks):
            cout = mult * cfg.model_channels
            walk.at(_resblock(ch, cout), h * w)
            ch = cout
            if cfg.transformer_depth[level]:
                walk.at(*_attn(cfg, ch, h, w, context_tokens, device))
            walk.skips.append(walk.unit * ch * h * w)
            skip_ch.append(ch)
        if level != len(cfg.channel_mult) - 1:
            walk.at(ch, h * w + _down(h) * _down(w))
            h, w = _down(h), _down(w)
            walk.skips.append(walk.unit * ch * h * w)
            skip_ch.append(ch)
    walk.at(_resblock(ch, ch), h * w)
    if cfg.transformer_depth_middle:
        walk.at(*_attn(cfg, ch, h, w, context_tokens, device))
    sizes = _level_sizes(latent_h, latent_w, len(cfg.channel_mult))
    for level in reversed(range(len(cfg.channel_mult))):
        h, w = sizes[level]
        out_ch = cfg.model_channels * cfg.channel_mult[level]
        for i in range(cfg.num_res_blocks + 1):
            walk.skips.pop()
            cat = ch + skip_ch.pop()
            # h + skip + their cat (the block's input), counted as held through the block
            walk.at(ch + cat + _resblock(cat, out_ch), h * w)
            ch = out_ch
            if cfg.transformer_depth[level]:
                walk.at(*_attn(cfg, ch, h, w, context_tokens, device))
            if level > 0 and i == cfg.num_res_blocks:
                uh, uw = sizes[level - 1]
                walk.at(ch, h * w + 2 * uh * uw)
    walk.at(2 * cfg.model_channels + cfg.out_channels, latent_h * latent_w)
    return int(walk.peak * UNET_SLACK)


def _attn(cfg: UNetConfig, ch: int, h: int, w: int, context: int,
          device: torch.device | str) -> tuple[int, int, int]:
    head_dim = cfg.heads_for(ch)[1]
    per_pixel, score = _transformer(cfg, ch, h * w, context, scores_materialised(device, head_dim))
    return per_pixel, h * w, score


def _level_sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    for _ in range(levels - 1):
        h, w = _down(h), _down(w)
        sizes.append((h, w))
    return sizes


def sampling_bytes(cfg: UNetConfig, batch: int, latent_h: int, latent_w: int, *, cfg_scale: float,
                   dtype: torch.dtype | int = torch.float32, context_tokens: int = 77,
                   device: torch.device | str = "cpu") -> int:
    """One sampling step: the UNet forward on the CFG batch (cond + uncond unless cfg == 1)
    plus the sampler's latent-sized state (x, noise, denoised, multistep history, masks)."""
    passes = 1 if cfg_scale == 1.0 else 2
    unet = unet_step_bytes(cfg, batch * passes, latent_h, latent_w, dtype, context_tokens, device)
    latents = 12 * tensor_bytes((batch, max(cfg.in_channels, cfg.out_channels), latent_h, latent_w))
    return unet + latents + FIXED_OVERHEAD


# ------------------------------------------------------------------------------------ VAE
def _vae_attn(cfg: VAEConfig, batch: int, pixels: int, device: torch.device | str,
              itemsize: int) -> int:
    c = cfg.ch * cfg.ch_mult[-1]
    score = batch * pixels * pixels * itemsize if scores_materialised(device, c) else 0
    return batch * itemsize * 6 * c * pixels + score  # x, norm, q, k, v, out (+ scores)


def _decoder_peak(cfg: VAEConfig, batch: int, h: int, w: int, device, itemsize: int) -> int:
    unit = batch * itemsize
    levels = len(cfg.ch_mult)
    cin = cfg.ch * cfg.ch_mult[-1]
    peak = _vae_attn(cfg, batch, h * w, device, itemsize)
    for i in reversed(range(levels)):
        cout = cfg.ch * cfg.ch_mult[i]
        blocks = [(cin if j == 0 else cout, cout) for j in range(cfg.num_res_blocks + 1)]
        for a, b in blocks:
            peak = max(peak, unit * h * w * _vae_resblock(a, b))
        cin = cout
        if i != 0:
            peak = max(peak, unit * cout * (h * w + 8 * h * w))  # input + interpolate + conv
            h, w = 2 * h, 2 * w
    return max(peak, unit * h * w * (2 * cin + cfg.out_ch))


def _vae_resblock(cin: int, cout: int) -> int:
    # x, norm1, silu, conv1, norm2/silu, conv2, shortcut, sum
    return 3 * cin + 3 * cout + (cout if cin != cout else 0)


def vae_decode_bytes(cfg: VAEConfig, batch: int, latent_h: int, latent_w: int,
                     dtype: torch.dtype | int = torch.float32, tile: int | None = None,
                     overlap: int = 64, device: torch.device | str = "cpu") -> int:
    """Peak bytes of decoding [batch, z, h, w] (tile/overlap in pixels; None = in one piece):
    the decoder pass (of one tile when tiled) + the float32 image and its blend buffers."""
    size, f = _itemsize(dtype), cfg.downscale_ratio
    oh, ow = latent_h * f, latent_w * f
    output = 3 * image_bytes(batch, oh, ow)  # decoded [B,3,H,W], (x+1)/2 + clamp, permuted copy
    if tile is None:
        return int(_decoder_peak(cfg, batch, latent_h, latent_w, device, size) * VAE_SLACK) + output
    lt = max(1, tile // f)
    th, tw = min(lt, latent_h), min(lt, latent_w)
    tiled = _decoder_peak(cfg, batch, th, tw, device, size)
    buffers = 2 * image_bytes(batch, oh, ow) + tensor_bytes((oh, ow))  # out, weight, out / weight
    return int(tiled * VAE_SLACK) + buffers + output


def _encoder_peak(cfg: VAEConfig, batch: int, h: int, w: int, device, itemsize: int) -> int:
    unit = batch * itemsize
    peak = unit * h * w * (cfg.in_channels + 2 * cfg.ch)
    cin = cfg.ch
    for i, mult in enumerate(cfg.ch_mult):
        cout = cfg.ch * mult
        for j in range(cfg.num_res_blocks):
            peak = max(peak, unit * h * w * _vae_resblock(cin if j == 0 else cout, cout))
        cin = cout
        if i != len(cfg.ch_mult) - 1:
            peak = max(peak, unit * cout * (2 * h * w + (h // 2) * (w // 2)))  # x, padded, out
            h, w = h // 2, w // 2
    return max(peak, _vae_attn(cfg, batch, h * w, device, itemsize))


def vae_encode_bytes(cfg: VAEConfig, batch: int, height: int, width: int,
                     dtype: torch.dtype | int = torch.float32, tile: int | None = None,
                     overlap: int = 64, device: torch.device | str = "cpu") -> int:
    """Peak bytes of encoding IMAGE [batch, H, W, 3] (tile/overlap in pixels; None = one piece):
    the -1..1 channel-first copy of the pixels + the encoder pass (of one tile when tiled)."""
    size = _itemsize(dtype)
    pixels = 2 * tensor_bytes((batch, cfg.in_channels, height, width), size)
    if tile is None:
        return _encoder_peak(cfg, batch, height, width, device, size) + pixels
    th, tw = min(tile, height), min(tile, width)
    return _encoder_peak(cfg, batch, th, tw, device, size) + pixels


# ------------------------------------------------------------------------------------ upscalers
def upscale_model_bytes(batch: int, height: int, width: int, scale: int, tile: int,
                        features: int, channels: int = 3) -> int:
    """Tiled image-model upscaling (ldm.upscale.tiled_apply): the channel-first input, the
    upscaled output + weight accumulators, the clamped channel-last result, and one tile's
    activations (~3 feature maps of `features` channels at the tile's size plus ~1.5 in the
    upsampling tail at `scale`² × the pixels; a tiny ESRGAN ×2, 512² image: estimate 1.15× the
    measured peak at 32 and at 64 features)."""
    out = tensor_bytes((batch, channels, height * scale, width * scale))
    th, tw = min(tile, height), min(tile, width)
    tile_work = int(4 * batch * th * tw * features * (3 + 1.5 * scale * scale))
    return image_bytes(batch, height, width, channels) + 3 * out + tile_work + FIXED_OVERHEAD
