"""Native editor documents ↔ canonical prompts: round trips, modes, migration, load_any, layout.

``make_registry()`` declares the core nodes with ComfyUI's input order (COMPAT.md) in a fresh
``Registry()``; the other format test files import it.
"""
from __future__ import annotations

import copy
import json

import pytest

from engine.formats import FormatError, Loaded, load_any
from engine.formats.comfy_api import finish_graph, normalize_prompt
from engine.formats.layout import auto_layout
from engine.formats.native import CURRENT_VERSION, MIGRATIONS, from_prompt, migrate, to_prompt
from nodes.registry import Combo, Float, In, Int, Out, Registry, String, files, node

SAMPLERS = ["euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "lms", "ddim"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]


def make_registry() -> Registry:
    """Core nodes, ComfyUI's names, display names and input order; run() is never called here."""
    reg = Registry()

    def declare(name, category, inputs, outputs, display, output_node=False):
        cls = type(name, (), {"INPUTS": inputs, "OUTPUTS": outputs, "run": lambda self, ctx, **kw: ()})
        node(category, display_name=display, output_node=output_node, registry=reg)(cls)

    declare("CheckpointLoaderSimple", "loaders", [Combo("ckpt_name", files("checkpoints"))],
            [Out("MODEL"), Out("CLIP"), Out("VAE")], "Load Checkpoint")
    declare("CLIPTextEncode", "conditioning", [String("text", multiline=True), In("clip", "CLIP")],
            [Out("CONDITIONING")], "CLIP Text Encode (Prompt)")
    declare("CLIPSetLastLayer", "conditioning", [In("clip", "CLIP"), Int("stop_at_clip_layer", -1, -24, -1)],
            [Out("CLIP")], "CLIP Set Last Layer")
    declare("EmptyLatentImage", "latent", [Int("width", 512, 16, 16384, 8), Int("height", 512, 16, 16384, 8),
                                           Int("batch_size", 1, 1, 4096)], [Out("LATENT")], "Empty Latent Image")
    declare("KSampler", "sampling", [
        In("model", "MODEL"), Int("seed", 0, 0, 0xFFFFFFFFFFFFFFFF, control_after_generate=True),
        Int("steps", 20, 1, 10000), Float("cfg", 8.0, 0.0, 100.0, 0.1, 0.01), Combo("sampler_name", SAMPLERS),
        Combo("scheduler", SCHEDULERS), In("positive", "CONDITIONING"), In("negative", "CONDITIONING"),
        In("latent_image", "LATENT"), Float("denoise", 1.0, 0.0, 1.0, 0.01)], [Out("LATENT")], "KSampler")
    declare("KSamplerAdvanced", "sampling", [
        In("model", "MODEL"), Combo("add_noise", ["enable", "disable"]),
        Int("noise_seed", 0, 0, 0xFFFFFFFFFFFFFFFF, control_after_generate=True), Int("steps", 20, 1, 10000),
        Float("cfg", 8.0, 0.0, 100.0, 0.1, 0.01), Combo("sampler_name", SAMPLERS), Combo("scheduler", SCHEDULERS),
        In("positive", "CONDITIONING"), In("negative", "CONDITIONING"), In("latent_image", "LATENT"),
        Int("start_at_step", 0, 0, 10000), Int("end_at_step", 10000, 0, 10000),
        Combo("return_with_leftover_noise", ["disable", "enable"])], [Out("LATENT")], "KSampler (Advanced)")
    declare("VAEDecode", "latent", [In("samples", "LATENT"), In("vae", "VAE")], [Out("IMAGE")], "VAE Decode")
    declare("VAEEncode", "latent", [In("pixels", "IMAGE"), In("vae", "VAE")], [Out("LATENT")], "VAE Encode")
    declare("SaveImage", "image", [In("images", "IMAGE"), String("filename_prefix", "ComfyUI")], [],
            "Save Image", output_node=True)
    declare("LoraLoader", "loaders", [
        In("model", "MODEL"), In("clip", "CLIP"), Combo("lora_name", files("loras")),
        Float("strength_model", 1.0, -100.0, 100.0, 0.01), Float("strength_clip", 1.0, -100.0, 100.0, 0.01)],
        [Out("MODEL"), Out("CLIP")], "Load LoRA")
    declare("LoadImage", "image", [Combo("image", files("input_images"), image_upload=True)],
            [Out("IMAGE"), Out("MASK")], "Load Image")
    declare("ConditioningCombine", "conditioning",
            [In("conditioning_1", "CONDITIONING"), In("conditioning_2", "CONDITIONING")],
            [Out("CONDITIONING")], "Conditioning (Combine)")
    return reg


@pytest.fixture(scope="module")
def reg() -> Registry:
    return make_registry()


TXT2IMG = {
    "3": {"class_type": "KSampler", "_meta": {"title": "KSampler"},
          "inputs": {"seed": 7, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                     "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                     "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "_meta": {"title": "Load Checkpoint"},
          "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "_meta": {"title": "Empty Latent Image"},
          "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "_meta": {"title": "Positive"},
          "inputs": {"text": "a red cube", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "_meta": {"title": "Negative"},
          "inputs": {"text": "", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "_meta": {"title": "VAE Decode"},
          "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "_meta": {"title": "Save Image"},
          "inputs": {"filename_prefix": "test", "images": ["8", 0]}},
}


def test_from_prompt_builds_a_named_widget_document(reg):
    doc = from_prompt(TXT2IMG, reg)
    assert doc["format"] == "latentgraph" and doc["version"] == CURRENT_VERSION
    ks = next(n for n in doc["nodes"] if n["id"] == "3")
    assert ks["widgets"] == {"seed": 7, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
                             "scheduler": "normal", "denoise": 1.0}
    assert ks["controls"] == {"seed": "fixed"} and ks["converted"] == [] and ks["mode"] == "normal"
    links = {(tuple(l["from"]), tuple(l["to"])): l["type"] for l in doc["links"]}
    assert links[(("4", 0), ("3", "model"))] == "MODEL"
    assert links[(("4", 2), ("8", "vae"))] == "VAE"
    assert len(doc["links"]) == 9 and len({l["id"] for l in doc["links"]}) == 9
    json.dumps(doc)  # the document is plain JSON


def test_round_trip_prompt_doc_prompt_doc(reg):
    doc = from_prompt(TXT2IMG, reg)
    prompt = to_prompt(doc, reg)
    assert prompt == TXT2IMG
    doc2 = from_prompt(prompt, reg)
    assert doc2 == doc
    assert to_prompt(doc2, reg) == prompt


def test_converted_widget_link_overrides_value(reg):
    doc = from_prompt(TXT2IMG, reg)
    doc["nodes"].append({"id": "20", "type": "EmptyLatentImage", "title": "seed source", "pos": [0, 0],
                         "size": [300, 100], "color": None, "mode": "normal", "widgets": {}, "controls": {},
                         "converted": []})
    ks = next(n for n in doc["nodes"] if n["id"] == "3")
    ks["converted"] = ["steps"]
    doc["links"].append({"id": 99, "from": ["20", 0], "to": ["3", "steps"], "type": "INT"})
    prompt = to_prompt(doc, reg)
    assert prompt["3"]["inputs"]["steps"] == ["20", 0]
    back = from_prompt(prompt, reg)
    assert next(n for n in back["nodes"] if n["id"] == "3")["converted"] == ["steps"]


def test_muted_node_is_dropped_and_its_consumers_lose_the_input(reg):
    doc = from_prompt(TXT2IMG, reg)
    next(n for n in doc["nodes"] if n["id"] == "5")["mode"] = "muted"
    prompt = to_prompt(doc, reg)
    assert "5" not in prompt and "latent_image" not in prompt["3"]["inputs"]
    assert prompt["3"]["inputs"]["model"] == ["4", 0]


def test_bypassed_node_passes_its_matching_input_through(reg):
    prompt = copy.deepcopy(TXT2IMG)
    prompt["10"] = {"class_type": "LoraLoader", "_meta": {"title": "LoRA"},
                    "inputs": {"lora_name": "x.safetensors", "strength_model": 1.0, "strength_clip": 1.0,
                               "model": ["4", 0], "clip": ["4", 1]}}
    prompt["3"]["inputs"]["model"] = ["10", 0]
    prompt["6"]["inputs"]["clip"] = ["10", 1]
    prompt["7"]["inputs"]["clip"] = ["10", 1]
    doc = from_prompt(prompt, reg)
    assert to_prompt(doc, reg) == prompt
    next(n for n in doc["nodes"] if n["id"] == "10")["mode"] = "bypass"
    assert to_prompt(doc, reg) == TXT2IMG


def test_bypass_without_a_matching_input_drops_the_link_and_chains_resolve(reg):
    nodes = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64}, "mode": "normal"},
        "2": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0]}, "mode": "bypass"},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}, "mode": "normal"},
        "4": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0],
                                                              "conditioning_2": ["7", 0]}, "mode": "bypass"},
        "5": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["4", 0]}, "mode": "bypass"},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a"}, "mode": "normal"},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "b"}, "mode": "normal"},
        "8": {"class_type": "KSampler", "inputs": {"positive": ["5", 0]}, "mode": "normal"},
    }
    out = finish_graph(nodes, reg)
    assert out["3"]["inputs"] == {}  # IMAGE output, no IMAGE input on VAEDecode: link removed
    assert out["8"]["inputs"] == {"positive": ["6", 0]}  # two bypassed combines in a chain
    assert set(out) == {"1", "3", "6", "7", "8"}


