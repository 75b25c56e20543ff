"""Calling one node over its input lists, ComfyUI's way (used by engine.run_loop).

Every value flowing along a link is a *list* (one item per call of the producing node; an
`is_list` output contributes its items). A node runs once per index of its longest input list,
shorter lists repeating their last item; an INPUT_IS_LIST node gets the whole lists in one call.
An `ExecutionBlocker` among a call's inputs replaces that call's result. An async function's
call becomes a task that runs while other nodes execute.
"""
from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable

from engine.context import NodeContext, running
from engine.flow import ExecutionBlocker, ExpansionPrefix
from engine.validate_inputs import check_linked_ranges


def _calls(nd: Any, inputs: dict[str, list]) -> list[tuple[int | None, dict]]:
    if nd.input_is_list:
        return [(0, dict(inputs))]
    if not inputs:
        return [(None, {})]
    if any(len(v) == 0 for v in inputs.values()):
        return []  # an empty list runs the node zero times: its outputs are empty lists
    n = max(len(v) for v in inputs.values())
    return [(i, {k: v[i if len(v) > i else -1] for k, v in inputs.items()}) for i in range(n)]


def _blocker_in(args: dict, whole_lists: bool) -> ExecutionBlocker | None:
    for value in args.values():
        for item in (value if whole_lists else [value]):
            if isinstance(item, ExecutionBlocker):
                return item
    return None


async def map_calls(nd: Any, ctx: NodeContext, inputs: dict[str, list], kind: str,
                    on_block: Callable[[ExecutionBlocker], Any] | None = None) -> list:
    """Results (or still-running tasks) of calling `run` (kind "run") or `check_lazy_status`
    (kind "lazy") once per list index."""
    results: list = []
    exempt = nd.validator.covers if nd.validator is not None else (lambda _n: False)
    for index, args in _calls(nd, inputs):
        ctx.check_interrupt()
        block = _blocker_in(args, nd.input_is_list)
        if block is not None:
            results.append(on_block(block) if on_block is not None else block)
            continue
        if kind == "run":
            if index is not None:
                ExpansionPrefix.set(ctx.node_id, index, 0)
            if not nd.input_is_list:
                check_linked_ranges([s for s in nd.inputs if not exempt(s.name)], args)
        with running(ctx):
            raw = nd.invoke(ctx, args) if kind == "run" else nd.check_lazy(ctx, args)
            if inspect.isawaitable(raw):
                task = asyncio.ensure_future(raw)
                await asyncio.sleep(0)  # a task that needs no waiting finishes here
                raw = task.result() if task.done() else task
        results.append(raw)
    return results


async def resolved(results: list) -> list:
    """The results with every task awaited (its exception raised)."""
    tasks = [r for r in results if isinstance(r, asyncio.Future) and not r.done()]
    if tasks:
        await asyncio.wait(tasks)
    return [r.result() if isinstance(r, asyncio.Future) else r for r in results]


def merge_outputs(nd: Any, results: list[tuple]) -> list[list]:
    """Per-output lists from per-call result tuples; an is_list output's items are concatenated."""
    if not results:
        return []
    merged = []
    for i in range(len(results[0])):
        is_list = i < len(nd.outputs) and nd.outputs[i].is_list
        if is_list:
            items: list = []
            for r in results:
                items.extend([r[i]] if isinstance(r[i], ExecutionBlocker) else r[i])
            merged.append(items)
        else:
            merged.append([r[i] for r in results])
    return merged


def collect(nd: Any, returns: list) -> tuple[list, dict | None, list | None]:
    """(outputs, ui, expansions) of a node's raw returns. `expansions` is None unless some call
    expanded: then it lists (graph or None, result tuple) per call, resolved once the graphs ran."""
    if not returns:
        return [[] for _ in nd.outputs], None, None
    results, uis, per_call, expanded = [], [], [], False
    for raw in returns:
        values, ui, graph = nd.split_return(raw)
        if ui is not None:
            uis.append(ui)
        if graph is not None:
            expanded = True
            per_call.append((graph, values or ()))
        elif values is not None:
            _check_count(nd, values, ui)
            results.append(values)
            per_call.append((None, values))
    ui = _merge_ui(uis)
    if expanded:
        return [], ui, per_call
    return merge_outputs(nd, [r for r in results if r or not nd.outputs]), ui, None


def _merge_ui(uis: list[dict]) -> dict | None:
    """One call's UI as is; several calls' UI lists concatenated per key (later scalars win)."""
    if len(uis) <= 1:
        return uis[0] if uis else None
    merged: dict = {}
    for ui in uis:
        for key, value in ui.items():
            if isinstance(value, (list, tuple)):
                merged.setdefault(key, [])
                if isinstance(merged[key], list):
                    merged[key].extend(value)
                    continue
            merged[key] = value
    return merged


def _check_count(nd: Any, values: tuple, ui: dict | None) -> None:
    # A wrong number of values is the node's bug: report it at the node that made it.
    if len(values) != len(nd.outputs) and not (ui is not None and not values):
        raise TypeError(f"{nd.class_type}.run returned {len(values)} values for "
                        f"{len(nd.outputs)} declared outputs")
