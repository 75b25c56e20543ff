"""comfy.utils: tensor helpers, file loading and ProgressBar, over ldm/ and the engine's events.

ProgressBar reports to the node that is running (engine.context.current_context()), so a plugin's
progress reaches the WebSocket, the CLI and the history like a built-in node's, and an interrupted
job stops at the plugin's next update, as in ComfyUI.
"""
from __future__ import annotations

import io
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from engine.context import current_context
from engine.events import Preview, Progress
from ldm import image_ops
from ldm.checkpoint import load_state_dict, read_metadata
from ldm.upscale import tiled_apply

PROGRESS_BAR_ENABLED = True
PROGRESS_BAR_HOOK: Callable[..., None] | None = None


def load_torch_file(ckpt: str, safe_load: bool = False, device: Any = None,
                    return_metadata: bool = False) -> Any:
    """A state dict from .safetensors or a weights-only pickle (never arbitrary code: safe_load is
    always on here); with return_metadata, (state dict, safetensors metadata or None)."""
    sd = load_state_dict(ckpt)
    if device is not None:
        sd = {k: v.to(device) for k, v in sd.items()}
    if not return_metadata:
        return sd
    meta = read_metadata(ckpt) if str(ckpt).lower().endswith(".safetensors") else None
    return sd, (meta or None)


def save_torch_file(sd: dict, ckpt: str, metadata: dict | None = None) -> None:
    """Writes a state dict as safetensors (the only format ComfyUI writes)."""
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, ckpt, metadata=metadata)


def calculate_parameters(sd: dict, prefix: str = "") -> int:
    """Number of weights under `prefix`."""
    return sum(v.nelement() for k, v in sd.items() if k.startswith(prefix))


def weight_dtype(sd: dict, prefix: str = "") -> torch.dtype | None:
    """The dtype holding most of the weights under `prefix`."""
    counts: dict[torch.dtype, int] = {}
    for k, v in sd.items():
        if k.startswith(prefix):
            counts[v.dtype] = counts.get(v.dtype, 0) + v.nelement()
    return max(counts, key=counts.get) if counts else None


def state_dict_key_replace(state_dict: dict, keys_to_replace: dict) -> dict:
    """Renames keys in place (old → new)."""
    for old, new in keys_to_replace.items():
        if old in state_dict:
            state_dict[new] = state_dict.pop(old)
    return state_dict


def state_dict_prefix_replace(state_dict: dict, replace_prefix: dict, filter_keys: bool = False) -> dict:
    """Replaces key prefixes; with filter_keys a new dict of only the replaced keys is returned."""
    out = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        for key in [k for k in state_dict if k.startswith(old)]:
            out[new + key[len(old):]] = state_dict.pop(key)
    return out


def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int, dim: int = 0) -> torch.Tensor:
    """Repeats (or cuts) along `dim` to exactly batch_size."""
    n = tensor.shape[dim]
    if n > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if n < batch_size:
        reps = [1] * tensor.ndim
        reps[dim] = math.ceil(batch_size / n)
        return tensor.repeat(reps).narrow(dim, 0, batch_size)
    return tensor


def resize_to_batch_size(tensor: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Picks evenly spread items (or repeats them) so the batch has batch_size entries."""
    n = tensor.shape[0]
    if n == batch_size:
        return tensor
    if batch_size <= 1:
        return tensor[:batch_size]
    idx = torch.linspace(0, n - 1, batch_size).round().long() if n > 1 else torch.zeros(batch_size, dtype=torch.long)
    return tensor[idx]


def common_upscale(samples: torch.Tensor, width: int, height: int, upscale_method: str,
                   crop: str) -> torch.Tensor:
    """Resizes channel-first [B,C,H,W] (or [B,C,T,H,W] frame by frame) like ComfyUI's image and
    latent resize nodes: nearest-exact/bilinear/area/bicubic, lanczos, bislerp; crop 'center'."""
    if samples.ndim == 5:
        b, c, t, h, w = samples.shape
        flat = samples.movedim(2, 1).reshape(b * t, c, h, w)
        out = common_upscale(flat, width, height, upscale_method, crop)
        return out.reshape(b, t, c, height, width).movedim(1, 2)
    return image_ops.resize(samples, width, height, upscale_method, crop)


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos resize of channel-first [B,C,H,W] through Pillow."""
    return image_ops.lanczos(samples, width, height)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """ComfyUI's slerp-based bilinear latent resize of [B,C,H,W]."""
    return image_ops.bislerp(samples, width, height)


def get_tiled_scale_steps(width: int, height: int, tile_x: int, tile_y: int, overlap: int) -> int:
    """How many tiles tiled_scale will process (for sizing a ProgressBar)."""
    rows = math.ceil(height / (tile_y - overlap)) if height > tile_y else 1
    cols = math.ceil(width / (tile_x - overlap)) if width > tile_x else 1
    return rows * cols


def tiled_scale(samples: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor],
                tile_x: int = 64, tile_y: int = 64, overlap: int = 8, upscale_amount: float = 4,
                out_channels: int = 3, output_device: str = "cpu", pbar: Any = None) -> torch.Tensor:
    """Applies an image→image function to [B,C,H,W] in overlapping square tiles with feathered
    seams (tile = min(tile_x, tile_y)); the result is upscale_amount times larger."""
    scale = int(round(upscale_amount))
    if scale != upscale_amount or scale < 1:
        return _tiled_any_scale(samples, function, tile_x, tile_y, upscale_amount, output_device, pbar)
    progress = (lambda done, total: pbar.update_absolute(done, total)) if pbar is not None else None
    out = tiled_apply(function, samples, scale, min(tile_x, tile_y), overlap, progress)
    return out.to(output_device)


