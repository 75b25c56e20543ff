"""The node half of the contract test: one parametrized suite over every registered built-in node.

In the manner of diffusers' shared pipeline tests, the list of nodes comes from the registry, so a
new node is tested here the moment it is declared: its `run` signature against its declaration,
its /object_info entry parsed back into the same declaration, and (unless it needs a model or a
file, listed below with the reason) a run on tiny inputs whose results have the declared types.
"""
from __future__ import annotations

import inspect

import pytest
import torch

from engine.cache import ModelCache
from engine.context import NodeContext
from engine.nodedef import InputSpec, NodeDef
from engine.paths import Paths
from ldm.custom_sampling import RandomNoise, Sampler
from ldm.schedules import karras_sigmas
from nodes.plugins import load_all
from nodes.registry import REGISTRY, signature_problem

load_all()
BUILTIN = sorted(nd.class_type for nd in REGISTRY.all() if nd.python_module == "nodes")

# Nodes a run test cannot feed from tiny tensors; each has its own model/file tests elsewhere.
NEEDS_MODEL = {
    # a MODEL / CLIP / VAE / UPSCALE_MODEL input (tests/test_nodes_models*.py use tiny checkpoints)
    "CLIPTextEncode", "CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner", "CLIPSetLastLayer",
    "InpaintModelConditioning", "KSampler", "KSamplerAdvanced", "LoraLoader", "LoraLoaderModelOnly",
    "VAEDecode", "VAEDecodeTiled", "VAEEncode", "VAEEncodeTiled", "VAEEncodeForInpaint",
    "ImageUpscaleWithModel",
    "BasicScheduler", "SDTurboScheduler", "BetaSamplingScheduler", "SamplerCustom", "CFGGuider", "BasicGuider",
    "DualCFGGuider", "AddNoise", "SamplingPercentToSigma",
    # a GUIDER wraps a model (tests/test_nodes_custom_sampling.py runs these on tiny checkpoints)
    "SamplerCustomAdvanced",
    "ClassEmbed",  # a class-conditional LDM's embedder (tests/test_ldm_zoo.py)
    "KSamplerPyramid",  # tests/test_ldm_pyramid.py
}
NEEDS_FILE = {
    # a combo of files under models/ or input/ (tests/test_nodes_models*.py, test_nodes_pixels.py)
    "CheckpointLoaderSimple", "CheckpointLoader", "VAELoader", "UpscaleModelLoader", "LoadImage", "LoadImageMask",
    "UNETLoader", "CLIPLoader", "DualCLIPLoader",  # tests/test_nodes_split_loaders.py
    "LoadLatent",  # tests/test_nodes_latent_utility.py
}
MODEL_TYPES = {"MODEL", "CLIP", "VAE", "UPSCALE_MODEL"}


def _tiny(kind: str) -> object:
    """The smallest honest value of a socket type (ARCHITECTURE.md §1)."""
    gen = torch.Generator().manual_seed(0)
    if kind == "IMAGE":
        return torch.rand(1, 16, 16, 3, generator=gen)
    if kind == "MASK":
        return (torch.rand(1, 16, 16, generator=gen) > 0.5).float()
    if kind == "LATENT":
        return {"samples": torch.randn(1, 4, 8, 8, generator=gen)}
    if kind == "CONDITIONING":
        return [[torch.randn(1, 77, 32, generator=gen), {"pooled_output": torch.randn(1, 32, generator=gen)}]]
    if kind == "SIGMAS":
        return karras_sigmas(4, 0.0291675, 14.614642)
    if kind == "SAMPLER":
        return Sampler("euler")
    if kind == "NOISE":
        return RandomNoise(0)
    if kind == "*":  # any value (PreviewAny)
        return {"a": [1, 2.5, "text"]}
    raise LookupError(f"no tiny value for {kind}: list the node in NEEDS_MODEL / NEEDS_FILE with the reason")


def _value(spec: InputSpec) -> object:
    if not spec.widget:
        return _tiny(spec.type)
    if spec.type == "COMBO":
        return spec.default if spec.default is not None else spec.choices(None)[0]
    if spec.default is None:  # a widget without default (the primitives): the frontend's zero value
        return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[spec.type]
    return spec.default


