"""ComfyUI UI workflows → API prompts (hand-written fixtures with their expected prompts) and → native."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.formats import load_any
from engine.formats.comfy_ui import is_ui_workflow, ui_to_native, ui_to_prompt, widget_values
from engine.formats.native import to_prompt
from tests.test_formats_native import make_registry

FIXTURES = Path(__file__).parent / "fixtures" / "comfy_ui"
CASES = sorted(p.name[: -len(".json")] for p in FIXTURES.glob("*.json") if not p.name.endswith(".api.json"))


@pytest.fixture(scope="module")
def reg():
    return make_registry()


def _load(name: str) -> tuple[dict, dict]:
    return (json.loads((FIXTURES / f"{name}.json").read_text()),
            json.loads((FIXTURES / f"{name}.api.json").read_text()))


def test_every_fixture_has_an_expected_prompt():
    assert len(CASES) >= 6
    for name in CASES:
        assert (FIXTURES / f"{name}.api.json").is_file(), name


@pytest.mark.parametrize("name", CASES)
def test_ui_fixture_converts_to_the_expected_api_prompt(reg, name):
    workflow, expected = _load(name)
    assert is_ui_workflow(workflow)
    warnings: list[str] = []
    assert ui_to_prompt(workflow, reg, warnings) == expected
    assert warnings == []


@pytest.mark.parametrize("name", CASES)
def test_ui_to_native_then_to_prompt_gives_the_same_prompt(reg, name):
    workflow, expected = _load(name)
    doc = ui_to_native(workflow, reg)
    assert to_prompt(doc, reg) == expected
    ids = {n["id"] for n in doc["nodes"]}
    assert not ids & {"40", "41", "20", "21", "22", "23"}  # notes and reroutes are gone
    for link in doc["links"]:
        assert link["from"][0] in ids and link["to"][0] in ids


def test_ui_to_native_keeps_layout_titles_groups_view_and_controls(reg):
    workflow, _ = _load("txt2img_basic")
    doc = ui_to_native(workflow, reg)
    ks = next(n for n in doc["nodes"] if n["id"] == "3")
    assert ks["pos"] == [863.0, 186.0] and ks["size"] == [315.0, 262.0]
    assert ks["controls"] == {"seed": "randomize"} and ks["widgets"]["seed"] == 156680208700286
    assert next(n for n in doc["nodes"] if n["id"] == "6")["title"] == "Positive"
    assert doc["groups"] == [{"title": "Sampling", "bounds": [850.0, 110.0, 600.0, 380.0], "color": "#3f789e"}]
    assert doc["view"] == {"scale": 1.1, "offset": [12.5, -40.0]}


def test_ui_to_native_modes_and_size_objects(reg):
    doc = ui_to_native(_load("muted_bypassed")[0], reg)
    modes = {n["id"]: n["mode"] for n in doc["nodes"]}
    assert modes["10"] == "bypass" and modes["13"] == "muted" and modes["3"] == "normal"
    old = ui_to_native(_load("img2img_2023_bool_control")[0], reg)
    assert next(n for n in old["nodes"] if n["id"] == "4")["size"] == [315.0, 98.0]
    assert next(n for n in old["nodes"] if n["id"] == "3")["controls"] == {"noise_seed": "fixed"}


def test_primitive_fed_widget_becomes_a_literal_not_a_converted_link(reg):
    doc = ui_to_native(_load("converted_no_value")[0], reg)
    ks = next(n for n in doc["nodes"] if n["id"] == "3")
    assert ks["widgets"]["seed"] == 640271075 and ks["converted"] == []
    assert not any(l["to"] == ["3", "seed"] for l in doc["links"])


def test_2023_boolean_control_values(reg):
    nd = reg.get("KSampler")
    node = {"widgets_values": [8566257, True, 20, 8, "euler", "normal", 1]}
    values, controls = widget_values(node, nd)
    assert values == {"seed": 8566257, "steps": 20, "cfg": 8, "sampler_name": "euler",
                      "scheduler": "normal", "denoise": 1}
    assert controls == {"seed": "randomize"}


def test_converted_widget_with_value_kept_in_old_files(reg):
    nd = reg.get("KSampler")
    node = {"inputs": [{"name": "seed", "type": "INT", "link": 5, "widget": {"name": "seed"}}],
            "widgets_values": [1, "fixed", 30, 6, "heun", "karras", 0.5]}
    values, _ = widget_values(node, nd)
    assert values["steps"] == 30 and values["seed"] == 1 and values["denoise"] == 0.5


def test_converted_widget_without_value_but_with_its_control(reg):
    nd = reg.get("KSampler")
    node = {"inputs": [{"name": "seed", "type": "INT", "link": 5, "widget": {"name": "seed"}}],
            "widgets_values": ["fixed", 30, 6, "heun", "karras", 0.5]}
    values, controls = widget_values(node, nd)
    assert values == {"steps": 30, "cfg": 6, "sampler_name": "heun", "scheduler": "karras", "denoise": 0.5}
    assert controls == {"seed": "fixed"}


def test_missing_control_value_and_surplus_values(reg):
    ks = reg.get("KSampler")
    values, controls = widget_values({"widgets_values": [3, 20, 8, "euler", "normal", 1]}, ks)
    assert values["seed"] == 3 and values["denoise"] == 1 and controls == {}
    img = reg.get("LoadImage")
    assert widget_values({"widgets_values": ["cat.png", "image"]}, img)[0] == {"image": "cat.png"}
    keyed = widget_values({"widgets_values": {"image": "dog.png"}}, img)[0]
    assert keyed == {"image": "dog.png"}


def test_unknown_node_type_is_kept_with_a_warning(reg):
    workflow, expected = _load("txt2img_basic")
    workflow = copy.deepcopy(workflow)
    workflow["nodes"].append({"id": 50, "type": "SomeCustomNode", "mode": 0, "widgets_values": [1, 2],
                              "inputs": [{"name": "image", "type": "IMAGE", "link": 50}]})
    workflow["links"].append([50, 8, 0, 50, 0, "IMAGE"])
    warnings: list[str] = []
    prompt = ui_to_prompt(workflow, reg, warnings)
    assert prompt["50"] == {"class_type": "SomeCustomNode", "inputs": {"image": ["8", 0]},
                            "_meta": {"title": "SomeCustomNode"}}
    assert len(warnings) == 1 and "SomeCustomNode" in warnings[0]


def test_link_objects_of_newer_files(reg):
    workflow, expected = _load("txt2img_basic")
    workflow = copy.deepcopy(workflow)
    workflow["links"] = [{"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3],
                          "target_slot": l[4], "type": l[5]} for l in workflow["links"]]
    assert ui_to_prompt(workflow, reg) == expected


def test_muted_reroute_target_and_dangling_reroute(reg):
    workflow, expected = _load("reroute_primitive_note")
    workflow = copy.deepcopy(workflow)
    ks = next(n for n in workflow["nodes"] if n["id"] == 3)
    ks["inputs"][0]["link"] = 99  # model now comes from the dangling reroute 23 (no input)
    workflow["links"].append([99, 23, 0, 3, 0, "*"])
    prompt = ui_to_prompt(workflow, reg)
    assert "model" not in prompt["3"]["inputs"]


def test_load_any_detects_ui_files(reg, tmp_path):
    workflow, expected = _load("muted_bypassed")
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow))
    loaded = load_any(path, registry=reg)
    assert loaded.kind == "ui" and loaded.prompt == expected and loaded.workflow == workflow


@pytest.mark.slow
def test_real_node_declarations_agree_with_the_test_registry_and_convert_the_fixtures(reg):
    """The application's nodes (imports torch: slow) declare the same widget order as COMPAT.md."""
    from nodes.registry import REGISTRY as real
    from nodes.registry import load_all

    assert load_all() == []
    for nd in reg.all():
        other = real.get(nd.class_type)
        assert other is not None, nd.class_type
        shape = [(s.name, s.widget, bool(s.opts.get("control_after_generate"))) for s in nd.inputs]
        assert shape == [(s.name, s.widget, bool(s.opts.get("control_after_generate"))) for s in other.inputs]
        assert [o.type for o in nd.outputs] == [o.type for o in other.outputs]
    for name in CASES:
        workflow, expected = _load(name)
        assert ui_to_prompt(workflow, real) == expected, name
