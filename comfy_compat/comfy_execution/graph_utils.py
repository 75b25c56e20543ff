"""`comfy_execution.graph_utils`: GraphBuilder (graphs for node expansion), is_link, ExecutionBlocker.

Ids a builder gives its nodes start with a prefix: by default `<expanding node id>.<call index>.
<graph index>.` from engine.flow.ExpansionPrefix, which the executor sets before each call, so an
expansion produces the same ids on every run (and its nodes hit the cache).
"""
from __future__ import annotations

from typing import Any

from engine.flow import ExecutionBlocker, ExpansionPrefix, is_link

__all__ = ["GraphBuilder", "Node", "is_link", "ExecutionBlocker", "add_graph_prefix"]


class Node:
    """One node of a GraphBuilder graph: `out(i)` is a link to its output i."""

    def __init__(self, id: str, class_type: str, inputs: dict) -> None:
        self.id, self.class_type, self.inputs = id, class_type, inputs
        self.override_display_id: str | None = None

    def out(self, index: int) -> list:
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        """Sets an input; None removes it."""
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str) -> None:
        self.override_display_id = override_display_id

    def serialize(self) -> dict:
        data: dict[str, Any] = {"class_type": self.class_type, "inputs": self.inputs}
        if self.override_display_id is not None:
            data["override_display_id"] = self.override_display_id
        return data


class GraphBuilder:
    """Builds an API-format graph; `finalize()` is what a node returns as `expand`."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = GraphBuilder.alloc_prefix() if prefix is None else prefix
        self.nodes: dict[str, Node] = {}
        self.id_gen = 1

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        ExpansionPrefix.set(prefix_root, call_index, graph_index)

    @classmethod
    def alloc_prefix(cls, root: str | None = None, call_index: int | None = None,
                     graph_index: int | None = None) -> str:
        return ExpansionPrefix.allocate(root, call_index, graph_index)

    def node(self, class_type: str, id: str | None = None, **kwargs: Any) -> Node:
        """Adds a node (or returns the one with that id); ids get the builder's prefix."""
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        full = self.prefix + id
        if full not in self.nodes:
            self.nodes[full] = Node(full, class_type, kwargs)
        return self.nodes[full]

    def lookup_node(self, id: str) -> Node | None:
        return self.nodes.get(self.prefix + id)

    def remove_node(self, id: str) -> None:
        del self.nodes[self.prefix + id]

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Every input linked to output `index` of `node_id` gets `new_value` (None: removed)."""
        target = [self.prefix + node_id, index]
        for node in self.nodes.values():
            for key in [k for k, v in node.inputs.items() if is_link(v) and list(v) == target]:
                node.set_input(key, new_value)

    def finalize(self) -> dict:
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}


def add_graph_prefix(graph: dict, outputs: Any, prefix: str) -> tuple[dict, tuple]:
    """The graph with `prefix` before every node id (and its internal links and `outputs`)."""
    def moved(value: Any) -> Any:
        return [prefix + value[0], value[1]] if is_link(value) else value
    new_graph = {prefix + nid: {"class_type": info["class_type"],
                                "inputs": {k: moved(v) for k, v in (info.get("inputs") or {}).items()}}
                 for nid, info in graph.items()}
    return new_graph, tuple(moved(o) for o in outputs)
