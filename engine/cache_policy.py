"""Which node outputs survive between prompts: the cache modes of main.py's serve flags.

Entries are keyed by node signature (engine.executor). Each entry remembers its *owner*, the
signature of the submitted-prompt node it belongs to (itself, or the node whose expansion
created it), so modes that keep "the current prompt's nodes" keep their expansions too.

- `budget` (default): every output stays until the byte budget evicts the least recently used,
  so alternating between two workflows recomputes neither.
- `classic` (`--cache-classic`, ComfyUI's default): only entries of the prompt being run survive
  its start; everything else is dropped.
- `lru` (`--cache-lru N`, ComfyUI's LRU): entries carry the generation (prompt number) that last
  used them; at a prompt's start, while more than N entries are held, the oldest generations go.
- `none` (`--cache-none`): nothing is kept from one prompt to the next.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.cache import OutputCache

MODES = ("budget", "classic", "lru", "none")


@dataclass
class Stored:
    """One cached node result: per-output lists of values, its UI dict, its owner signature."""

    outputs: list
    ui: dict | None
    owner: str


class OutputStore:
    """The executor's output cache under one of the MODES."""

    def __init__(self, cache: OutputCache, mode: str = "budget", lru_size: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown cache mode {mode!r} (one of {', '.join(MODES)})")
        self.cache, self.mode, self.lru_size = cache, mode, max(0, int(lru_size))
        self.generation = 0
        self._used: dict[str, int] = {}

    def begin(self, prompt_sigs: set[str]) -> None:
        """A prompt starts; `prompt_sigs` are the signatures of its (submitted) nodes."""
        self.generation += 1
        if self.mode == "none":
            self.cache.clear()
        elif self.mode == "classic":
            for key in self.cache.keys():
                entry = self.cache.get(key)
                if key not in prompt_sigs and (entry is None or entry.owner not in prompt_sigs):
                    self.cache.discard(key)
        elif self.mode == "lru":
            for sig in prompt_sigs:
                self._used[sig] = self.generation
            self._evict_generations()

    def _evict_generations(self) -> None:
        keys = self.cache.keys()
        oldest = min((self._used.get(k, 0) for k in keys), default=self.generation)
        while len(keys) > self.lru_size and oldest < self.generation:
            oldest += 1
            for key in keys:
                entry = self.cache.get(key)
                owner_gen = self._used.get(entry.owner, 0) if entry is not None else 0
                if max(self._used.get(key, 0), owner_gen) < oldest:
                    self.cache.discard(key)
                    self._used.pop(key, None)
            keys = self.cache.keys()

    def get(self, sig: str) -> Stored | None:
        entry = self.cache.get(sig)
        if entry is not None and self.mode == "lru":
            self._used[sig] = self.generation
        return entry

    def __contains__(self, sig: str) -> bool:
        return sig in self.cache

    def put(self, sig: str, entry: Stored) -> None:
        if self.mode == "lru":
            self._used[sig] = self.generation
        self.cache.put(sig, entry)

    def end(self) -> None:
        """A prompt finished (`none` keeps nothing)."""
        if self.mode == "none":
            self.cache.clear()

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "lru_size": self.lru_size, "entries": len(self.cache)}
