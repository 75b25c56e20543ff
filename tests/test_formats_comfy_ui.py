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
    if name == "reroute_primitive_note":  # the editor keeps ComfyUI's frontend-only nodes
        assert ids >= {"40", "41", "20", "21", "22", "23", "30"}
    for link in doc["links"]:
        assert link["from"][0] in ids and link["to"][0] in ids


def test_ui_to_native_keeps_layout_titles_groups_view_and_controls(reg):
    workflow, _ = _load("txt2img_basic")
    doc = ui_to_native(workflow, reg)
    ks = next(n for n in doc["nodes"] if n["id"] == "3")
    assert ks["pos"] == [863.0, 186.0] and ks["size"] == [315.0, 262.0]
    assert ks["controls"] == {"seed": "randomize"} and ks["widgets"]["seed"] == 156680208700286
    assert next(n for n in doc["nodes"] if n["id"] == "6")["title"] == "Positive"
    assert doc["groups"] == [{"title": "Sampling", "bounds": [850.0, 110.0, 600.0, 380.0], "color": "#3f789e",
                              "ui": {"font_size": 24, "flags": {}}}]
    assert doc["view"] == {"scale": 1.1, "offset": [12.5, -40.0]}


def test_ui_to_native_modes_and_size_objects(reg):
    doc = ui_to_native(_load("muted_bypassed")[0], reg)
    modes = {n["id"]: n["mode"] for n in doc["nodes"]}
    assert modes["10"] == "bypass" and modes["13"] == "muted" and modes["3"] == "normal"
    old = ui_to_native(_load("img2img_2023_bool_control")[0], reg)
    assert next(n for n in old["nodes"] if n["id"] == "4")["size"] == [315.0, 98.0]
    assert next(n for n in old["nodes"] if n["id"] == "3")["controls"] == {"noise_seed": "fixed"}


def test_primitive_fed_widget_stays_linked_to_its_primitive_and_keeps_the_value(reg):
    workflow = _load("converted_no_value")[0]
    doc = ui_to_native(workflow, reg)
    ks = next(n for n in doc["nodes"] if n["id"] == "3")
    assert ks["widgets"]["seed"] == 640271075 and ks["converted"] == ["seed"]
    (link,) = [l for l in doc["links"] if l["to"] == ["3", "seed"]]
    assert next(n for n in doc["nodes"] if n["id"] == link["from"][0])["type"] == "PrimitiveNode"
    assert to_prompt(doc, reg)["3"]["inputs"]["seed"] == 640271075


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
    from nodes.plugins import load_all

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


# -- property: a prompt encoded as a UI workflow (any frontend style) converts back to itself ------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.test_formats_native import _REG, random_prompts  # noqa: E402

STYLES = ["full", "bool2023", "converted_no_value", "converted_keep_control", "widget_sockets"]


def encode_ui(prompt: dict, style: str, fed: set) -> dict:
    """A reference UI encoder for tests: positional widgets in the given frontend style; widgets named
    in ``fed`` ((node, input) pairs) are converted to sockets fed by one PrimitiveNode each."""
    nodes, links = [], []
    prim_id = 1000
    for nid, node in prompt.items():
        nd = _REG.get(node["class_type"])
        ui_inputs, values = [], []
        for spec in nd.inputs:
            value = node["inputs"].get(spec.name)
            if not spec.widget:
                link = None
                if value is not None:
                    link = len(links) + 1
                    links.append([link, int(value[0]), value[1], int(nid), len(ui_inputs), spec.type])
                ui_inputs.append({"name": spec.name, "type": spec.type, "link": link})
                continue
            ctl = spec.opts.get("control_after_generate")
            is_fed = (nid, spec.name) in fed
            if is_fed:
                prim_id += 1
                link = len(links) + 1
                links.append([link, prim_id, 0, int(nid), len(ui_inputs), spec.type])
                nodes.append({"id": prim_id, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                              "outputs": [{"name": spec.type, "type": spec.type, "links": [link],
                                           "widget": {"name": spec.name}}],
                              "widgets_values": [value, "fixed"] if ctl else [value]})
                ui_inputs.append({"name": spec.name, "type": spec.type, "link": link, "widget": {"name": spec.name}})
            elif style == "widget_sockets":
                ui_inputs.append({"name": spec.name, "type": spec.type, "link": None, "widget": {"name": spec.name}})
            stored = 0 if is_fed else value
            if is_fed and style in ("converted_no_value", "converted_keep_control"):
                if ctl and style == "converted_keep_control":
                    values.append("increment")
                continue
            values.append(stored)
            if ctl:
                values.append(True if style == "bool2023" else "randomize")
        nodes.append({"id": int(nid), "type": node["class_type"], "mode": 0, "title": node["_meta"]["title"],
                      "inputs": ui_inputs, "outputs": [], "widgets_values": values})
    return {"last_node_id": prim_id, "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


@st.composite
def ui_cases(draw):
    prompt = draw(random_prompts())
    # every widget input must have a value for a positional encoding to be unambiguous
    for nid, node in prompt.items():
        for spec in _REG.get(node["class_type"]).inputs:
            if spec.widget and spec.name not in node["inputs"]:
                node["inputs"][spec.name] = 0 if spec.type in ("INT", "FLOAT") else "x"
    widgets = sorted((nid, s.name) for nid, n in prompt.items() for s in _REG.get(n["class_type"]).inputs
                     if s.widget)
    fed = set(draw(st.lists(st.sampled_from(widgets), max_size=3))) if widgets else set()
    return prompt, draw(st.sampled_from(STYLES)), fed


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ui_cases())
def test_property_ui_encoding_of_any_style_converts_back(case):
    prompt, style, fed = case
    workflow = json.loads(json.dumps(encode_ui(prompt, style, fed)))
    assert ui_to_prompt(workflow, _REG) == prompt
    assert to_prompt(ui_to_native(workflow, _REG), _REG) == prompt


