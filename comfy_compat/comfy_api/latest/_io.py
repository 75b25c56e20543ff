"""`comfy_api.latest.io`: ComfyUI's V3 node schema (ComfyNode, Schema, typed Inputs/Outputs,
Hidden, NodeOutput), as plain declarations that nodes/plugin_v3.py turns into NodeDefs."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# V3 keyword -> V1 INPUT_TYPES option name (what /object_info and validation read)
_OPTION_NAMES = {"dynamic_prompts": "dynamicPrompts", "display_mode": "display", "force_input": "forceInput",
                 "raw_link": "rawLink", "image_upload": "image_upload"}


class Input:
    """One declared input of a V3 node; `io_type` comes from the type it belongs to."""

    io_type = "*"

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                 tooltip: str | None = None, lazy: bool | None = None, options: Any = None,
                 extra_dict: dict | None = None, **opts: Any) -> None:
        self.id, self.display_name, self.optional, self.tooltip, self.lazy = id, display_name, optional, tooltip, lazy
        self.options = options
        self.opts = {_OPTION_NAMES.get(k, k): (v.value if isinstance(v, Enum) else v)
                     for k, v in opts.items() if v is not None}
        self.opts.update(extra_dict or {})

    def v1_entry(self) -> tuple:
        """The `(TYPE | [choices], {options})` entry of ComfyUI's INPUT_TYPES."""
        opts = dict(self.opts)
        for key in ("tooltip", "lazy", "display_name"):
            if getattr(self, key) is not None:
                opts[key] = getattr(self, key)
        kind = list(self.options) if self.options is not None else self.io_type
        return (kind, opts)


class Output:
    """One declared output of a V3 node."""

    io_type = "*"

    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False) -> None:
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _io_type(name: str, io_type: str) -> type:
    inp = type("Input", (Input,), {"io_type": io_type, "__qualname__": f"{name}.Input"})
    out = type("Output", (Output,), {"io_type": io_type, "__qualname__": f"{name}.Output"})
    return type(name, (), {"io_type": io_type, "Input": inp, "Output": out})


def Custom(io_type: str) -> type:
    """A socket type of the plugin's own (`io.Custom("MY_TYPE")`)."""
    return _io_type(io_type, io_type)


Boolean, Int, Float, String = (_io_type("Boolean", "BOOLEAN"), _io_type("Int", "INT"),
                               _io_type("Float", "FLOAT"), _io_type("String", "STRING"))
Combo = _io_type("Combo", "COMBO")
AnyType = _io_type("AnyType", "*")
(Image, Mask, Latent, Conditioning, Model, Clip, Vae, Sampler, Sigmas, Noise, Guider, UpscaleModel,
 ControlNet, ClipVision, ClipVisionOutput, StyleModel, Gligen, FlowControl, Accumulation, Audio, Video) = (
    _io_type(n, t) for n, t in (
        ("Image", "IMAGE"), ("Mask", "MASK"), ("Latent", "LATENT"), ("Conditioning", "CONDITIONING"),
        ("Model", "MODEL"), ("Clip", "CLIP"), ("Vae", "VAE"), ("Sampler", "SAMPLER"), ("Sigmas", "SIGMAS"),
        ("Noise", "NOISE"), ("Guider", "GUIDER"), ("UpscaleModel", "UPSCALE_MODEL"),
        ("ControlNet", "CONTROL_NET"), ("ClipVision", "CLIP_VISION"), ("ClipVisionOutput", "CLIP_VISION_OUTPUT"),
        ("StyleModel", "STYLE_MODEL"), ("Gligen", "GLIGEN"), ("FlowControl", "FLOW_CONTROL"),
        ("Accumulation", "ACCUMULATION"), ("Audio", "AUDIO"), ("Video", "VIDEO")))


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class Hidden(str, Enum):
    """Hidden inputs a V3 node may ask for (read as `cls.hidden.<name>` in execute)."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """The hidden values of one call; unknown names read as None."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, key: str) -> Any:
        return None


@dataclass
class Schema:
    """A V3 node's declaration (the fields plugins set; unknown extras are accepted and ignored)."""

    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False
    search_aliases: list = field(default_factory=list)


class NodeOutput:
    """What `execute` returns: the output values, optional `ui`, `expand` graph or a block message."""

    def __init__(self, *args: Any, ui: Any = None, expand: dict | None = None,
                 block_execution: str | None = None) -> None:
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self) -> tuple | None:
        return self.args if self.args else None

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


class ComfyNode:
    """Base class of V3 nodes: classmethods define_schema() and execute(**inputs); optional
    validate_inputs, fingerprint_inputs, check_lazy_status. `cls.hidden` holds hidden values."""

    hidden: HiddenHolder = HiddenHolder()

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs: Any) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        return cls.define_schema()

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """The V1 view of the schema (for code that introspects nodes the V1 way)."""
        schema = cls.define_schema()
        required = {i.id: i.v1_entry() for i in schema.inputs if not i.optional}
        optional = {i.id: i.v1_entry() for i in schema.inputs if i.optional}
        hidden = {h.name: h.value for h in schema.hidden}
        return {"required": required, **({"optional": optional} if optional else {}),
                **({"hidden": hidden} if hidden else {})}


def overrides(cls: type, name: str) -> bool:
    """Whether a V3 class defines `name` itself (not the ComfyNode default)."""
    return getattr(cls, name).__func__ is not getattr(ComfyNode, name).__func__
