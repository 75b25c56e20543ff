"""The cached graph executor.

Plan = requested outputs and their ancestors in topological order. Each node's signature hashes its
class, literal inputs, fingerprint and its upstream signatures (+ output index), so node ids do not
matter and an unchanged subgraph is never recomputed, even across different prompts. Events are
typed (engine/events.py: ComfyUI's names and payloads); the same stream feeds the WebSocket, history
and CLI.
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from engine.cache import ModelCache, OutputCache, SizeOf, estimate_nbytes
from engine.context import NodeContext
from engine.errors import Interrupted
from engine.events import (Emit, Event, ExecutionCached, ExecutionError, ExecutionInterrupted,
                           ExecutionStart, ExecutionSuccess, ExecutionWarning, Executed, Executing)
from engine.graph import Validation, id_key, validate
from engine.nodedef import Registry
from engine.validate_inputs import check_linked_ranges, short

@dataclass
class ExecutionResult:
    """Outcome of one prompt: status, UI outputs per node, error payload and the history messages."""

    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    outputs: dict = field(default_factory=dict)
    error: dict | None = None
    messages: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    ran: list = field(default_factory=list)
    cached: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    validation: Validation | None = None


@dataclass
class _Entry:
    """What the output cache holds per signature."""

    values: tuple
    is_list: tuple
    ui: dict | None




def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class _Run:
    """State of one execute() call."""

    def __init__(self, prompt_id: str, emit: Emit | None, interrupt: threading.Event) -> None:
        self.prompt_id, self.user_emit, self.interrupt = prompt_id, emit, interrupt
        self.result = ExecutionResult(prompt_id=prompt_id, status="success")
        self.values: dict[str, _Entry] = {}

    def emit(self, event: Event) -> None:
        if event.in_history:
            self.result.messages.append(event.message())
        if isinstance(event, ExecutionWarning):
            self.result.warnings.append(event.message)
        if self.user_emit is not None:
            self.user_emit(event)


class Executor:
    """Runs prompts against a registry with a shared output cache and model cache."""

    def __init__(self, registry: Registry, paths: Any, cache_budget_bytes: int = 4 << 30,
                 sizeof: SizeOf = estimate_nbytes, models: ModelCache | None = None) -> None:
        self.registry, self.paths = registry, paths
        self.cache = OutputCache(cache_budget_bytes, sizeof)
        self.models = models if models is not None else ModelCache()
        self._lock = threading.Lock()

    def free(self, unload_models: bool = False, free_memory: bool = False) -> None:
        """POST /free: drop loaded models and/or cached outputs."""
        if unload_models:
            self.models.clear()
        if free_memory:
            self.cache.clear()

    def execute(self, prompt: dict, *, prompt_id: str | None = None, extra_data: dict | None = None,
                targets: Any = None, emit: Emit | None = None, interrupt: threading.Event | None = None,
                validation: Validation | None = None) -> ExecutionResult:
        """Runs `prompt`; never raises for node failures (see ExecutionResult).

        Validation happens once. `validation` is the `engine.graph.validate` result for this very
        prompt and `targets`, computed at submit (engine.submit via the job queue): it is trusted,
        and its `.prompt` is what runs. Without it (main.py run, tests, a job recovered from the
        database after a restart) the prompt is validated here first.
        """
        with self._lock:
            run = _Run(prompt_id or str(uuid.uuid4()), emit, interrupt or threading.Event())
            run.emit(ExecutionStart(run.prompt_id))
            val = validation if validation is not None else validate(prompt, self.registry, self.paths, targets)
            run.result.validation = val
            for nid, w in val.node_warnings:
                run.emit(ExecutionWarning(run.prompt_id, nid, w))
            if not val.ok:
                self._fail_validation(run, val)
            else:
                self._run_plan(run, val, extra_data or {})
            run.emit(Executing(None, run.prompt_id))
            return run.result

    def _fail_validation(self, run: _Run, val: Validation) -> None:
        run.result.status = "error"
        run.result.error = {"type": "validation", **val.response_body()}
        run.emit(ExecutionError(
            run.prompt_id, node_id=None, node_type=None, executed=[],
            exception_message="\n".join(val.lines()) or (val.error or {}).get("message", "invalid prompt"),
            exception_type="ValidationError", traceback=[], current_inputs={}, current_outputs=[]))

    # -- planning ---------------------------------------------------------------------------
    def _signatures(self, run: _Run, prompt: dict, order: list[str], extra: dict) -> tuple[dict, dict]:
        sigs: dict[str, str] = {}
        volatile: dict[str, bool] = {}
        for nid in order:
            node = prompt[nid]
            nd = self.registry.get(node["class_type"])
            literals = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}
            links = {k: v for k, v in node["inputs"].items() if isinstance(v, list)}
            vol = nd.never_cache or any(volatile[src] for src, _ in links.values())
            fp = None
            if hasattr(nd.cls, "fingerprint") and not vol:
                try:
                    fp = nd.fingerprint(self._ctx(run, prompt, nid, nd, extra), literals)
                except Exception as exc:  # an unknown outside state means: always run
                    vol = True
                    run.emit(ExecutionWarning(run.prompt_id, nid,
                                              f"node {nid} ({nd.class_type}): fingerprint failed: {exc}"))
                vol = vol or _is_nan(fp)
            payload = [nd.class_type, literals, fp, {k: [sigs[s], i] for k, (s, i) in links.items()}]
            digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()
            sigs[nid] = digest + (":" + uuid.uuid4().hex if vol else "")
            volatile[nid] = vol
        return sigs, volatile

    def _plan(self, val: Validation, sub: Any, order: list[str], sigs: dict,
              volatile: dict) -> tuple[list[str], dict[str, _Entry]]:
        """Nodes to visit in order, and cache hits; ancestors of a cached node are not needed."""
        hits: dict[str, _Entry] = {}
        needed: set[str] = set()
        stack = list(val.outputs)
        while stack:
            nid = stack.pop()
            if nid in needed:
                continue
            needed.add(nid)
            entry = None if volatile[nid] else self.cache.get(sigs[nid])
            if entry is not None:
                hits[nid] = entry
            else:
                stack.extend(sub.predecessors(nid))
        return [n for n in order if n in needed], hits

    def _run_plan(self, run: _Run, val: Validation, extra: dict) -> None:
        prompt = val.prompt
        sub = val.graph.subgraph(prompt.keys())
        full_order = list(nx.lexicographical_topological_sort(sub, key=id_key))
        sigs, volatile = self._signatures(run, prompt, full_order, extra)
        order, hits = self._plan(val, sub, full_order, sigs, volatile)
        # Like ComfyUI: every node of the prompt whose outputs are cached is listed, including
        # ancestors of a cached node that need not be visited at all.
        run.result.cached = [n for n in full_order if n in hits or (not volatile[n] and sigs[n] in self.cache)]
        run.emit(ExecutionCached(list(run.result.cached), run.prompt_id))
        current = None
        try:
            for nid in order:
                current = nid
                if nid in hits:
                    run.values[nid] = hits[nid]
                    self._report_ui(run, nid, hits[nid].ui)
                    continue
                self._run_node(run, prompt, nid, extra, sigs[nid], volatile[nid])
        except Interrupted:
            self._interrupted(run, prompt, current)
            return
        except Exception as exc:
            self._errored(run, prompt, current, exc)
            return
        run.emit(ExecutionSuccess(run.prompt_id))

    # -- running one node ---------------------------------------------------------------------
    def _ctx(self, run: _Run, prompt: dict, nid: str, nd: Any, extra: dict) -> NodeContext:
        return NodeContext(node_id=nid, prompt_id=run.prompt_id, prompt=prompt, paths=self.paths,
                           models=self.models, extra_pnginfo=dict(extra.get("extra_pnginfo") or {}),
                           extra_data=extra, class_type=nd.class_type, emit=run.emit,
                           interrupt=run.interrupt)

    def _inputs(self, run: _Run, node: dict) -> dict[str, tuple[Any, bool]]:
        args = {}
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                src, idx = value
                entry = run.values[src]
                args[name] = (entry.values[idx], entry.is_list[idx])
            else:
                args[name] = (value, False)
        return args

    def _run_node(self, run: _Run, prompt: dict, nid: str, extra: dict, sig: str, volatile: bool) -> None:
        nd = self.registry.get(prompt[nid]["class_type"])
        ctx = self._ctx(run, prompt, nid, nd, extra)
        ctx.check_interrupt()
        run.emit(Executing(nid, run.prompt_id))
        t0 = time.perf_counter()
        entry = _call_with_lists(nd, ctx, self._inputs(run, prompt[nid]))
        run.result.timings[nid] = time.perf_counter() - t0
        run.result.ran.append(nid)
        run.values[nid] = entry
        if not volatile:
            self.cache.put(sig, entry)
        self._report_ui(run, nid, entry.ui)

    def _report_ui(self, run: _Run, nid: str, ui: dict | None) -> None:
        if ui is None:
            return
        run.result.outputs[nid] = ui
        run.emit(Executed(nid, ui, run.prompt_id))

    # -- failures -----------------------------------------------------------------------------
    def _interrupted(self, run: _Run, prompt: dict, nid: str | None) -> None:
        run.result.status = "interrupted"
        event = ExecutionInterrupted(run.prompt_id, nid, prompt[nid]["class_type"] if nid else None,
                                     list(run.result.ran) + list(run.result.cached))
        run.result.error = event.data
        run.emit(event)

    def _errored(self, run: _Run, prompt: dict, nid: str | None, exc: Exception) -> None:
        run.result.status = "error"
        node = prompt.get(nid or "", {})
        current_inputs = {}
        for name, value in (node.get("inputs") or {}).items():
            if isinstance(value, list) and value[0] in run.values:
                value = run.values[value[0]].values[value[1]]
            current_inputs[name] = value if isinstance(value, (int, float, str, bool)) else short(value)
        event = ExecutionError(
            run.prompt_id, nid, node.get("class_type"), list(run.result.ran) + list(run.result.cached),
            exception_message=str(exc), exception_type=type(exc).__name__,
            traceback=traceback.format_tb(exc.__traceback__), current_inputs=current_inputs,
            current_outputs=list(run.values))
        run.result.error = event.data
        run.emit(event)


def _merge_ui(acc: dict | None, ui: dict | None) -> dict | None:
    if ui is None:
        return acc
    if acc is None:
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in ui.items()}
    for key, value in ui.items():
        if isinstance(value, (list, tuple)) and isinstance(acc.get(key), list):
            acc[key].extend(value)
        else:
            acc[key] = value
    return acc


def _call_checked(nd: Any, ctx: NodeContext, inputs: dict) -> tuple[tuple, dict | None]:
    """One run of a node, after its linked numbers are checked against the declared ranges."""
    check_linked_ranges(nd.inputs, inputs)
    return nd.call(ctx, inputs)


def _call_with_lists(nd: Any, ctx: NodeContext, args: dict[str, tuple[Any, bool]]) -> _Entry:
    """ComfyUI list semantics: inputs from is_list outputs make the node run once per item.

    A class with INPUT_IS_LIST = True receives every input as a whole list instead. The outputs
    of a per-item run are lists (flagged so that descendants iterate too).
    """
    out_lists = tuple(o.is_list for o in nd.outputs)
    if nd.input_is_list:
        values, ui = _call_checked(nd, ctx, {k: (v if is_list else [v]) for k, (v, is_list) in args.items()})
        return _Entry(tuple(values), _pad(out_lists, len(values)), ui)
    list_args = {k: v for k, (v, is_list) in args.items() if is_list}
    if not list_args:
        values, ui = _call_checked(nd, ctx, {k: v for k, (v, _) in args.items()})
        return _Entry(tuple(values), _pad(out_lists, len(values)), ui)
    n = max(len(v) for v in list_args.values()) if all(len(v) for v in list_args.values()) else 0
    collected: list[list] = [[] for _ in nd.outputs]
    ui_acc: dict | None = None
    for i in range(n):
        ctx.check_interrupt()
        call_args = {k: (v[min(i, len(v) - 1)] if is_list else v) for k, (v, is_list) in args.items()}
        values, ui = _call_checked(nd, ctx, call_args)
        ui_acc = _merge_ui(ui_acc, ui)
        for k, value in enumerate(values[: len(collected)]):
            collected[k].extend(value if out_lists[k] else [value])
    return _Entry(tuple(collected), tuple(True for _ in collected), ui_acc)


def _pad(flags: tuple, n: int) -> tuple:
    return tuple(flags[:n]) + (False,) * max(0, n - len(flags))
