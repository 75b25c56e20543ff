"""Exceptions shared by the engine, nodes and the server (no torch, no ldm)."""
from __future__ import annotations


class LatentgraphError(Exception):
    """Base class of the errors this application raises on purpose."""


class Interrupted(LatentgraphError):
    """The job was interrupted (POST /interrupt, Ctrl-C); raised from ctx.progress / check_interrupt."""

    def __init__(self, message: str = "Processing interrupted") -> None:
        super().__init__(message)


class NodeError(LatentgraphError):
    """A node failed in a way it can explain; names the node and, when known, the input at fault."""

    def __init__(self, message: str, *, node_id: str | None = None, class_type: str | None = None,
                 input_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.class_type = class_type
        self.input_name = input_name

    def __str__(self) -> str:
        where = []
        if self.node_id is not None:
            where.append(f"node {self.node_id}" + (f" ({self.class_type})" if self.class_type else ""))
        if self.input_name:
            where.append(f"input '{self.input_name}'")
        return (" ".join(where) + ": " if where else "") + self.message


class PathRefused(LatentgraphError, ValueError):
    """A file name would leave its root folder (.., absolute, NUL, backslash, escaping symlink)."""


class ModelNotFound(LatentgraphError, FileNotFoundError):
    """A model file named in a workflow is not in any configured folder."""

