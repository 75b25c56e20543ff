"""Test-only stub nodes (ComfyUI tests/execution style): cheap, observable, torch-free.

`make_registry()` returns a fresh Registry holding them; `register(registry)` adds them to any
registry (main.py calls it when LATENTGRAPH_EXTRA_NODES=tests.stub_nodes). `RUNS` counts runs per
StubCounter label so tests can assert what ran.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from nodes.registry import (Boolean, Combo, Float, In, Int, NodeOutput, Out, Registry, String, files,
                            node)

RUNS: Counter = Counter()
_STUBS: list[tuple[type, dict]] = []


def _stub(**kw: Any):
    def wrap(cls: type) -> type:
        _STUBS.append((cls, kw))
        return cls
    return wrap


@_stub(category="stub")
class StubInt:
    """A constant integer."""
    INPUTS = [Int("value", 0, min=-1000, max=1000)]
    OUTPUTS = [Out("INT")]

    def run(self, ctx, value):
        return (value,)


@_stub(category="stub")
class StubFloat:
    """A constant float."""
    INPUTS = [Float("value", 0.5, min=0.0, max=10.0, step=0.1, round=0.01)]
    OUTPUTS = [Out("FLOAT")]

    def run(self, ctx, value):
        return (value,)


@_stub(category="stub")
class StubString:
    """A constant string."""
    INPUTS = [String("text", "hello", multiline=True)]
    OUTPUTS = [Out("STRING")]

    def run(self, ctx, text):
        return (text,)


@_stub(category="stub/math")
class StubAdd:
    """a + b (both widgets, either may be fed by an INT link)."""
    INPUTS = [Int("a", 0, min=-10**9, max=10**9), Int("b", 1, min=-10**9, max=10**9)]
    OUTPUTS = [Out("INT", "sum")]

    def run(self, ctx, a, b):
        return (a + b,)


@_stub(category="stub/math")
class StubCounter:
    """Passes an INT through and counts its runs in RUNS[label]."""
    INPUTS = [Int("value", 0, min=-10**9, max=10**9), String("label", "counter")]
    OUTPUTS = [Out("INT")]

    def run(self, ctx, value, label):
        RUNS[label] += 1
        return (value,)


@_stub(category="stub/image")
class StubImage:
    """An image-like value: a flat list of `width*height` floats, all equal to `value`."""
    INPUTS = [Int("width", 4, min=1, max=4096, step=1), Int("height", 4, min=1, max=4096),
              Float("value", 0.5, min=0.0, max=1.0), Combo("mode", ["flat", "ramp"], default="flat")]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, width, height, value, mode):
        n = width * height
        return ([value if mode == "flat" else value * i / n for i in range(n)],)


@_stub(category="stub/image")
class StubInvert:
    """1 - x for every pixel of an image-like list."""
    INPUTS = [In("image", "IMAGE")]
    OUTPUTS = [Out("IMAGE")]

    def run(self, ctx, image):
        return ([1.0 - v for v in image],)


@_stub(category="stub/list")
class StubRange:
    """Outputs range(count) as a list: downstream nodes run once per item."""
    INPUTS = [Int("count", 3, min=0, max=100)]
    OUTPUTS = [Out("INT", is_list=True)]

    def run(self, ctx, count):
        return (list(range(count)),)


@_stub(category="stub/list")
class StubSumList:
    """Receives whole lists (INPUT_IS_LIST) and sums them."""
    INPUT_IS_LIST = True
    INPUTS = [Int("values", 0, min=-10**9, max=10**9)]
    OUTPUTS = [Out("INT")]

    def run(self, ctx, values):
        return (sum(values),)


@_stub(category="stub/util")
class StubSleep:
    """Sleeps `steps` times `seconds`, reporting progress (and a preview) after each step."""
    INPUTS = [In("value", "*"), Float("seconds", 0.0, min=0.0, max=10.0), Int("steps", 3, min=1, max=100)]
    OUTPUTS = [Out("*")]

    def run(self, ctx, value, seconds, steps):
        for i in range(steps):
            time.sleep(seconds)
            ctx.progress(i + 1, steps, preview_jpeg=b"\xff\xd8stub" if i == 0 else None)
        return (value,)


@_stub(category="stub/util")
class StubFail:
    """Raises when `fail` is on; otherwise passes its input through."""
    INPUTS = [In("value", "*"), Boolean("fail", True, label_on="fail", label_off="pass")]
    OUTPUTS = [Out("*")]

    def run(self, ctx, value, fail):
        if fail:
            raise ValueError("stub failure requested")
        return (value,)


@_stub(category="stub/util", never_cache=True)
class StubRandom:
    """A random float every run (never cached)."""
    INPUTS = []
    OUTPUTS = [Out("FLOAT")]

    def run(self, ctx):
        return (random.random(),)


@_stub(category="stub/util")
class StubFile:
    """Reads a text file; its content hash is the fingerprint, so editing the file re-runs it."""
    INPUTS = [String("path", "")]
    OUTPUTS = [Out("STRING")]

    @classmethod
    def fingerprint(cls, ctx, path=""):
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    def run(self, ctx, path):
        RUNS["file"] += 1
        return (Path(path).read_text(errors="replace"),)


@_stub(category="stub/image")
class StubLoadImage:
    """Picks a file of input/ (combo over files("input_images")) and returns its size in bytes."""
    INPUTS = [Combo("image", files("input_images"), image_upload=True)]
    OUTPUTS = [Out("INT")]

    def run(self, ctx, image):
        return ((ctx.paths.input_dir / image).stat().st_size,)


@_stub(category="stub/util")
class StubWarn:
    """Passes through and emits a warning through ctx.warn."""
    INPUTS = [In("value", "*"), String("message", "careful")]
    OUTPUTS = [Out("*")]

    def run(self, ctx, value, message):
        ctx.warn(message)
        return (value,)


@_stub(category="stub/output", output_node=True)
class StubOutput:
    """An output node: shows its input as text in the UI."""
    INPUTS = [In("value", "*"), In("extra", "*", optional=True)]
    OUTPUTS = []

    def run(self, ctx, value, extra=None):
        return NodeOutput(ui={"text": [json.dumps(value, default=repr)[:200]]})


@_stub(category="stub/output", output_node=True, display_name="Stub Save Text")
class StubSaveText:
    """Writes its input to output/<prefix>_<n>.txt and reports the file like SaveImage does."""
    INPUTS = [In("value", "*"), String("filename_prefix", "stub")]
    OUTPUTS = []

    def run(self, ctx, value, filename_prefix):
        out = ctx.paths.output_dir
        out.mkdir(parents=True, exist_ok=True)
        n = len(list(out.glob(f"{filename_prefix}_*.txt")))
        name = f"{filename_prefix}_{n:05}_.txt"
        (out / name).write_text(json.dumps(value, default=repr))
        return NodeOutput(ui={"images": [{"filename": name, "subfolder": "", "type": "output"}]})


def register(registry: Registry) -> Registry:
    """Declares every stub node in `registry`."""
    for cls, kw in _STUBS:
        node(registry=registry, **kw)(cls)
    return registry


def make_registry() -> Registry:
    """A fresh registry holding only the stubs."""
    return register(Registry())