def test_muted_subgraph_instance_mutes_its_inner_nodes(reg):
    workflow, _ = _load("subgraph_promoted_widget")
    workflow = copy.deepcopy(workflow)
    next(n for n in workflow["nodes"] if n["id"] == 57)["mode"] = 2
    prompt = ui_to_prompt(workflow, reg)
    assert not any(":" in nid for nid in prompt)
    assert prompt["8"]["inputs"] == {"vae": ["4", 2]}


def test_nested_subgraph_and_a_linked_promoted_input(reg):
    workflow, expected = _load("subgraph_promoted_widget")
    workflow = copy.deepcopy(workflow)
    inner_id = workflow["definitions"]["subgraphs"][0]["id"]
    # wrap the existing instance into an outer subgraph that forwards all three inputs
    outer = {"id": "outer-sg", "name": "Wrapper", "inputNode": {"id": -10}, "outputNode": {"id": -20},
             "inputs": [], "outputs": [],
             "nodes": [{"id": 2, "type": inner_id, "mode": 0, "widgets_values": ["unused default"],
                        "inputs": [{"name": "model", "type": "MODEL", "link": 31},
                                   {"name": "positive_text", "type": "STRING", "link": 32,
                                    "widget": {"name": "positive_text"}},
                                   {"name": "clip", "type": "CLIP", "link": 33}],
                        "outputs": [{"name": "LATENT", "type": "LATENT", "links": [34]}]}],
             "links": [[31, -10, 0, 2, 0, "MODEL"], [32, -10, 1, 2, 1, "STRING"], [33, -10, 2, 2, 2, "CLIP"],
                       [34, 2, 0, -20, 0, "LATENT"]]}
    workflow["definitions"]["subgraphs"].append(outer)
    inst = next(n for n in workflow["nodes"] if n["id"] == 57)
    inst["type"] = "outer-sg"
    workflow["nodes"].append({"id": 70, "type": "PrimitiveNode", "mode": 0, "widgets_values": ["from a primitive"],
                              "outputs": [{"name": "STRING", "type": "STRING", "links": [6]}]})
    inst["inputs"][1]["link"] = 6
    workflow["links"].append([6, 70, 0, 57, 1, "STRING"])
    prompt = ui_to_prompt(workflow, reg)
    want = json.loads(json.dumps(expected).replace('"57:', '"57:2:'))  # ids and links one level deeper
    want["57:2:6"]["inputs"]["text"] = "from a primitive"
    assert prompt == want


def test_subgraph_inner_nodes_are_placed_around_the_instance_in_the_editor(reg):
    doc = ui_to_native(_load("subgraph_promoted_widget")[0], reg)
    pos = {n["id"]: n["pos"] for n in doc["nodes"]}
    assert pos["57:3"] == [850.0, 300.0] and pos["57:5"] == [400.0, 700.0] and pos["8"] == [750.0, 300.0]


def test_legacy_group_node_gets_a_clear_warning(reg):
    workflow = {"nodes": [{"id": 1, "type": "workflow>My group", "mode": 0, "widgets_values": [1]}], "links": []}
    warnings: list[str] = []
    assert ui_to_prompt(workflow, reg, warnings) == {
        "1": {"class_type": "workflow>My group", "inputs": {}, "_meta": {"title": "workflow>My group"}}}
    assert "group node" in warnings[0]


def test_unhashable_widget_values_do_not_break_the_layout_check(reg):
    nd = reg.get("KSampler")
    values, controls = widget_values({"widgets_values": [5, {"x": 1}, 20, [1, 2], "euler", "normal", 1]}, nd)
    assert values["seed"] == 5 and controls == {}  # no control slot recognised; nothing raised