def _check_type(kind: str, value: object) -> None:
    """The value flowing out of a socket of `kind` has the documented Python shape."""
    if kind == "IMAGE":
        assert isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[-1] in (1, 3, 4)
        assert value.dtype == torch.float32 and float(value.min()) >= 0 and float(value.max()) <= 1
    elif kind == "MASK":
        assert isinstance(value, torch.Tensor) and value.ndim in (2, 3) and value.dtype == torch.float32
    elif kind == "LATENT":
        assert isinstance(value, dict) and isinstance(value["samples"], torch.Tensor) and value["samples"].ndim == 4
    elif kind == "CONDITIONING":
        assert isinstance(value, list) and value
        assert all(isinstance(c, torch.Tensor) and isinstance(o, dict) for c, o in value)
    elif kind == "SIGMAS":
        assert isinstance(value, torch.Tensor) and value.ndim == 1 and value.dtype == torch.float32
    elif kind == "SAMPLER":
        assert isinstance(value, Sampler)
    elif kind == "NOISE":
        noise = value.generate({"samples": torch.zeros(1, 4, 8, 8)})
        assert isinstance(noise, torch.Tensor) and noise.shape == (1, 4, 8, 8)
    elif kind in ("INT", "FLOAT", "STRING", "BOOLEAN"):
        assert isinstance(value, {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}[kind])
    else:
        raise AssertionError(f"no type check for {kind}")


def test_the_explicit_sets_name_registered_nodes_only():
    assert (NEEDS_MODEL | NEEDS_FILE) <= set(BUILTIN)
    takes_a_model = {nd.class_type for nd in REGISTRY.all() if nd.python_module == "nodes"
                     and any(s.type in MODEL_TYPES for s in nd.inputs)}
    assert takes_a_model <= NEEDS_MODEL, "a node taking a model input must be listed in NEEDS_MODEL"


@pytest.mark.parametrize("class_type", BUILTIN)
def test_run_signature_matches_the_declaration(class_type):
    nd = REGISTRY.get(class_type)
    assert signature_problem(nd) is None
    params = list(inspect.signature(nd.cls.run).parameters)[2:]
    if "inputs" not in params:  # built-ins name every input, in declaration order
        assert params == [s.name for s in nd.inputs]


@pytest.mark.parametrize("class_type", BUILTIN)
def test_object_info_round_trips_to_the_declaration(class_type, tmp_path):
    nd = REGISTRY.get(class_type)
    paths = Paths.from_args(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u")
    info = nd.object_info(paths)
    order = info["input_order"]
    parsed = [InputSpec.from_info(name, info["input"][section][name], section == "optional")
              for section in ("required", "optional") for name in order.get(section, [])]
    declared = sorted(nd.inputs, key=lambda s: s.optional)  # object_info lists required first
    assert [(p.name, p.type, p.widget, p.optional) for p in parsed] == \
           [(s.name, s.type, s.widget, s.optional) for s in declared]
    for got, want in zip(parsed, declared):
        assert got.default == want.default and got.tooltip == want.tooltip, want.name
        assert got.opts == {k: v for k, v in want.opts.items() if v is not None}, want.name
        assert got.choices(paths) == want.choices(paths), want.name
    outputs = list(zip(info["output"], info["output_name"], info["output_is_list"], info["output_tooltips"]))
    assert outputs == [(o.type, o.label, o.is_list, o.tooltip) for o in nd.outputs]
    assert (info["name"], info["display_name"], info["category"], info["output_node"]) == \
           (nd.class_type, nd.display_name, nd.category, nd.output_node)


RUNNABLE = [c for c in BUILTIN if c not in NEEDS_MODEL | NEEDS_FILE]


@pytest.mark.parametrize("class_type", RUNNABLE)
def test_node_runs_on_tiny_inputs_and_returns_the_declared_types(class_type, tmp_path):
    nd: NodeDef = REGISTRY.get(class_type)
    paths = Paths.from_args(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u")
    paths.ensure_dirs()
    events: list[str] = []
    ctx = NodeContext(node_id="1", prompt_id="p", prompt={}, paths=paths, models=ModelCache(),
                      class_type=class_type, emit=lambda event: events.append(event.type))
    inputs = {spec.name: _value(spec) for spec in nd.inputs if not spec.optional}
    values, ui = nd.call(ctx, inputs)
    assert len(values) == len(nd.outputs)
    for out, value in zip(nd.outputs, values):
        for item in (value if out.is_list else [value]):
            _check_type(out.type, item)
    if nd.output_node:  # an output node shows something: a UI result or an image sent to the client
        assert ui is not None or "image" in events
