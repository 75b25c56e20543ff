"""ComfyUI UI workflow → native document → ComfyUI UI workflow loses nothing (issue #21).

The corpus in tests/fixtures/comfy_roundtrip is our own: Notes and MarkdownNotes, chained Reroutes,
PrimitiveNodes with control modes (numbers, a combo with its filter, a string), groups, colours,
bypassed/muted/collapsed nodes, socket labels, a newer and an older frontend's layout. The
comparison is structural: everything the frontend saved, with only the order of link-id lists and
the recomputed execution ``order`` left out.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.formats.comfy_ui import ui_to_native, ui_to_prompt
from engine.formats.comfy_ui_export import native_to_ui
from engine.formats.native import to_prompt
from tests.test_formats_native import make_registry

CORPUS = Path(__file__).parent / "fixtures" / "comfy_roundtrip"
CASES = sorted(p.stem for p in CORPUS.glob("*.json"))


@pytest.fixture(scope="module")
def reg():
    return make_registry()


def comfy_structure(workflow: dict) -> dict:
    """A UI workflow with what ComfyUI ignores or recomputes on load normalised away."""
    w = copy.deepcopy(workflow)
    for node in w["nodes"]:
        node.pop("order", None)
        node.setdefault("widgets_values", []) if node["type"] != "Reroute" else None
        for out in node.get("outputs") or []:
            out["links"] = sorted(out["links"]) if out.get("links") else out.get("links")
    w["nodes"] = sorted(w["nodes"], key=lambda n: str(n["id"]))
    w["links"] = sorted(w["links"])
    return w


def load(name: str) -> dict:
    return json.loads((CORPUS / f"{name}.json").read_text())


def test_corpus_covers_every_kept_feature():
    text = "".join((CORPUS / f"{n}.json").read_text() for n in CASES)
    for needle in ('"Note"', '"MarkdownNote"', '"Reroute"', '"PrimitiveNode"', '"increment"', '"decrement"',
                   '"collapsed": true', '"mode": 2', '"mode": 4', '"bgcolor"', '"groups"', '"label"'):
        assert needle in text, needle


@pytest.mark.parametrize("name", CASES)
def test_ui_workflow_round_trips_through_the_native_document(reg, name):
    original = load(name)
    doc = ui_to_native(original, reg)
    exported = native_to_ui(json.loads(json.dumps(doc)), reg)   # through JSON, as the editor sends it
    assert comfy_structure(exported) == comfy_structure(original)
    again = native_to_ui(ui_to_native(exported, reg), reg)
    assert comfy_structure(again) == comfy_structure(original)


@pytest.mark.parametrize("name", CASES)
def test_native_document_queues_the_prompt_comfyui_would(reg, name):
    original = load(name)
    expected = ui_to_prompt(original, reg)
    assert to_prompt(ui_to_native(original, reg), reg) == expected
    assert ui_to_prompt(native_to_ui(ui_to_native(original, reg), reg), reg) == expected
    assert not {n["class_type"] for n in expected.values()} & {"Reroute", "Note", "MarkdownNote", "PrimitiveNode"}


def test_reroute_chain_and_primitives_resolve_in_the_prompt(reg):
    prompt = to_prompt(ui_to_native(load("editor_nodes_modern"), reg), reg)
    ks = prompt["3"]["inputs"]
    assert ks["model"] == ["4", 0]               # two reroutes and a bypassed LoRA resolved
    assert ks["seed"] == 424242 and ks["sampler_name"] == "dpmpp_2m"
    assert prompt["6"]["inputs"]["text"] == "a lighthouse at dusk, oil painting"
    assert prompt["8"]["inputs"]["vae"] == ["4", 2]
    assert "13" not in prompt and "14" not in prompt     # muted, bypassed


def test_native_document_keeps_frontend_nodes_as_nodes(reg):
    doc = ui_to_native(load("editor_nodes_modern"), reg)
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert nodes["20"]["type"] == "PrimitiveNode" and nodes["20"]["widgets"] == {"value": 424242}
    assert nodes["20"]["controls"] == {"value": "increment"}
    assert nodes["22"]["widgets"] == {"value": "dpmpp_2m", "control_filter_list": ""}
    assert nodes["30"]["widgets"] == {"text": "Seed increments after every run.\nThe LoRA is bypassed on purpose."}
    assert nodes["7"]["flags"] == {"collapsed": True} and nodes["14"]["mode"] == "bypass"
    chain = [l for l in doc["links"] if l["to"][0] in ("10", "11")]
    assert sorted(l["to"][1] for l in chain) == ["input", "input"]


def test_an_edit_in_the_editor_is_exported(reg):
    doc = ui_to_native(load("editor_nodes_legacy"), reg)
    ks = next(n for n in doc["nodes"] if n["id"] == "9")
    ks["widgets"]["cfg"] = 4.5
    prim = next(n for n in doc["nodes"] if n["id"] == "8")
    prim["widgets"]["value"] = 30
    ui = native_to_ui(doc, reg)
    ks_ui = next(n for n in ui["nodes"] if n["id"] == 9)
    assert ks_ui["widgets_values"] == [8566257, "randomize", 14, 4.5, "euler", "normal", 1]
    assert next(n for n in ui["nodes"] if n["id"] == 8)["widgets_values"] == [30, "decrement"]
    assert ui_to_prompt(ui, reg)["9"]["inputs"]["steps"] == 30


def test_frontend_nodes_made_in_the_editor_export_like_comfyui_writes_them(reg):
    doc = {"format": "latentgraph", "version": 1, "nodes": [
        {"id": "1", "type": "Note", "title": "Note", "pos": [0, 0], "size": [200, 80], "mode": "normal",
         "widgets": {"text": "hello"}, "controls": {}, "converted": []},
        {"id": "2", "type": "PrimitiveNode", "title": "Primitive", "pos": [0, 100], "size": [200, 80], "mode": "normal",
         "widgets": {"value": 5}, "controls": {"value": "increment"}, "converted": []},
        {"id": "3", "type": "Reroute", "title": "Reroute", "pos": [0, 200], "size": [75, 26], "mode": "normal",
         "widgets": {}, "controls": {}, "converted": []},
        {"id": "4", "type": "EmptyLatentImage", "title": "Empty Latent Image", "pos": [300, 0], "size": [300, 100],
         "mode": "normal", "widgets": {"width": 64, "height": 64, "batch_size": 1}, "controls": {}, "converted": ["batch_size"]}],
        "links": [{"id": 1, "from": ["2", 0], "to": ["3", "input"], "type": "INT"},
                  {"id": 2, "from": ["3", 0], "to": ["4", "batch_size"], "type": "INT"}]}
    ui = native_to_ui(doc, reg)
    by_id = {n["id"]: n for n in ui["nodes"]}
    assert by_id[1]["widgets_values"] == ["hello"] and "title" not in by_id[1]
    assert by_id[2]["widgets_values"] == [5, "increment"]
    assert by_id[2]["outputs"][0]["type"] == "INT" and by_id[2]["outputs"][0]["links"] == [1]
    assert by_id[3]["inputs"] == [{"name": "", "type": "*", "link": 1}]
    assert by_id[3]["outputs"][0]["links"] == [2]
    assert ui_to_prompt(ui, reg)["4"]["inputs"]["batch_size"] == 5
    assert to_prompt(doc, reg)["4"]["inputs"]["batch_size"] == 5


def test_a_schema_1_workflow_exports_in_the_list_form_it_is_written_in(reg):
    original = load("editor_nodes_legacy")
    v1 = {**original, "version": 1, "state": {"lastNodeId": 12, "lastLinkId": 13, "lastGroupId": 1},
          "links": [{"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3], "target_slot": l[4],
                     "type": l[5]} for l in original["links"]]}
    exported = native_to_ui(ui_to_native(v1, reg), reg)
    assert exported["version"] == 0.4 and "state" not in exported
    assert comfy_structure(exported) == comfy_structure(original)
