"""One prompt's execution as ComfyUI's dynamic loop (driven by engine.executor.Executor).

Nodes are staged from an `ExecutionList`; a node may go back to pending because a lazy input it
asked for must run first (`check_lazy_status`), because it expanded into a subgraph whose results
it waits for, or because its async call is still running (other nodes run meanwhile). Signatures
(the cache keys) are computed on the dynamic prompt, so expanded nodes are cached like the
submitted ones. Every value along a link is a list (engine.node_calls).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from typing import Any, Callable

from engine.cache_policy import OutputStore, Stored
from engine.errors import Interrupted
from engine.events import ExecutionError, Executed, Executing, ExecutionWarning
from engine.exec_list import ExecutionList
from engine.flow import DynamicPrompt, ExecutionBlocker, is_link
from engine.node_calls import collect, map_calls, merge_outputs, resolved
from engine.nodedef import Registry

DONE, PENDING = "done", "pending"


class DuplicateNodeError(Exception):
    """An expansion reused an id the dynamic prompt already has."""


class NodeFailed(Exception):
    """A node raised: carries the node id to blame (the submitted node it descends from)."""

    def __init__(self, node_id: str, exc: BaseException, inputs: dict | None) -> None:
        super().__init__(str(exc))
        self.node_id, self.exc, self.inputs = node_id, exc, inputs


class RunLoop:
    """State of one prompt run: the dynamic prompt, signatures, values, pending expansions/tasks."""

    def __init__(self, registry: Registry, store: OutputStore, dynprompt: DynamicPrompt, run: Any,
                 make_ctx: Callable[[str, Any], Any]) -> None:
        self.registry, self.store, self.dp, self.run, self.make_ctx = registry, store, dynprompt, run, make_ctx
        self.sigs: dict[str, str] = {}
        self.volatile: dict[str, bool] = {}
        self.values: dict[str, Stored] = {}
        self.pending_subgraph: dict[str, list] = {}
        self.pending_async: dict[str, list] = {}
        self.started: dict[str, float] = {}

    # -- signatures ---------------------------------------------------------------------------
    def signature(self, nid: str, _active: set[str] | None = None) -> str:
        """Hash of class, literals, fingerprint, upstream signatures (+ the id for UNIQUE_ID users)."""
        if nid in self.sigs:
            return self.sigs[nid]
        active = _active if _active is not None else set()
        node = self.dp.get_node(nid)
        nd = self.registry.get(node["class_type"])
        if nd is None or nid in active:  # unknown class / a cycle made by an expansion: never cached
            self.sigs[nid], self.volatile[nid] = uuid.uuid4().hex, True
            return self.sigs[nid]
        active.add(nid)
        literals = {k: v for k, v in node["inputs"].items() if not is_link(v)}
        links = {k: v for k, v in node["inputs"].items() if is_link(v)}
        upstream = {k: [self.signature(s, active) if self.dp.has_node(s) else "missing", i]
                    for k, (s, i) in links.items()}
        vol = nd.never_cache or any(self.volatile.get(s, True) for s, _ in links.values())
        fp, failed = self._fingerprint(nid, nd, literals, links) if not vol else (None, False)
        vol = vol or failed or (isinstance(fp, float) and math.isnan(fp))
        payload = [nd.class_type, literals, fp, upstream, nid if nd.id_in_signature else None]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()
        self.sigs[nid] = digest + (":" + uuid.uuid4().hex if vol else "")
        self.volatile[nid] = vol
        active.discard(nid)
        return self.sigs[nid]

    def _fingerprint(self, nid: str, nd: Any, literals: dict, links: dict) -> tuple[Any, bool]:
        if not hasattr(nd.cls, "fingerprint"):
            return None, False
        seen = dict(literals)
        if getattr(nd.cls, "FINGERPRINT_SEES_LINKS", False):
            seen.update({k: None for k in links})  # ComfyUI's IS_CHANGED gets constants only
        try:
            return nd.fingerprint(self.make_ctx(nid, nd), seen), False
        except Exception as exc:  # an unknown outside state means: always run
            self.run.emit(ExecutionWarning(self.run.prompt_id, nid,
                                           f"node {nid} ({nd.class_type}): fingerprint failed: {exc}"))
            return None, True

    def lookup(self, nid: str) -> Stored | None:
        """This node's outputs if they exist already (ran in this run, or cached)."""
        entry = self.values.get(nid)
        if entry is None and self.dp.has_node(nid):
            sig = self.signature(nid)
            entry = None if self.volatile[nid] else self.store.get(sig)
            if entry is not None:
                self.values[nid] = entry
        return entry

    def is_cached(self, nid: str) -> bool:
        return self.lookup(nid) is not None

    # -- the loop -----------------------------------------------------------------------------
    async def execute(self, outputs: list[str]) -> None:
        """Runs until every requested output is done; raises NodeFailed / DependencyCycleError /
        engine.errors.Interrupted (with `.node_id`) on the first failure."""
        todo = ExecutionList(self.dp, self.registry, self.is_cached)
        for nid in outputs:
            todo.add_node(nid)
        while not todo.is_empty():
            nid = await todo.stage()
            if await self.step(nid, todo) == PENDING:
                todo.unstage()
            else:
                todo.complete()

    async def step(self, nid: str, todo: ExecutionList) -> str:
        node = self.dp.get_node(nid)
        nd = self.registry.get(node["class_type"])
        display = self.dp.get_display_node_id(nid)
        cached = self.lookup(nid)
        if cached is not None:
            self._report_ui(nid, display, cached.ui)
            return DONE
        inputs = None
        try:
            if nid in self.pending_async:
                returns = await resolved(self.pending_async.pop(nid))
                outputs, ui, expansions = collect(nd, returns)
            elif nid in self.pending_subgraph:
                outputs, ui, expansions = self._resolve_subgraph(nid, nd), None, None
            else:
                inputs, missing = self.gather(nid, node, nd)
                ctx = self.make_ctx(nid, nd)
                ctx.check_interrupt()
                self.run.emit(Executing(nid, self.run.prompt_id, display_node=display))
                self.started.setdefault(nid, time.perf_counter())
                if nd.has_lazy_check and await self._needs_more(nid, nd, ctx, inputs, missing, todo):
                    return PENDING
                returns = await map_calls(nd, ctx, inputs, "run", lambda b: self._blocked(nid, nd, b))
                if any(isinstance(r, asyncio.Future) and not r.done() for r in returns):
                    self._await_later(nid, returns, todo)
                    return PENDING
                outputs, ui, expansions = collect(nd, returns)
            self._report_ui(nid, display, ui)
            if expansions is not None:
                self._expand(nid, expansions, todo)
                return PENDING
        except Exception as exc:
            if isinstance(exc, Interrupted):
                exc.node_id = self.dp.get_real_node_id(nid)  # type: ignore[attr-defined]
                raise
            raise NodeFailed(self.dp.get_real_node_id(nid), exc, inputs) from exc
        self._finish(nid, outputs, ui)
        return DONE

    def gather(self, nid: str, node: dict, nd: Any) -> tuple[dict[str, list], set[str]]:
        """Input lists of a node: links resolved (missing ones None), literals as one-item lists."""
        inputs: dict[str, list] = {}
        missing: set[str] = set()
        hidden = nd.hidden or {}
        for name, value in node["inputs"].items():
            spec = nd.input(name)
            declared = spec is not None or name in hidden
            if is_link(value) and not (spec is not None and spec.opts.get("rawLink")):
                if not declared and not nd.extra_inputs:
                    continue
                entry = self.lookup(value[0])
                if entry is None or int(value[1]) >= len(entry.outputs):
                    missing.add(name)
                    inputs[name] = [None]
                else:
                    inputs[name] = entry.outputs[int(value[1])]
            elif declared:
                inputs[name] = [value]
        return inputs, missing

    async def _needs_more(self, nid: str, nd: Any, ctx: Any, inputs: dict, missing: set,
                          todo: ExecutionList) -> bool:
        asked = await resolved(await map_calls(nd, ctx, inputs, "lazy"))
        names = {n for r in asked if isinstance(r, (list, tuple)) for n in r}
        needed = [n for n in names if isinstance(n, str) and (n not in inputs or n in missing)]
        for name in needed:
            todo.make_input_strong_link(nid, name)
        return bool(needed)

    def _blocked(self, nid: str, nd: Any, block: ExecutionBlocker) -> ExecutionBlocker:
        # A blocker with a message is reported at the consumer; the run goes on.
        if block.message is None:
            return block
        self.run.emit(ExecutionError(
            self.run.prompt_id, nid, nd.class_type, list(self.run.result.ran),
            exception_message=f"Execution Blocked: {block.message}", exception_type="ExecutionBlocked",
            traceback=[], current_inputs=[], current_outputs=[]))
        return ExecutionBlocker(None)

    def _await_later(self, nid: str, returns: list, todo: ExecutionList) -> None:
        self.pending_async[nid] = returns
        unblock = todo.add_external_block(nid)

        async def wait() -> None:
            await asyncio.gather(*[r for r in returns if isinstance(r, asyncio.Future)], return_exceptions=True)
            unblock()
        asyncio.ensure_future(wait())

    def _expand(self, nid: str, expansions: list, todo: ExecutionList) -> None:
        new_outputs, new_links = [], []
        for graph, result in expansions:
            if graph is None:
                continue
            for new_id in graph:
                if self.dp.has_node(new_id):
                    raise DuplicateNodeError(f"Attempt to add duplicate node {new_id}. Ensure node ids are "
                                             "unique and deterministic or use graph_utils.GraphBuilder.")
            for new_id, info in graph.items():
                self.dp.add_ephemeral_node(new_id, info, nid, info.get("override_display_id", nid))
                nd = self.registry.get(info.get("class_type"))
                if nd is None:
                    raise KeyError(f"expanded node {new_id}: unknown node type {info.get('class_type')!r}")
                if nd.output_node:
                    new_outputs.append(new_id)
            new_links += [(r[0], r[1]) for r in result if is_link(r)]
        for out in new_outputs:
            todo.add_node(out)
        for src, socket in new_links:
            todo.add_strong_link(src, socket, nid)
        self.pending_subgraph[nid] = expansions

    def _resolve_subgraph(self, nid: str, nd: Any) -> list[list]:
        calls = []
        for graph, result in self.pending_subgraph.pop(nid):
            if graph is None:
                calls.append(result)
                continue
            values: list = []
            for r in result:
                if is_link(r):
                    values.extend(self.lookup(r[0]).outputs[int(r[1])])  # type: ignore[union-attr]
                else:
                    values.append(r)
            calls.append(tuple(values))
        return merge_outputs(nd, calls)

    def _finish(self, nid: str, outputs: list, ui: dict | None) -> None:
        entry = Stored(outputs, ui, self.signature(self.dp.get_real_node_id(nid)))
        self.values[nid] = entry
        self.run.result.ran.append(nid)
        self.run.result.timings[nid] = time.perf_counter() - self.started.get(nid, time.perf_counter())
        if not self.volatile[nid]:
            self.store.put(self.sigs[nid], entry)

    def _report_ui(self, nid: str, display: str, ui: dict | None) -> None:
        if ui:
            self.run.result.outputs[nid] = ui
            self.run.emit(Executed(nid, ui, self.run.prompt_id, display_node=display))
