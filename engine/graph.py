"""Validation of a canonical (API-format) prompt against the node declarations.

ComfyUI semantics: every problem is reported at once; an output node whose branch has errors is
dropped while the remaining valid outputs still run (`Validation.ok` is True if at least one output
is valid). The error body is ComfyUI's 400 shape. `validate` never raises on malformed input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import networkx as nx

from engine.nodedef import Registry
from engine.validate_inputs import NodeCheck, check_node, short


@dataclass
class Validation:
    """Outcome of `validate`: what will run and every problem found."""

    ok: bool
    prompt: dict = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    error: dict | None = None
    node_errors: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    node_warnings: list[tuple[str, str]] = field(default_factory=list)  # (node id, text) of `warnings`
    graph: Any = None  # networkx.DiGraph of links (src -> dst) among the prompt's nodes
    _lines: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Readable lines for the CLI, e.g. `node 3 (KSampler) input 'steps': value 0 is smaller than min 1`."""
        out = list(self._lines)
        if self.error is not None and not self.node_errors:
            out.insert(0, f"{self.error['message']}: {self.error['details']}".rstrip(": "))
        return out

    def response_body(self) -> dict:
        """The HTTP 400 body of POST /prompt."""
        return {"error": self.error, "node_errors": self.node_errors}


def error_info(kind: str, message: str, details: str = "", extra_info: dict | None = None) -> dict:
    """ComfyUI's error object ``{type, message, details, extra_info}`` (the ``error`` of a 400 body)."""
    return {"type": kind, "message": message, "details": details, "extra_info": dict(extra_info or {})}


def error_body(kind: str, message: str, details: str = "", extra_info: dict | None = None,
               node_errors: dict | None = None) -> dict:
    """The one JSON error body every route answers with: ComfyUI's POST /prompt error shape,
    ``{"error": {type, message, details, extra_info}, "node_errors": {...}}``, so a client that
    parses /prompt errors can parse any of ours."""
    return {"error": error_info(kind, message, details, extra_info), "node_errors": dict(node_errors or {})}


class _State:
    def __init__(self, registry: Registry, paths: Any) -> None:
        self.registry, self.paths = registry, paths
        self.nodes: dict[str, dict] = {}
        self.checks: dict[str, NodeCheck] = {}
        self.top: list[dict] = []
        self.node_level: dict[str, list[tuple[dict, str]]] = {}

    def node_problem(self, nid: str, etype: str, message: str, line: str, top: bool = False) -> None:
        err = error_info(etype, message, f"Node ID '#{nid}'", {"node_id": nid})
        self.node_level.setdefault(nid, []).append((err, line))
        if top:
            self.top.append(err)


