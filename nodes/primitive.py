"""Primitive value nodes and PreviewAny (ComfyUI names: comfy_extras/nodes_primitive.py and
nodes_preview_any.py).

A primitive node outputs its widget's value, so one number or text can feed several inputs that
were converted to sockets. PreviewAny shows any value as text in the node's UI output.
"""
from __future__ import annotations

import json
import sys

from nodes.registry import Boolean, Float, In, Int, NodeOutput, Out, String, node


@node("utils/primitive", display_name="String")
class PrimitiveString:
    """A single-line text value."""

    INPUTS = [String("value", None)]
    OUTPUTS = [Out("STRING")]

    def run(self, ctx, value):
        return (value,)


@node("utils/primitive", display_name="String (Multiline)")
class PrimitiveStringMultiline:
    """A multi-line text value."""

    INPUTS = [String("value", None, multiline=True)]
    OUTPUTS = [Out("STRING")]

    def run(self, ctx, value):
        return (value,)


@node("utils/primitive", display_name="Int")
class PrimitiveInt:
    """An integer value (with the frontend's control-after-generate, like a seed)."""

    INPUTS = [Int("value", None, min=-sys.maxsize, max=sys.maxsize, control_after_generate=True)]
    OUTPUTS = [Out("INT")]

    def run(self, ctx, value):
        return (value,)


@node("utils/primitive", display_name="Float")
class PrimitiveFloat:
    """A floating-point value."""

    INPUTS = [Float("value", None, min=-sys.maxsize, max=sys.maxsize, step=0.1)]
    OUTPUTS = [Out("FLOAT")]

    def run(self, ctx, value):
        return (value,)


@node("utils/primitive", display_name="Boolean")
class PrimitiveBoolean:
    """A true/false value."""

    INPUTS = [Boolean("value", None)]
    OUTPUTS = [Out("BOOLEAN")]

    def run(self, ctx, value):
        return (value,)


def preview_text(value: object) -> str:
    """ComfyUI's PreviewAny rendering: strings as they are, numbers and booleans with str(),
    anything JSON can encode as JSON, the rest with str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    if value is None:
        return "None"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        try:
            return str(value)
        except Exception:  # a plugin object whose __str__ raises must not fail the preview
            return "source exists, but could not be serialized."


@node("utils", display_name="Preview Any", output_node=True)
class PreviewAny:
    """Shows any value as text on the node."""

    INPUTS = [In("source", "*")]
    OUTPUTS = []

    def run(self, ctx, source):
        return NodeOutput((), {"text": [preview_text(source)]})