def test_migration_v0_positional_widgets_to_v1(reg):
    v0 = {"format": "latentgraph", "version": 0,
          "nodes": [{"id": 4, "type": "CheckpointLoaderSimple", "pos": [10, 20], "size": [300, 98], "mode": 0,
                     "widgets_values": ["tiny_sd1.safetensors"]},
                    {"id": 5, "type": "EmptyLatentImage", "pos": [10, 200], "size": [300, 106], "mode": 2,
                     "widgets_values": [64, 96, 2]},
                    {"id": 3, "type": "KSampler", "title": "Sampler", "pos": [400, 20], "size": [300, 260],
                     "mode": 4, "widgets_values": [5, 12, 6.5, "heun", "karras", 0.75]}],
          "links": [[1, 4, 0, 3, "model", "MODEL"], [2, 5, 0, 3, "latent_image", "LATENT"],
                    [3, 5, 0, 3, "steps", "INT"]],
          "groups": [{"title": "All", "bounding": [0, 0, 800, 400], "color": "#335"}]}
    doc = migrate(v0, reg)
    assert doc["version"] == 1 and 0 in MIGRATIONS
    ks = next(n for n in doc["nodes"] if n["id"] == "3")
    assert ks["widgets"] == {"seed": 5, "steps": 12, "cfg": 6.5, "sampler_name": "heun",
                             "scheduler": "karras", "denoise": 0.75}
    assert ks["mode"] == "bypass" and ks["title"] == "Sampler" and ks["converted"] == ["steps"]
    assert next(n for n in doc["nodes"] if n["id"] == "5")["mode"] == "muted"
    assert next(n for n in doc["nodes"] if n["id"] == "4")["title"] == "Load Checkpoint"
    assert doc["links"][0] == {"id": 1, "from": ["4", 0], "to": ["3", "model"], "type": "MODEL"}
    assert doc["groups"] == [{"title": "All", "bounds": [0, 0, 800, 400], "color": "#335"}]
    assert v0["version"] == 0  # the input is not modified
    assert migrate(doc, reg) == doc  # already current: unchanged
    loaded = load_any(v0, registry=reg)
    assert loaded.kind == "native" and loaded.workflow["version"] == 1


