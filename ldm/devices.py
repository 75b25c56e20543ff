"""Which device and dtype models run on, and moving them there and back.

One process-wide choice (CUDA > MPS > CPU unless `set_device` says otherwise): a node-graph
application runs one model at a time, so a single current device keeps the nodes free of device
plumbing. Compute is fp32 on CPU (fp16 matmuls are slow and inaccurate there); weights stored in
fp16 are upcast when a model is moved to the CPU.

Residency: `to_device(module)` is how a model is *used*; a `Residency` remembers the modules it
put on the compute device, least recently used first, and offloads the oldest ones to system RAM
before a new one would push the resident weights over a budget (by default RESIDENT_FRACTION of
the GPU's memory; `set_residency_budget`). The executor's model cache may hold several models;
only as many as fit stay on the GPU. On the CPU (compute device = offload device) nothing moves.
"""
from __future__ import annotations

import gc
import threading
import weakref
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

_override: torch.device | None = None
# Share of a GPU's memory that resident weights may take; the rest is left to activations.
RESIDENT_FRACTION = 0.6


def set_device(name: str | torch.device | None) -> None:
    """Force a device ("cpu", "cuda:0", "mps"); None returns to automatic choice."""
    global _override, _residency
    _override = None if name is None else torch.device(name)
    with _residency_lock:
        _residency = None  # the next use builds one for the new device


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
    """Use a module: move it to the compute device in its compute dtype (in place; returns it),
    offloading least recently used models first when the residency budget requires it. An
    explicit `device` other than the current one is a plain move, outside the residency."""
    if device is not None and not _same_device(torch.device(device), get_device()):
        return _move(module, torch.device(device), compute_dtype(device))
    return residency().use(module)


def offload(module: nn.Module) -> nn.Module:
    """Move a module back to system RAM (keeping its dtype: halves stay halves, so RAM is not
    doubled; `to_device` casts again when it is next used) and release cached GPU memory."""
    return residency().offload(module)


def _move(module: nn.Module, device: torch.device, dtype: torch.dtype | None) -> nn.Module:
    """module.to(device[, dtype]) when some parameter is elsewhere (or, with dtype, another float type).
    dtype None = keep each parameter's dtype (the way back to RAM); then cached GPU memory is released."""
    if dtype is not None:
        if _needs_move(module, device, dtype):
            module.to(device=device, dtype=dtype)
    elif any(not _same_device(p.device, device) for p in module.parameters()):
        module.to(device=device)
        soft_empty_cache()
    return module


def module_bytes(module: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes of a module's parameters and buffers, floating ones counted in `dtype` when given."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        size = dtype.itemsize if dtype is not None and t.is_floating_point() else t.element_size()
        total += t.numel() * size
    return total


def default_budget(device: torch.device) -> int | None:
    """RESIDENT_FRACTION of a CUDA device's memory (or of MPS's recommended maximum); None =
    unlimited (the CPU, or an MPS build that cannot say)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * RESIDENT_FRACTION)
    recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
    if device.type == "mps" and recommended is not None:
        return int(recommended() * RESIDENT_FRACTION)
    return None


class Residency:
    """The modules on the compute device, least recently used first (weakly held: a model its
    cache dropped is forgotten and its memory freed by the garbage collector).

    `move(module, device, dtype)` does the moving (`dtype` None = back to RAM keeping dtypes);
    tests pass a recording one to run the policy without a second device.
    """

    def __init__(self, compute: torch.device, offload_to: torch.device, budget: int | None = None,
                 move: Callable[[nn.Module, torch.device, torch.dtype | None], object] = _move) -> None:
        self.compute, self.offload_to, self.budget, self._move = compute, offload_to, budget, move
        self.dtype = compute_dtype(compute)
        self._entries: OrderedDict[int, tuple[weakref.ref, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """False when compute and offload device are the same: then nothing is tracked or evicted."""
        return not _same_device(self.compute, self.offload_to)

    def use(self, module: nn.Module) -> nn.Module:
        """Move `module` to the compute device (most recently used now), evicting the oldest first
        while the resident weights plus this one would exceed the budget."""
        if not self.active:
            self._move(module, self.compute, self.dtype)
            return module
        with self._lock:
            self._prune()
            key = id(module)
            if key in self._entries:
                self._entries.move_to_end(key)
            else:
                need = module_bytes(module, self.dtype)
                while self._entries and self.budget is not None and self.resident_bytes() + need > self.budget:
                    ref, _ = self._entries.popitem(last=False)[1]
                    if (old := ref()) is not None:
                        self._move(old, self.offload_to, None)
                self._entries[key] = (weakref.ref(module), need)
            self._move(module, self.compute, self.dtype)
        return module

    def offload(self, module: nn.Module) -> nn.Module:
        """Move `module` back to the offload device and stop tracking it."""
        with self._lock:
            self._entries.pop(id(module), None)
        self._move(module, self.offload_to, None)
        return module

    def offload_all(self) -> None:
        """Every tracked module back to the offload device (e.g. before a large allocation)."""
        for module in self.resident():
            self.offload(module)

    def resident(self) -> list[nn.Module]:
        """Tracked modules still alive, least recently used first."""
        alive = [ref() for ref, _ in list(self._entries.values())]
        return [m for m in alive if m is not None]

    def resident_bytes(self) -> int:
        return sum(n for ref, n in self._entries.values() if ref() is not None)

    def _prune(self) -> None:
        for key in [k for k, (ref, _) in self._entries.items() if ref() is None]:
            del self._entries[key]


_residency: Residency | None = None
_residency_lock = threading.Lock()
_budget_override: int | None = None


def residency() -> Residency:
    """The process-wide residency for the current compute device."""
    global _residency
    with _residency_lock:
        if _residency is None or not _same_device(_residency.compute, get_device()):
            device = get_device()
            budget = _budget_override if _budget_override is not None else default_budget(device)
            _residency = Residency(device, offload_device(), budget)
        return _residency


def set_residency_budget(nbytes: int | None) -> None:
    """Bytes of weights that may stay on the compute device (None = the device's default)."""
    global _budget_override
    _budget_override = nbytes
    residency().budget = nbytes if nbytes is not None else default_budget(get_device())


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


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
