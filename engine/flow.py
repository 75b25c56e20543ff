"""Dynamic-graph vocabulary shared by the executor and ComfyUI-style plugins (torch-free).

ComfyUI's execution model lets a node change the graph while it runs: it may return an
`ExecutionBlocker` instead of a value (consumers of that value are skipped), or a graph to
splice in ("node expansion": `{"result": ..., "expand": graph}`), whose nodes get *ephemeral*
ids derived from the expanding node's id. `DynamicPrompt` is the prompt plus those ephemeral
nodes; `ExpansionPrefix` is the per-call id prefix that makes ephemeral ids deterministic
(`<parent id>.<call index>.<graph index>.`), so a re-run expands to the same ids and hits the cache.
comfy_compat's `comfy_execution` modules re-export these objects: one class, one identity.
"""
from __future__ import annotations

from typing import Any


class ExecutionBlocker:
    """A value that blocks every node consuming it. With a message, the block is reported as an
    `execution_error` of the consumer (the run goes on); with None it is silent."""

    def __init__(self, message: str | None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


class DependencyCycleError(Exception):
    """An expansion produced a cycle (static cycles are refused by validation)."""


class NodeNotFoundError(Exception):
    """A link or an expansion names a node the dynamic prompt does not have."""


def is_link(value: Any) -> bool:
    """ComfyUI's link test: `[str node id, int|float output index]`."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (int, float)) and not isinstance(value[1], bool))


class DynamicPrompt:
    """The prompt being executed plus the ephemeral nodes expansions added to it.

    `parents` maps an ephemeral id to the node that expanded it; `display` to the id the UI should
    highlight (the expanding node unless the graph set `override_display_id`).
    """

    def __init__(self, original_prompt: dict) -> None:
        self.original_prompt = original_prompt
        self.ephemeral_prompt: dict[str, dict] = {}
        self.ephemeral_parents: dict[str, str] = {}
        self.ephemeral_display: dict[str, str] = {}

    def get_node(self, node_id: str) -> dict:
        if node_id in self.ephemeral_prompt:
            return self.ephemeral_prompt[node_id]
        if node_id in self.original_prompt:
            return self.original_prompt[node_id]
        raise NodeNotFoundError(f"Node {node_id} not found")

    def has_node(self, node_id: str) -> bool:
        return node_id in self.original_prompt or node_id in self.ephemeral_prompt

    def add_ephemeral_node(self, node_id: str, node_info: dict, parent_id: str, display_id: str) -> None:
        self.ephemeral_prompt[node_id] = node_info
        self.ephemeral_parents[node_id] = parent_id
        self.ephemeral_display[node_id] = display_id

    def get_real_node_id(self, node_id: str) -> str:
        """The node of the submitted prompt this (possibly ephemeral) node descends from."""
        while node_id in self.ephemeral_parents:
            node_id = self.ephemeral_parents[node_id]
        return node_id

    def get_parent_node_id(self, node_id: str) -> str | None:
        return self.ephemeral_parents.get(node_id)

    def get_display_node_id(self, node_id: str) -> str:
        while node_id in self.ephemeral_display:
            node_id = self.ephemeral_display[node_id]
        return node_id

    def all_node_ids(self) -> set[str]:
        return set(self.original_prompt) | set(self.ephemeral_prompt)

    def get_original_prompt(self) -> dict:
        return self.original_prompt


class ExpansionPrefix:
    """Where graph builders take their default id prefix from (process-wide, as in ComfyUI).

    The executor sets (node id, call index) before each call of a node's function; each builder
    created during that call takes the next graph index.
    """

    root = ""
    call_index = 0
    graph_index = 0

    @classmethod
    def set(cls, root: str, call_index: int, graph_index: int = 0) -> None:
        cls.root, cls.call_index, cls.graph_index = root, call_index, graph_index

    @classmethod
    def allocate(cls, root: str | None = None, call_index: int | None = None,
                 graph_index: int | None = None) -> str:
        """The next `<root>.<call>.<graph>.` prefix (the graph counter advances every time)."""
        prefix = (f"{cls.root if root is None else root}.{cls.call_index if call_index is None else call_index}."
                  f"{cls.graph_index if graph_index is None else graph_index}.")
        cls.graph_index += 1
        return prefix
