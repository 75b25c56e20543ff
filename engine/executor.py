"""The cached graph executor.

`execute` validates (once), then runs ComfyUI's dynamic loop (engine/run_loop.py): the requested
outputs and the uncached sources of their non-lazy inputs are staged in ComfyUI's order; nodes may
ask for lazy inputs, expand into subgraphs or run async. Each node's signature hashes its class,
literal inputs, fingerprint and its upstream signatures (+ output index), so node ids do not
matter (except for nodes that read their own UNIQUE_ID) and an unchanged subgraph is never
recomputed, even across prompts, under the cache mode chosen (engine/cache_policy.py). Events are
typed (engine/events.py: ComfyUI's names and payloads); the same stream feeds the WebSocket,
history and CLI.
"""
from __future__ import annotations

import threading
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from engine.cache import ModelCache, OutputCache, SizeOf, estimate_nbytes
from engine.cache_policy import OutputStore
from engine.context import NodeContext
from engine.errors import Interrupted
from engine.events import (Emit, Event, ExecutionCached, ExecutionError, ExecutionInterrupted,
                           ExecutionStart, ExecutionSuccess, ExecutionWarning, Executed, Executing)
from engine.flow import DependencyCycleError, DynamicPrompt
from engine.graph import Validation, id_key, validate
from engine.nodedef import Registry
from engine.asyncrun import run_coroutine
from engine.run_loop import NodeFailed, RunLoop
from engine.validate_inputs import short

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


class _Run:
    """State of one execute() call."""

    def __init__(self, prompt_id: str, emit: Emit | None, interrupt: threading.Event) -> None:
        self.prompt_id, self.user_emit, self.interrupt = prompt_id, emit, interrupt
        self.result = ExecutionResult(prompt_id=prompt_id, status="success")

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
                 sizeof: SizeOf = estimate_nbytes, models: ModelCache | None = None,
                 cache_mode: str = "budget", cache_lru_size: int = 0) -> None:
        self.registry, self.paths = registry, paths
        self.cache = OutputCache(cache_budget_bytes, sizeof)
        self.store = OutputStore(self.cache, cache_mode, cache_lru_size)  # engine/cache_policy.py
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

    # -- running ------------------------------------------------------------------------------
    def _run_plan(self, run: _Run, val: Validation, extra: dict) -> None:
        prompt = val.prompt
        dynprompt = DynamicPrompt(prompt)
        loop = RunLoop(self.registry, self.store, dynprompt, run,
                       lambda nid, nd: self._ctx(run, dynprompt, nid, nd, extra))
        order = list(nx.lexicographical_topological_sort(val.graph.subgraph(prompt.keys()), key=id_key))
        sigs = {nid: loop.signature(nid) for nid in order}
        self.store.begin({sig for nid, sig in sigs.items() if not loop.volatile[nid]})
        # Like ComfyUI: every node of the prompt whose outputs are cached is listed, including
        # ancestors of a cached node that need not be visited at all.
        run.result.cached = [n for n in order if loop.is_cached(n)]
        run.emit(ExecutionCached(list(run.result.cached), run.prompt_id))
        try:
            run_coroutine(loop.execute(list(val.outputs)))
        except Interrupted as exc:
            self._interrupted(run, prompt, getattr(exc, "node_id", None))
        except DependencyCycleError as exc:
            self._errored(run, prompt, getattr(exc, "node_id", None), exc, None, list(loop.values))
        except NodeFailed as failed:
            self._errored(run, prompt, failed.node_id, failed.exc, failed.inputs, list(loop.values))
        else:
            run.emit(ExecutionSuccess(run.prompt_id))
        finally:
            self.store.end()

    def _ctx(self, run: _Run, dynprompt: DynamicPrompt, nid: str, nd: Any, extra: dict) -> NodeContext:
        return NodeContext(node_id=nid, prompt_id=run.prompt_id, prompt=dynprompt.original_prompt,
                           paths=self.paths, models=self.models,
                           extra_pnginfo=dict(extra.get("extra_pnginfo") or {}), extra_data=extra,
                           class_type=nd.class_type, emit=run.emit, interrupt=run.interrupt,
                           dynprompt=dynprompt)

    # -- failures -----------------------------------------------------------------------------
    def _interrupted(self, run: _Run, prompt: dict, nid: str | None) -> None:
        run.result.status = "interrupted"
        event = ExecutionInterrupted(run.prompt_id, nid, prompt[nid]["class_type"] if nid in prompt else None,
                                     list(run.result.ran) + list(run.result.cached))
        run.result.error = event.data
        run.emit(event)

    def _errored(self, run: _Run, prompt: dict, nid: str | None, exc: BaseException,
                 inputs: dict | None, current_outputs: list) -> None:
        run.result.status = "error"
        node = prompt.get(nid or "", {})
        shown = [(name, [v if v is None or isinstance(v, (int, float, str, bool)) else short(v) for v in values])
                 for name, values in (inputs or {}).items()]
        # one call: the value itself (as before); a node run per list item: the list
        current_inputs = {name: vals[0] if len(vals) == 1 else vals for name, vals in shown}
        event = ExecutionError(
            run.prompt_id, nid, node.get("class_type"), list(run.result.ran) + list(run.result.cached),
            exception_message=str(exc), exception_type=type(exc).__name__,
            traceback=traceback.format_tb(exc.__traceback__), current_inputs=current_inputs,
            current_outputs=current_outputs)
        run.result.error = event.data
        run.emit(event)
