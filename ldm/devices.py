"""Which device and dtype models run on, and moving them there and back.

One process-wide choice (CUDA > MPS > CPU unless `set_device` says otherwise): a node-graph
application runs one model at a time, so a single current device keeps the nodes free of device
plumbing. Compute is fp32 on CPU (fp16 matmuls are slow and inaccurate there); weights stored in
fp16 are upcast when a model is moved to the CPU.
"""
from __future__ import annotations

import gc

import torch
from torch import nn

_override: torch.device | None = None


def set_device(name: str | torch.device | None) -> None:
    """Force a device ("cpu", "cuda:0", "mps"); None returns to automatic choice."""
    global _override
    _override = None if name is None else torch.device(name)


def get_device() -> torch.device:
    """The device models compute on."""
    if _override is not None:
        return _override
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def offload_device() -> torch.device:
    """Where idle models wait (system RAM)."""
    return torch.device("cpu")


def compute_dtype(device: torch.device | None = None) -> torch.dtype:
    """fp32 on CPU; bf16 on CUDA GPUs that support it (no fp16 overflow in the VAE), else fp16."""
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def to_device(module: nn.Module, device: torch.device | None = None) -> nn.Module:
    """Move a module to the compute device in its compute dtype (in place; returns it)."""
    device = get_device() if device is None else torch.device(device)
    dtype = compute_dtype(device)
    if _needs_move(module, device, dtype):
        module.to(device=device, dtype=dtype)
    return module


def offload(module: nn.Module) -> nn.Module:
    """Move a module back to system RAM (keeping its dtype: halves stay halves, so RAM is not
    doubled; `to_device` casts again when it is next used) and release cached GPU memory."""
    device = offload_device()
    if any(p.device.type != device.type for p in module.parameters()):
        module.to(device=device)
        soft_empty_cache()
    return module


def _needs_move(module: nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    for p in module.parameters():
        same_device = p.device.type == device.type and (
            device.index is None or p.device.index == device.index)
        if not same_device or (p.is_floating_point() and p.dtype != dtype):
            return True
    return False


def module_device(module: nn.Module) -> torch.device:
    """Device of a module's first parameter (CPU for parameterless modules)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def soft_empty_cache() -> None:
    """Give cached accelerator memory back to the driver (no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) is not None \
            and torch.backends.mps.is_available():
        mps.empty_cache()


def free_memory() -> None:
    """Collect Python garbage (drops unreferenced tensors) then empty accelerator caches."""
    gc.collect()
    soft_empty_cache()