def _normalise(prompt: dict, st: _State) -> None:
    """String ids, dict nodes, known classes; bad nodes get node-level errors."""
    for raw_id, node in prompt.items():
        nid = str(raw_id)
        if not isinstance(node, dict):
            st.nodes[nid] = {}
            st.node_problem(nid, "invalid_prompt", "Node is not an object", f"node {nid}: not an object", True)
            continue
        st.nodes[nid] = node
        ct = node.get("class_type")
        if not isinstance(ct, str) or not ct:
            st.node_problem(nid, "invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                            f"node {nid}: missing class_type", True)
        elif st.registry.get(ct) is None:
            st.node_problem(nid, "missing_node_type", f"Node '{ct}' not found. The custom node may not be installed.",
                            f"node {nid} ({short(ct)}): unknown node type", True)


def _check_all(st: _State) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(st.nodes)
    for nid, node in st.nodes.items():
        nd = st.registry.get(node.get("class_type"))
        if nd is None:
            continue
        check = check_node(nid, nd.class_type, node.get("inputs"), nd, st.nodes, st.registry, st.paths)
        st.checks[nid] = check
        for src, _ in check.links.values():
            graph.add_edge(src, nid)
    for comp in nx.strongly_connected_components(graph):
        if len(comp) > 1 or any(graph.has_edge(n, n) for n in comp):
            for nid in sorted(comp):
                ct = st.nodes[nid].get("class_type")
                st.node_problem(nid, "dependency_cycle", "Dependency cycle detected",
                                f"node {nid} ({short(ct)}): is part of a dependency cycle")
    return graph


def _select_outputs(st: _State, targets: Iterable[Any] | None) -> list[str]:
    if targets:  # None or an empty list means: every output node (ComfyUI partial_execution_targets)
        wanted = []
        for t in targets if isinstance(targets, (list, tuple, set)) else [targets]:
            if isinstance(t, (str, int)) and str(t) in st.nodes and str(t) not in wanted:
                wanted.append(str(t))
        return wanted
    outs = []
    for nid, node in st.nodes.items():
        nd = st.registry.get(node.get("class_type"))
        if nd is not None and nd.output_node:
            outs.append(nid)
    return outs


def _node_has_errors(st: _State, nid: str) -> bool:
    check = st.checks.get(nid)
    return bool(st.node_level.get(nid)) or (check is not None and bool(check.errors))


def _collect(st: _State, graph: nx.DiGraph, outputs: list[str]) -> tuple[list[str], dict, list[str]]:
    """Valid outputs, node_errors (ComfyUI shape) and readable lines for nodes in requested branches."""
    valid, node_errors, lines = [], {}, []
    dependents: dict[str, list[str]] = {}
    for out in outputs:
        branch = nx.ancestors(graph, out) | {out}
        bad = [n for n in branch if _node_has_errors(st, n)]
        for n in bad:
            dependents.setdefault(n, []).append(out)
        if not bad:
            valid.append(out)
    for nid in sorted(dependents, key=id_key):
        check = st.checks.get(nid)
        errs = [e for e, _ in st.node_level.get(nid, [])] + (check.errors if check else [])
        lines += [ln for _, ln in st.node_level.get(nid, [])] + (check.lines if check else [])
        ct = st.nodes[nid].get("class_type")
        node_errors[nid] = {"errors": errs, "dependent_outputs": dependents[nid],
                            "class_type": ct if isinstance(ct, str) else None}
    return valid, node_errors, lines


def id_key(nid: str) -> tuple:
    """Sort key of node ids: numbers in numeric order first, then other ids by name."""
    return (0, int(nid), "") if nid.isdigit() else (1, 0, nid)


def _canonical(st: _State, nodes: Iterable[str]) -> dict:
    out = {}
    for nid in nodes:
        node, check = st.nodes[nid], st.checks.get(nid)
        meta = node.get("_meta") if isinstance(node.get("_meta"), dict) else {}
        nd = st.registry.get(node.get("class_type"))
        title = meta.get("title") or (nd.display_name if nd else nid)
        out[nid] = {"class_type": node.get("class_type"), "inputs": dict(check.inputs) if check else {},
                    "_meta": {**meta, "title": title}}
    return out


def validate(prompt: Any, registry: Registry, paths: Any = None, targets: Iterable[Any] | None = None) -> Validation:
    """Checks `prompt` against `registry`; see the module docstring for the semantics."""
    if prompt is None or (isinstance(prompt, dict) and not prompt):
        return Validation(False, error=error_info("no_prompt", "No prompt provided", "The prompt is empty"))
    if not isinstance(prompt, dict):
        return Validation(False, error=error_info("invalid_prompt", "Invalid prompt",
                                                  f"expected an object of nodes, got {type(prompt).__name__}"))
    try:
        return _validate(prompt, registry, paths, targets)
    except Exception as exc:  # a bug here must become a 400, not a crashed server
        return Validation(False, error=error_info("invalid_prompt", "Invalid prompt",
                                                  f"internal validation error: {type(exc).__name__}: {exc}"))


def _validate(prompt: dict, registry: Registry, paths: Any, targets: Any) -> Validation:
    st = _State(registry, paths)
    _normalise(prompt, st)
    graph = _check_all(st)
    outputs = _select_outputs(st, targets)
    pairs = [(nid, w) for nid, c in st.checks.items() for w in c.warnings]
    if not outputs:
        return Validation(False, prompt=_canonical(st, st.checks), error=error_info(
            "prompt_no_outputs", "Prompt has no outputs", "no output node (or requested target) in the prompt"),
            warnings=[w for _, w in pairs], node_warnings=pairs, graph=graph)
    valid, node_errors, lines = _collect(st, graph, outputs)
    for nid, problems in st.node_level.items():  # whole-prompt problems outside requested branches
        if nid not in node_errors and any(e in st.top for e, _ in problems):
            ct = st.nodes[nid].get("class_type")
            node_errors[nid] = {"errors": [e for e, _ in problems], "dependent_outputs": [],
                                "class_type": ct if isinstance(ct, str) else None}
            lines += [ln for _, ln in problems]
    in_branches = set().union(*(nx.ancestors(graph, o) | {o} for o in valid)) if valid else set()
    error = None
    if st.top:
        first = st.top[0]
        error = {**first, "extra_info": dict(first["extra_info"])}
    elif not valid:
        # ComfyUI's details: one "message: details" line per error.
        details = "\n".join(f"{e['message']}: {e['details']}" for entry in node_errors.values()
                             for e in entry["errors"])
        error = error_info("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
    ok = error is None and bool(valid)
    pairs = [(nid, w) for nid, w in pairs if nid in in_branches]
    return Validation(ok, prompt=_canonical(st, [n for n in st.nodes if n in in_branches]),
                      outputs=valid if ok else [], error=error, node_errors=node_errors,
                      warnings=[w for _, w in pairs], node_warnings=pairs, graph=graph, _lines=lines)
