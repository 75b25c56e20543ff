"""The execution order of a dynamic graph: a topological dissolve that can grow while it runs.

A node is *pending* until it completes; it is *ready* when no pending node blocks it. A staged
node may go back to pending with new dependencies (a lazy input it now needs, an expansion whose
results it waits for, an async call still running: an *external* block). This is how ComfyUI
orders execution; the picking heuristic (output nodes and async nodes first, then nodes feeding an
output) follows its observable order.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from engine.flow import DependencyCycleError, DynamicPrompt, is_link
from engine.graph import id_key
from engine.nodedef import Registry


class ExecutionList:
    """Pending nodes of one run, their blockers, and the node currently staged."""

    def __init__(self, dynprompt: DynamicPrompt, registry: Registry, is_cached: Callable[[str], bool]) -> None:
        self.dynprompt, self.registry, self.is_cached = dynprompt, registry, is_cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, dict[Any, bool]]] = {}
        self.external_blocks = 0
        self.unblocked = asyncio.Event()
        self.staged: str | None = None

    def _nodedef(self, node_id: str) -> Any:
        return self.registry.get(self.dynprompt.get_node(node_id)["class_type"])

    def _is_lazy(self, node_id: str, input_name: str) -> bool:
        spec = self._nodedef(node_id).input(input_name)
        return bool(spec is not None and spec.opts.get("lazy"))

    def add_node(self, node_id: str, include_lazy: bool = False) -> None:
        """Adds a node and, recursively, the uncached sources of its non-lazy linked inputs."""
        todo, links = [node_id], []
        while todo:
            nid = todo.pop()
            if nid in self.pending:
                continue
            self.pending[nid], self.block_count[nid], self.blocking[nid] = True, 0, {}
            for name, value in self.dynprompt.get_node(nid)["inputs"].items():
                if not is_link(value):  # a rawLink input still waits for its source, as in ComfyUI
                    continue
                if (include_lazy or not self._is_lazy(nid, name)) and not self.is_cached(value[0]):
                    todo.append(value[0])
                    links.append((value[0], value[1], nid))
        for link in links:
            self.add_strong_link(*link)

    def add_strong_link(self, from_id: str, socket: Any, to_id: str) -> None:
        """`to_id` waits for `from_id` (added when needed) unless that one is cached."""
        if self.is_cached(from_id):
            return
        self.add_node(from_id)
        if to_id not in self.blocking[from_id]:
            self.blocking[from_id][to_id] = {}
            self.block_count[to_id] += 1
        self.blocking[from_id][to_id][socket] = True

    def make_input_strong_link(self, to_id: str, input_name: str) -> None:
        """A lazy input became needed (check_lazy_status asked for it)."""
        value = self.dynprompt.get_node(to_id)["inputs"].get(input_name)
        if value is None:
            raise ValueError(f"Node {to_id} says it needs input {input_name}, but there is no input to that node at all")
        if not is_link(value):
            raise ValueError(f"Node {to_id} says it needs input {input_name}, but that value is a constant")
        self.add_strong_link(value[0], value[1], to_id)

    def add_external_block(self, node_id: str) -> Callable[[], None]:
        """Blocks `node_id` until the returned function is called (an async call finished)."""
        self.external_blocks += 1
        self.block_count[node_id] += 1

        def unblock() -> None:
            self.external_blocks -= 1
            self.block_count[node_id] -= 1
            self.unblocked.set()
        return unblock

    def is_empty(self) -> bool:
        return not self.pending

    def ready(self) -> list[str]:
        """Nodes nothing pending blocks, in id order (numbers numerically), so runs are repeatable."""
        return sorted((n for n in self.pending if self.block_count[n] == 0), key=id_key)

    async def stage(self) -> str:
        """The next node to run; waits for async calls; raises DependencyCycleError (with the
        blamed node id as its `node_id`) when nothing can ever become ready."""
        assert self.staged is None
        available = self.ready()
        while not available and self.external_blocks > 0:
            await self.unblocked.wait()
            self.unblocked.clear()
            available = self.ready()
        if not available:
            err = DependencyCycleError("Dependency cycle detected")
            err.node_id = self._blame(self.nodes_in_cycle())  # type: ignore[attr-defined]
            raise err
        self.staged = self._pick(available)
        return self.staged

    def _blame(self, cycle: list[str]) -> str:
        # Static cycles are refused at validation, so blame the expansion that made this one.
        for nid in cycle:
            shown = self.dynprompt.get_display_node_id(nid)
            if shown != nid:
                return shown
        return cycle[0] if cycle else ""

    def _is_output(self, node_id: str) -> bool:
        nd = self._nodedef(node_id)
        return bool(nd is not None and nd.output_node)

    def _pick(self, available: list[str]) -> str:
        # Output nodes show results early; async nodes start early so they overlap the rest.
        for nid in available:
            nd = self._nodedef(nid)
            if self._is_output(nid) or (nd is not None and nd.is_async):
                return nid
        for nid in available:
            if any(self._is_output(b) for b in self.blocking[nid]):
                return nid
        for nid in available:
            if any(self._is_output(b2) for b in self.blocking[nid] for b2 in self.blocking.get(b, {})):
                return nid
        return available[0]

    def unstage(self) -> None:
        """The staged node stays pending (it waits for something)."""
        self.staged = None

    def complete(self) -> None:
        """The staged node finished: it no longer blocks anyone."""
        nid = self.staged
        assert nid is not None
        del self.pending[nid]
        for blocked in self.blocking.pop(nid):
            self.block_count[blocked] -= 1
        self.staged = None

    def nodes_in_cycle(self) -> list[str]:
        """Pending nodes left after peeling off every node that nothing pending blocks."""
        blocked_by: dict[str, set[str]] = {n: set() for n in self.pending}
        for src, targets in self.blocking.items():
            for dst in targets:
                if dst in blocked_by:
                    blocked_by[dst].add(src)
        while True:
            free = [n for n, srcs in blocked_by.items() if not srcs]
            if not free:
                return list(blocked_by)
            for n in free:
                del blocked_by[n]
            for srcs in blocked_by.values():
                srcs.difference_update(free)
