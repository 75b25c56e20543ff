"""Type names and the abstract V1 node class that typed packs annotate with (comfy.comfy_types)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, Literal, Optional, TypedDict

from typing_extensions import NotRequired


class StrEnum(str, Enum):
    """An Enum whose members are their string values (str() gives the value, not Class.NAME)."""

    def __str__(self) -> str:
        return str(self.value)


def _types_overlap(a: str, b: str) -> bool:
    """ComfyUI's socket rule: "*" matches anything; comma lists match when one contains the other."""
    if a == "*" or b == "*":
        return True
    left, right = set(a.split(",")), set(b.split(","))
    return left <= right or right <= left


class IO(StrEnum):
    """Socket type names; `!=` follows the socket-matching rule so IO.ANY equals every type."""

    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    LORA_MODEL = "LORA_MODEL"
    LOSS_MAP = "LOSS_MAP"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"
    VIDEO = "VIDEO"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"

    def __ne__(self, value: object) -> bool:
        return not (isinstance(value, str) and _types_overlap(str(self.value), value))

    __hash__ = str.__hash__


class InputTypeOptions(TypedDict, total=False):
    """Options of one INPUT_TYPES entry (the dict after the type)."""

    default: Any
    defaultInput: bool
    forceInput: bool
    lazy: bool
    rawLink: bool
    tooltip: str
    min: float
    max: float
    step: float
    round: float
    display: str
    multiline: bool
    placeholder: str
    dynamicPrompts: bool
    image_upload: bool
    label_on: str
    label_off: str
    control_after_generate: bool


class HiddenInputTypeDict(TypedDict):
    node_id: NotRequired[Literal["UNIQUE_ID"]]
    unique_id: NotRequired[Literal["UNIQUE_ID"]]
    prompt: NotRequired[Literal["PROMPT"]]
    extra_pnginfo: NotRequired[Literal["EXTRA_PNGINFO"]]
    dynprompt: NotRequired[Literal["DYNPROMPT"]]


class InputTypeDict(TypedDict):
    """What INPUT_TYPES returns: required / optional / hidden sections."""

    required: NotRequired[dict[str, tuple]]
    optional: NotRequired[dict[str, tuple]]
    hidden: NotRequired[HiddenInputTypeDict]


class ComfyNodeABC(ABC):
    """Base class typed V1 nodes derive from; only INPUT_TYPES is required of a subclass."""

    DESCRIPTION: str
    CATEGORY: str
    EXPERIMENTAL: bool
    DEPRECATED: bool
    API_NODE: Optional[bool]
    OUTPUT_NODE: bool
    INPUT_IS_LIST: bool
    OUTPUT_IS_LIST: tuple
    RETURN_TYPES: tuple
    RETURN_NAMES: tuple
    OUTPUT_TOOLTIPS: tuple
    FUNCTION: str

    @classmethod
    @abstractmethod
    def INPUT_TYPES(cls) -> InputTypeDict:  # noqa: N802 - ComfyUI's name
        return {"required": {}}


class CheckLazyMixin:
    """check_lazy_status asking for every lazy input that has not been evaluated yet (None)."""

    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]


class FileLocator(TypedDict):
    """Where a result file is: {filename, subfolder, type}."""

    filename: str
    subfolder: str
    type: Literal["input", "output", "temp"]
