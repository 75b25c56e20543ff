"""A ComfyUI-style plugin pack of our own, exercising each execution semantic (tests/test_exec_semantics*.py).

V1 classes (INPUT_TYPES / FUNCTION) plus one V3 io.ComfyNode class registered through
comfy_entrypoint. `EVENTS` records calls in order so tests can tell what ran and when.
"""
import asyncio

from comfy_api.latest import ComfyExtension, io
from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder

EVENTS = []


class SemInt:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -1000, "max": 1000})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "make"
    CATEGORY = "sem"

    def make(self, value):
        EVENTS.append(("int", value))
        return (value,)


class SemAdd:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0}), "b": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add"
    CATEGORY = "sem"

    def add(self, a, b):
        return (a + b,)


class SemShow:
    """Output node: shows its value as text and passes it on."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}

    RETURN_TYPES = ("*",)
    FUNCTION = "show"
    OUTPUT_NODE = True
    CATEGORY = "sem"

    def show(self, value):
        return {"ui": {"text": [repr(value)]}, "result": (value,)}


class SemLazySwitch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"switch": ("BOOLEAN", {"default": True}),
                             "on_true": ("INT", {"lazy": True, "forceInput": True}),
                             "on_false": ("INT", {"lazy": True, "forceInput": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "pick"
    CATEGORY = "sem"

    def check_lazy_status(self, switch, on_true=None, on_false=None):
        EVENTS.append(("lazy-check", on_true, on_false))
        needed = "on_true" if switch else "on_false"
        return [needed] if (on_true if switch else on_false) is None else []

    def pick(self, switch, on_true=None, on_false=None):
        return (on_true if switch else on_false,)


class SemChecked:
    """VALIDATE_INPUTS receiving `value` (its range check is skipped) and the linked types."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0}),
                             "other": ("INT,FLOAT", {"forceInput": True})}}

    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "go"
    CATEGORY = "sem"

    @classmethod
    def VALIDATE_INPUTS(cls, input_types, value):
        if value == 7.0:
            return "no sevens"
        if input_types.get("other") not in ("INT", "FLOAT"):
            return f"other must be a number, got {input_types.get('other')}"
        return True

    def go(self, value, other):
        return (value * other,)


class SemFingerprint:
    """IS_CHANGED sees constants only (the linked `value` is None); NaN means always run."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True}), "mode": (["same", "always"],)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"
    CATEGORY = "sem"

    @classmethod
    def IS_CHANGED(cls, value, mode):
        EVENTS.append(("is-changed", value, mode))
        return float("nan") if mode == "always" else mode

    def go(self, value, mode):
        EVENTS.append(("fingerprint-run", value))
        return (value,)


class SemRange:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 3, "min": 0, "max": 100})}}

    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "make"
    CATEGORY = "sem"

    def make(self, count):
        return (list(range(count)),)


class SemSum:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ("INT",)
    INPUT_IS_LIST = True
    FUNCTION = "total"
    CATEGORY = "sem"

    def total(self, values):
        return (sum(v for v in values if not isinstance(v, ExecutionBlocker)),)


class SemHidden:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "hidden": {"uid": "UNIQUE_ID", "prompt": "PROMPT", "png": "EXTRA_PNGINFO",
                                           "dyn": "DYNPROMPT"}}

    RETURN_TYPES = ()
    FUNCTION = "show"
    OUTPUT_NODE = True
    CATEGORY = "sem"

    def show(self, uid, prompt, png, dyn):
        text = [str(uid), ",".join(sorted(prompt)), repr(sorted((png or {}).keys())),
                type(dyn).__name__, str(dyn.get_node(uid)["class_type"])]
        return {"ui": {"text": text}}


class SemBlock:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",), "block": ("BOOLEAN", {"default": False}),
                             "message": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "go"
    CATEGORY = "sem"

    def go(self, value, block, message):
        return (ExecutionBlocker(message or None) if block else value,)


class SemExpand:
    """Expands into SemInt(value) -> SemAdd(+ 100), the result linking into that graph; with
    `cycle` the two expanded nodes feed each other instead."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1}), "cycle": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"
    CATEGORY = "sem"

    def go(self, value, cycle):
        g = GraphBuilder()
        start = g.node("SemInt", value=value) if not cycle else g.node("SemAdd", b=value)
        added = g.node("SemAdd", a=start.out(0), b=100)
        if cycle:
            start.set_input("a", added.out(0))
        return {"result": (added.out(0),), "expand": g.finalize()}


class SemCounter:
    """Counts its own calls on `self`: ComfyUI keeps one object per node id between prompts."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "count"
    CATEGORY = "sem"

    @classmethod
    def IS_CHANGED(cls):
        return float("nan")

    def count(self):
        self.calls = getattr(self, "calls", 0) + 1
        return (self.calls,)


class SemAsync:
    """Async function: records its start and end, so tests can see two of them overlap."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True}), "name": ("STRING", {"default": "a"})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"
    CATEGORY = "sem"

    async def go(self, value, name):
        EVENTS.append(("async-start", name))
        for _ in range(3):
            await asyncio.sleep(0.01)
        EVENTS.append(("async-end", name))
        return (value + 1,)


class SemAsyncGate:
    """Async VALIDATE_INPUTS and async check_lazy_status."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"lazy": True, "forceInput": True}), "limit": ("INT", {"default": 5})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"
    CATEGORY = "sem"

    @classmethod
    async def VALIDATE_INPUTS(cls, limit):
        await asyncio.sleep(0)
        return True if limit >= 0 else "limit must not be negative"

    async def check_lazy_status(self, value, limit):
        await asyncio.sleep(0.01)
        return ["value"] if value is None else []

    def go(self, value, limit):
        return (min(value, limit),)


class SemV3Scale(io.ComfyNode):
    """V3 schema node: scale * value, validated and fingerprinted by its own classmethods."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="SemV3Scale", display_name="Sem V3 Scale", category="sem",
                         inputs=[io.Int.Input("value", default=1, min=0, max=10),
                                 io.Float.Input("scale", default=2.0)],
                         outputs=[io.Float.Output(display_name="scaled")],
                         hidden=[io.Hidden.unique_id])

    @classmethod
    def validate_inputs(cls, scale):
        return True if scale >= 0 else "scale must not be negative"

    @classmethod
    def execute(cls, value, scale):
        EVENTS.append(("v3", cls.hidden.unique_id))
        return io.NodeOutput(value * scale, ui={"text": [f"{value}x{scale}"]})


class _Extension(ComfyExtension):
    async def get_node_list(self):
        return [SemV3Scale]


async def comfy_entrypoint():
    return _Extension()


NODE_CLASS_MAPPINGS = {c.__name__: c for c in (SemInt, SemAdd, SemShow, SemLazySwitch, SemChecked,
                                                SemFingerprint, SemRange, SemSum, SemHidden, SemBlock,
                                                SemExpand, SemCounter, SemAsync, SemAsyncGate)}