def _tiled_any_scale(samples: torch.Tensor, function: Callable, tile_x: int, tile_y: int,
                     amount: float, output_device: str, pbar: Any) -> torch.Tensor:
    """Non-integer factors (VAE encode: 1/8): plain tiles without overlap, pasted at scaled positions."""
    b, _, h, w = samples.shape
    out = None
    for y in range(0, h, tile_y):
        for x in range(0, w, tile_x):
            res = function(samples[:, :, y:y + tile_y, x:x + tile_x]).to(output_device)
            if out is None:
                out = torch.zeros((b, res.shape[1], round(h * amount), round(w * amount)), device=output_device)
            oy, ox = round(y * amount), round(x * amount)
            out[:, :, oy:oy + res.shape[-2], ox:ox + res.shape[-1]] = res
            if pbar is not None:
                pbar.update(1)
    return out


def reshape_mask(input_mask: torch.Tensor, output_shape: tuple) -> torch.Tensor:
    """A mask [H,W]/[B,H,W]/[B,1,H,W] resized to output_shape's spatial size and channel count."""
    spatial = tuple(output_shape[2:])
    mask = input_mask
    while mask.ndim < 4:
        mask = mask.unsqueeze(0 if mask.ndim < 3 else 1)
    mask = F.interpolate(mask.float(), size=spatial, mode="bilinear")
    if mask.shape[1] != output_shape[1]:
        mask = mask[:, :1].repeat(1, output_shape[1], 1, 1)
    return repeat_to_batch_size(mask, output_shape[0])


def get_attr(obj: Any, attr: str) -> Any:
    """Follows a dotted path (`a.b.0.c`) through attributes."""
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


def set_attr(obj: Any, attr: str, value: Any) -> Any:
    """Sets a dotted attribute path; returns the previous value."""
    *parents, last = attr.split(".")
    owner = get_attr(obj, ".".join(parents)) if parents else obj
    prev = getattr(owner, last)
    setattr(owner, last, value)
    return prev


def set_attr_param(obj: Any, attr: str, value: torch.Tensor) -> Any:
    """set_attr with the value wrapped as a frozen Parameter."""
    return set_attr(obj, attr, torch.nn.Parameter(value, requires_grad=False))


def copy_to_param(obj: Any, attr: str, value: torch.Tensor) -> None:
    """Copies into an existing parameter's storage."""
    get_attr(obj, attr).data.copy_(value)


def set_progress_bar_enabled(enabled: bool) -> None:
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = bool(enabled)


def set_progress_bar_global_hook(function: Callable[..., None] | None) -> None:
    """Replaces where ProgressBars report (default: the running node's progress events)."""
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


def _preview_jpeg(preview: Any) -> bytes | None:
    """ComfyUI's preview tuple ("JPEG"|"PNG", PIL image, max size) as JPEG bytes."""
    if not isinstance(preview, (tuple, list)) or len(preview) < 2 or not hasattr(preview[1], "save"):
        return None
    image = preview[1]
    if len(preview) > 2 and preview[2]:
        image = image.copy()
        image.thumbnail((int(preview[2]), int(preview[2])))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def report_progress(value: float, total: float, preview: Any = None, node_id: str | None = None) -> None:
    """The default hook: a `progress` event (and `preview`) for the running node; raises the
    engine's Interrupted when the job was interrupted. A no-op outside execution."""
    ctx = current_context()
    if ctx is None:
        return
    ctx.check_interrupt()
    node = str(node_id) if node_id is not None else ctx.node_id
    ctx.emit(Progress(value, total, ctx.prompt_id, node))
    jpeg = _preview_jpeg(preview)
    if jpeg is not None:
        ctx.emit(Preview(ctx.prompt_id, node, jpeg))


class ProgressBar:
    """Progress of a long plugin loop: `update(n)` / `update_absolute(value, total, preview)`."""

    def __init__(self, total: float, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0
        self.node_id = node_id
        self.hook = PROGRESS_BAR_HOOK or report_progress

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)
