"""Automatic placement for graphs that arrive without positions (API prompts, A1111 parameters).

Columns by longest path from the sources (a node sits right of everything feeding it), rows in
the order of first appearance, so a txt2img graph reads left to right like a hand-made one.
Sizes are estimated from the number of inputs so nodes do not overlap.
"""
from __future__ import annotations

from typing import Mapping

from engine.formats.comfy_api import ids_sorted, is_link

NODE_WIDTH = 300
COLUMN_GAP = 80
ROW_GAP = 40
ROW_HEIGHT = 26
HEADER = 46
ORIGIN = (40.0, 40.0)

__all__ = ["auto_layout", "estimate_size"]


def estimate_size(n_rows: int) -> list[float]:
    """[width, height] for a node showing ``n_rows`` sockets and widgets."""
    return [float(NODE_WIDTH), float(HEADER + ROW_HEIGHT * max(1, n_rows))]


def _columns(prompt: Mapping[str, Mapping]) -> dict[str, int]:
    """Longest-path depth of each node; nodes on a cycle (invalid anyway) stay in column 0."""
    parents = {nid: {str(v[0]) for v in node.get("inputs", {}).values() if is_link(v) and str(v[0]) in prompt}
               for nid, node in prompt.items()}
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(nid: str) -> int:
        if nid in depth:
            return depth[nid]
        if nid in visiting:
            return 0
        visiting.add(nid)
        d = max((visit(p) + 1 for p in parents[nid]), default=0)
        visiting.discard(nid)
        depth[nid] = d
        return d

    for nid in ids_sorted(prompt):
        visit(nid)
    return depth


def auto_layout(prompt: Mapping[str, Mapping], rows: Mapping[str, int] | None = None) -> dict[str, dict[str, list[float]]]:
    """``{node_id: {"pos": [x, y], "size": [w, h]}}`` for every node of an API-shaped prompt.

    ``rows`` optionally gives the number of visible rows per node (default: its input count).
    """
    columns = _columns(prompt)
    heights: dict[int, float] = {}
    out: dict[str, dict[str, list[float]]] = {}
    for nid in ids_sorted(prompt):
        col = columns[nid]
        n_rows = (rows or {}).get(nid, len(prompt[nid].get("inputs", {})))
        size = estimate_size(n_rows)
        y = heights.get(col, ORIGIN[1])
        out[nid] = {"pos": [ORIGIN[0] + col * (NODE_WIDTH + COLUMN_GAP), y], "size": size}
        heights[col] = y + size[1] + ROW_GAP
    return out

