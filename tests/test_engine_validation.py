"""Validation: every ComfyUI error type, all reported together, the 400 body, dropped outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.graph import validate
from engine.paths import Paths
from tests.stub_nodes import make_registry

REG = make_registry()


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp", tmp_path / "user")
    p.ensure_dirs()
    (p.input_dir / "cat.png").write_bytes(b"png")
    return p


def _out(src: str, idx: int = 0) -> dict:
    return {"class_type": "StubOutput", "inputs": {"value": [src, idx]}}


def _types(v, nid: str) -> list[str]:
    return [e["type"] for e in v.node_errors[nid]["errors"]]


def test_valid_prompt_is_ok_and_canonical(paths):
    prompt = {1: {"class_type": "StubInt", "inputs": {"value": "7", "unknown_leftover": 1}},
              "2": {"class_type": "StubAdd", "inputs": {"a": [1, 0], "b": 2.0}, "_meta": {"title": "Sum"}},
              "3": _out("2")}
    v = validate(prompt, REG, paths)
    assert v.ok and v.error is None and v.node_errors == {} and v.outputs == ["3"]
    assert v.prompt["1"]["inputs"] == {"value": 7}
    assert v.prompt["2"]["inputs"] == {"a": ["1", 0], "b": 2}
    assert v.prompt["2"]["_meta"]["title"] == "Sum" and v.prompt["1"]["_meta"]["title"] == "StubInt"


def test_all_error_types_reported_together_in_400_shape(paths):
    prompt = {
        "2": {"class_type": "StubInvert", "inputs": {}},                         # required socket missing
        "3": {"class_type": "StubInvert", "inputs": {"image": ["99", 0]}},       # link to missing node
        "4": {"class_type": "StubInvert", "inputs": {"image": ["5", 3]}},        # bad output index
        "5": {"class_type": "StubInt", "inputs": {"value": "abc"}},              # invalid_input_type
        "6": {"class_type": "StubInvert", "inputs": {"image": ["7", 0]}},        # INT into IMAGE
        "7": {"class_type": "StubInt", "inputs": {"value": -5000}},              # smaller than min
        "8": {"class_type": "StubInt", "inputs": {"value": 5000}},               # bigger than max
        "9": {"class_type": "StubImage", "inputs": {"mode": "spiral"}},          # not in list
        "10": {"class_type": "StubInvert", "inputs": {"image": [1, 2, 3]}},      # malformed link
    }
    for nid in list(prompt):
        prompt[f"o{nid}"] = {"class_type": "StubOutput", "inputs": {"value": [nid, 0]}}
    v = validate(prompt, REG, paths)
    assert not v.ok and v.outputs == []
    assert v.error["type"] == "prompt_outputs_failed_validation"
    assert v.error["message"] == "Prompt outputs failed validation"
    assert set(v.error) == {"type", "message", "details", "extra_info"}
    assert _types(v, "2") == ["required_input_missing"]
    assert _types(v, "3") == ["bad_linked_input"] and _types(v, "4") == ["bad_linked_input"]
    assert _types(v, "5") == ["invalid_input_type"] and _types(v, "6") == ["return_type_mismatch"]
    assert _types(v, "7") == ["value_smaller_than_min"] and _types(v, "8") == ["value_bigger_than_max"]
    assert _types(v, "9") == ["value_not_in_list"] and _types(v, "10") == ["bad_linked_input"]
    entry = v.node_errors["7"]
    assert entry["class_type"] == "StubInt"
    assert sorted(entry["dependent_outputs"]) == ["o6", "o7"]
    err = entry["errors"][0]
    assert set(err) == {"type", "message", "details", "extra_info"}
    assert err["extra_info"]["input_name"] == "value" and err["extra_info"]["received_value"] == -5000
    assert err["extra_info"]["input_config"] == ["INT", {"default": 0, "min": -1000, "max": 1000, "step": 1}]
    json.dumps(v.response_body())  # must be serialisable as the HTTP body


def test_readable_lines(paths):
    prompt = {"1": {"class_type": "StubInt", "inputs": {"value": -5000}}, "2": _out("1"),
              "3": {"class_type": "StubImage", "inputs": {"width": 0}}, "4": _out("3")}
    lines = validate(prompt, REG, paths).lines()
    assert "node 1 (StubInt) input 'value': value -5000 is smaller than min -1000" in lines
    assert "node 3 (StubImage) input 'width': value 0 is smaller than min 1" in lines


def test_missing_widget_default_is_filled_with_warning(paths):
    v = validate({"1": {"class_type": "StubImage", "inputs": {"width": 8}}, "2": _out("1")}, REG, paths)
    assert v.ok and v.prompt["1"]["inputs"] == {"width": 8, "height": 4, "value": 0.5, "mode": "flat"}
    assert any("'height' was missing" in w for w in v.warnings)


def test_invalid_output_dropped_while_valid_output_runs(paths):
    prompt = {"1": {"class_type": "StubInt", "inputs": {"value": 1}}, "2": _out("1"),
              "3": {"class_type": "StubInt", "inputs": {"value": 99999}}, "4": _out("3")}
    v = validate(prompt, REG, paths)
    assert v.ok and v.outputs == ["2"] and v.error is None
    assert v.node_errors["3"]["dependent_outputs"] == ["4"]
    assert set(v.prompt) == {"1", "2"}


def test_coercions_like_comfyui(paths):
    prompt = {"1": {"class_type": "StubFloat", "inputs": {"value": 2}},
              "2": {"class_type": "StubString", "inputs": {"text": 12}},
              "3": {"class_type": "StubFail", "inputs": {"value": ["1", 0], "fail": "false"}},
              "4": {"class_type": "StubAdd", "inputs": {"a": "3", "b": True}},
              "5": _out("3"), "6": _out("2"), "7": _out("4")}
    v = validate(prompt, REG, paths)
    assert v.ok and not v.node_errors
    assert v.prompt["1"]["inputs"]["value"] == 2.0 and isinstance(v.prompt["1"]["inputs"]["value"], float)
    assert v.prompt["2"]["inputs"]["text"] == "12" and v.prompt["3"]["inputs"]["fail"] is False
    assert v.prompt["4"]["inputs"] == {"a": 3, "b": 1}
    bad = validate({"1": {"class_type": "StubAdd", "inputs": {"a": "3.5", "b": {"x": 1}}}, "2": _out("1")},
                   REG, paths)
    assert _types(bad, "1") == ["invalid_input_type", "invalid_input_type"]


def test_widget_fed_by_link_of_its_type_and_star(paths):
    prompt = {"1": {"class_type": "StubInt", "inputs": {"value": 3}},
              "2": {"class_type": "StubAdd", "inputs": {"a": ["1", 0], "b": ["1", 0]}},
              "3": {"class_type": "StubSleep", "inputs": {"value": ["2", 0], "steps": ["2", 0]}},
              "4": {"class_type": "StubAdd", "inputs": {"a": ["3", 0]}},  # "*" output feeds INT
              "5": {"class_type": "StubFloat", "inputs": {"value": ["1", 0]}},  # INT into FLOAT widget
              "6": _out("4"), "7": _out("5")}
    v = validate(prompt, REG, paths)
    assert _types(v, "5") == ["return_type_mismatch"]
    assert v.ok and v.outputs == ["6"]


def test_combo_accepts_combo_link_and_checks_file_lists(paths):
    from nodes.registry import Combo, Out, Registry, node

    reg = make_registry()

    @node(category="t", registry=reg)
    class ComboSource:
        INPUTS = []
        OUTPUTS = [Out("COMBO")]

        def run(self, ctx):
            return ("flat",)

    prompt = {"1": {"class_type": "ComboSource", "inputs": {}},
              "2": {"class_type": "StubImage", "inputs": {"mode": ["1", 0]}}, "3": _out("2"),
              "4": {"class_type": "StubLoadImage", "inputs": {"image": "cat.png"}}, "5": _out("4"),
              "6": {"class_type": "StubLoadImage", "inputs": {"image": "dog.png"}}, "7": _out("6")}
    v = validate(prompt, reg, paths)
    assert v.outputs == ["3", "5"] and _types(v, "6") == ["value_not_in_list"]


def test_cycles_report_each_node_on_the_cycle(paths):
    prompt = {"1": {"class_type": "StubAdd", "inputs": {"a": ["2", 0]}},
              "2": {"class_type": "StubAdd", "inputs": {"a": ["1", 0]}},
              "3": {"class_type": "StubAdd", "inputs": {"a": ["3", 0]}},
              "4": _out("2"), "5": _out("3")}
    v = validate(prompt, REG, paths)
    assert not v.ok
    for nid in ("1", "2", "3"):
        assert "dependency_cycle" in _types(v, nid)


@pytest.mark.parametrize("prompt,etype", [
    (None, "no_prompt"), ({}, "no_prompt"), ([1, 2], "invalid_prompt"), ("x", "invalid_prompt"),
    ({"1": {"class_type": "StubInt", "inputs": {"value": 1}}}, "prompt_no_outputs"),
])
def test_whole_prompt_errors(paths, prompt, etype):
    v = validate(prompt, REG, paths)
    assert not v.ok and v.error["type"] == etype and v.node_errors == {}
    assert v.lines()


def test_unknown_class_and_missing_class_type(paths):
    prompt = {"1": {"class_type": "NoSuchNode", "inputs": {}}, "2": _out("1"),
              "3": {"inputs": {}}, "4": "not a node", "5": _out("6"),
              "6": {"class_type": "StubInt", "inputs": {"value": 1}}}
    v = validate(prompt, REG, paths)
    assert not v.ok and v.error["type"] == "missing_node_type"
    assert _types(v, "1") == ["missing_node_type"]
    assert _types(v, "3") == ["invalid_prompt"] and _types(v, "4") == ["invalid_prompt"]
    assert any("unknown node type" in line for line in v.lines())


def test_targets_select_outputs(paths):
    prompt = {"1": {"class_type": "StubInt", "inputs": {"value": 1}}, "2": _out("1"),
              "3": {"class_type": "StubInt", "inputs": {"value": 99999}}, "4": _out("3")}
    v = validate(prompt, REG, paths, targets=["1"])
    assert v.ok and v.outputs == ["1"] and v.node_errors == {}
    assert validate(prompt, REG, paths, targets=["nope"]).error["type"] == "prompt_no_outputs"
    assert validate(prompt, REG, paths, targets=[]).outputs == ["2"]
    assert validate(prompt, REG, paths, targets=["4"]).error["type"] == "prompt_outputs_failed_validation"


def test_an_integer_too_big_for_a_float_is_a_range_error(paths):
    """10**400 cannot become a float; the range check compares ints as ints."""
    v = validate({"1": {"class_type": "StubAdd", "inputs": {"a": 10**400, "b": 1}}, "2": _out("1")}, REG, paths)
    assert not v.ok
    assert v.node_errors["1"]["errors"][0]["type"] == "value_bigger_than_max"
