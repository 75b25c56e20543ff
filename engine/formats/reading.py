"""Reading untrusted workflow text: JSON that cannot crash the reader.

Workflow files come from anywhere (downloads, PNG chunks, uploads). Python's own JSON reader
fails on some of them with errors that are not "this is not a workflow": a RecursionError for
~1,000 nested brackets, a ValueError naming `sys.set_int_max_str_digits` for integers over 4,300
digits, and it accepts `NaN` / `Infinity`, which JSON does not. Here every such input becomes a
`FormatError` with a one-line reason, and nesting is bounded *before* anything recurses, so the
converters and validation downstream never see a structure deep enough to exhaust the stack.
"""
from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, Mapping

from engine.formats.comfy_api import FormatError

# Real workflows nest < 20 levels (subgraphs inside subgraphs included); the C JSON scanner and the
# recursive walks downstream need ~1,000 frames for 1,000 levels, so 128 leaves a wide margin.
MAX_DEPTH = 128
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped whole) and brackets

__all__ = ["MAX_DEPTH", "JsonSyntaxError", "decode_text", "parse_json", "check_depth", "check_object_depth"]


class JsonSyntaxError(FormatError):
    """Text that is not JSON; keeps the position for messages that point at it."""

    def __init__(self, msg: str, lineno: int, colno: int) -> None:
        super().__init__(f"invalid JSON at line {lineno}, column {colno}: {msg}")
        self.msg, self.lineno, self.colno = msg, lineno, colno


def decode_text(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); anything else is a FormatError naming the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Raises FormatError when the brackets of JSON `text` nest deeper than `limit` (strings skipped)."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                raise FormatError(f"nested more than {limit} levels deep (at offset {match.start()})")
        elif token in "]}":
            depth -= 1


def check_object_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    """The same bound for an already-parsed object (a dict handed over by another reader)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth > limit:
            raise FormatError(f"nested more than {limit} levels deep")
        stack.extend((child, depth + 1) for child in children)


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise FormatError(f"a number with {digits} digits (at most {MAX_INT_DIGITS} are read)")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise FormatError(f"the number {text[:40]} is too large")
    return value


def _reject_constant(name: str) -> Any:
    raise FormatError(f"{name} is not a JSON value (write a number or null)")


# json.loads hooks for untrusted JSON: integers too long to print, floats that overflow to ±inf and
# the NaN/Infinity constants raise FormatError (a ValueError) instead of being read.
LIMIT_HOOKS = {"parse_int": _parse_int, "parse_float": _parse_float, "parse_constant": _reject_constant}


def parse_json(text: str) -> Any:
    """`json.loads` for untrusted text: depth-bounded, no NaN/Infinity, bounded integers.

    Raises JsonSyntaxError (not JSON) or FormatError (JSON this application refuses).
    """
    check_depth(text)
    try:
        return json.loads(text, **LIMIT_HOOKS)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:  # only when called already deep in the stack; the depth bound is the rule
        raise FormatError(f"nested too deeply to read (more than {MAX_DEPTH} levels are refused)") from None