def test_migrate_refuses_future_and_foreign_documents(reg):
    with pytest.raises(FormatError, match="newer"):
        migrate({"format": "latentgraph", "version": 99, "nodes": []}, reg)
    with pytest.raises(FormatError):
        migrate({"nodes": []}, reg)
    with pytest.raises(FormatError, match="unknown class"):
        migrate({"format": "latentgraph", "version": 0,
                 "nodes": [{"id": 1, "type": "Nope", "widgets_values": [1]}], "links": []}, reg)


def test_normalize_prompt_string_ids_and_links():
    raw = {3: {"class_type": "KSampler", "inputs": {"model": [4, 0], "seed": 5, "choose file to upload": "image"}},
           "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a"}}}
    out = normalize_prompt(raw)
    assert out == {"3": {"class_type": "KSampler",
                         "inputs": {"model": ["4", 0], "seed": 5, "choose file to upload": "image"}},
                   "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a"}}}
    with pytest.raises(FormatError):
        normalize_prompt({"1": {"inputs": {}}})


def test_load_any_api_and_native_kinds(reg, tmp_path):
    api = load_any(TXT2IMG, registry=reg)
    assert isinstance(api, Loaded) and api.kind == "api" and api.prompt == TXT2IMG and api.workflow is None
    body = {"prompt": TXT2IMG, "client_id": "x", "extra_data": {"extra_pnginfo": {"workflow": {"w": 1}}}}
    wrapped = load_any(json.dumps(body), registry=reg)
    assert wrapped.kind == "api" and wrapped.workflow == {"w": 1}
    doc = from_prompt(TXT2IMG, reg)
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(doc))
    nat = load_any(path, registry=reg)
    assert nat.kind == "native" and nat.prompt == TXT2IMG and nat.workflow == doc
    assert load_any(str(path), registry=reg).prompt == TXT2IMG
    assert load_any(path.read_bytes(), registry=reg).kind == "native"
    with pytest.raises(FormatError):
        load_any({"what": "ever"}, registry=reg)
    with pytest.raises(FormatError):
        load_any(tmp_path / "missing.json", registry=reg)


