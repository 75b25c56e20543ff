"""Output cache (LRU under a byte budget) and model cache (LRU by count).

The output cache keeps node outputs where they were produced (GPU tensors stay on the GPU); sizes
are estimated by duck typing so the engine needs no torch: anything with `nbytes` (numpy, and
torch tensors via element_size()*nelement()), containers recursively.
"""
from __future__ import annotations

import sys
import threading
import types
from collections import OrderedDict
from typing import Any, Callable

SizeOf = Callable[[Any], int]


def estimate_nbytes(obj: Any, _seen: set[int] | None = None, _depth: int = 0) -> int:
    """Approximate bytes held by `obj` (tensors/arrays by their data, containers recursively)."""
    seen = _seen if _seen is not None else set()
    if id(obj) in seen or _depth > 20:
        return 0
    seen.add(id(obj))
    hook = getattr(obj, "cache_nbytes", None)
    if callable(hook):
        return int(hook())
    element_size, nelement = getattr(obj, "element_size", None), getattr(obj, "nelement", None)
    if callable(element_size) and callable(nelement):
        return int(element_size()) * int(nelement())
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj)
    if isinstance(obj, dict):
        return 64 + sum(estimate_nbytes(k, seen, _depth + 1) + estimate_nbytes(v, seen, _depth + 1)
                        for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return 56 + sum(estimate_nbytes(v, seen, _depth + 1) for v in obj)
    params = getattr(obj, "parameters", None)
    if callable(params) and callable(getattr(obj, "buffers", None)):  # an nn.Module, duck-typed
        return sum(estimate_nbytes(t, seen, _depth + 1) for t in (*params(), *obj.buffers()))
    if hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType, types.FunctionType,
                                                         types.MethodType)):
        # Wrappers such as a model object holding a UNet: count what they hold, or a cache of
        # "small" models would grow without bound.
        return 64 + sum(estimate_nbytes(v, seen, _depth + 1) for v in vars(obj).values())
    try:
        return sys.getsizeof(obj)
    except TypeError:
        return 64


class OutputCache:
    """signature → entry, least-recently-used evicted first once the byte budget is exceeded."""

    def __init__(self, budget_bytes: int = 4 << 30, sizeof: SizeOf = estimate_nbytes) -> None:
        self.budget_bytes = int(budget_bytes)
        self.sizeof = sizeof
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        """The entry (marked most recently used) or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: str, value: Any) -> bool:
        """Stores an entry; one larger than the whole budget is not kept (returns False)."""
        size = max(int(self.sizeof(value)), 1)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.budget_bytes:
                return False
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.budget_bytes and self._items:
                _, (_, s) = self._items.popitem(last=False)
                self._bytes -= s
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def discard(self, key: str) -> None:
        """Drops one entry if present (cache modes that keep only the current prompt's nodes)."""
        with self._lock:
            item = self._items.pop(key, None)
            if item is not None:
                self._bytes -= item[1]

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


class ModelCache:
    """Loaded models by key (e.g. (path, size, mtime, options)), least recently used dropped first.

    `get(key, loader)` calls `loader()` once per key; concurrent callers of the same key wait for the
    first load instead of loading twice.
    """

    def __init__(self, max_items: int = 4) -> None:
        self.max_items = max(1, int(max_items))
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: Any, loader: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = loader()
            self._items[key] = value
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
            return value

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Drops every model (POST /free unload_models)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