def test_auto_layout_places_columns_left_to_right_without_overlap():
    places = auto_layout(TXT2IMG)
    x = {nid: p["pos"][0] for nid, p in places.items()}
    assert x["4"] < x["6"] < x["3"] < x["8"] < x["9"]
    assert x["5"] == x["4"]  # both are sources
    boxes = [(p["pos"][0], p["pos"][1], p["size"][0], p["size"][1]) for p in places.values()]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
            assert not overlap


# -- property: any well-formed prompt survives prompt → document → prompt --------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_REG = make_registry()
_CLASSES = sorted(nd.class_type for nd in _REG.all())


def _literal(spec):
    """A strategy for a widget value of the declared type."""
    if spec.type == "INT":
        return st.integers(-(2 ** 40), 2 ** 40)
    if spec.type == "FLOAT":
        return st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    if spec.type == "BOOLEAN":
        return st.booleans()
    if spec.type == "COMBO" and isinstance(spec.options, list) and spec.options:
        return st.sampled_from(spec.options)
    return st.text(max_size=12)


@st.composite
def random_prompts(draw):
    """Graphs of the test registry's nodes; sockets link to earlier nodes of the right output type."""
    prompt: dict = {}
    produced: dict[str, list] = {}
    for i in range(draw(st.integers(1, 7))):
        nd = _REG.get(draw(st.sampled_from(_CLASSES)))
        nid = str(draw(st.integers(1, 5)) + 10 * i)
        inputs = {}
        for spec in nd.inputs:
            if spec.widget:
                if draw(st.integers(0, 5)):  # sometimes left out (validation fills defaults)
                    inputs[spec.name] = draw(_literal(spec))
            elif produced.get(spec.type) and draw(st.integers(0, 4)):
                inputs[spec.name] = list(draw(st.sampled_from(produced[spec.type])))
        title = draw(st.text(min_size=1, max_size=10))
        prompt[nid] = {"class_type": nd.class_type, "inputs": inputs, "_meta": {"title": title}}
        for slot, out in enumerate(nd.outputs):
            produced.setdefault(out.type, []).append((nid, slot))
    return prompt


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_prompts())
def test_property_prompt_document_prompt_is_identity(prompt):
    doc = from_prompt(prompt, _REG)
    assert to_prompt(json.loads(json.dumps(doc)), _REG) == prompt
    assert from_prompt(to_prompt(doc, _REG), _REG) == doc


def test_malformed_native_nodes_are_format_errors(reg):
    with pytest.raises(FormatError, match="id and a type"):
        to_prompt({"format": "latentgraph", "version": 1, "nodes": [{"id": "1"}], "links": []}, reg)
    with pytest.raises(FormatError, match="mode"):
        to_prompt({"format": "latentgraph", "version": 1, "links": [],
                   "nodes": [{"id": "1", "type": "VAEDecode", "mode": "sleeping"}]}, reg)
