"""ComfyUI's execution semantics for plugin nodes, through the executor and validation directly.

The nodes are our own ComfyUI-style pack (tests/plugin_packs/semantics_pack), loaded as plugins are.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from engine.events import EventRecorder
from engine.executor import Executor
from engine.graph import validate
from engine.nodedef import Registry
from engine.paths import Paths
from nodes.plugins import load_all

PACKS = Path(__file__).resolve().parent / "plugin_packs"


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    errors = load_all([PACKS], registry=reg, builtin=False)
    assert errors == []
    return reg


@pytest.fixture(scope="module")
def pack():
    return importlib.import_module("custom_nodes.semantics_pack")


@pytest.fixture
def paths(tmp_path) -> Paths:
    p = Paths.from_args(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u")
    p.ensure_dirs()
    return p


def run(ex: Executor, prompt: dict, **kw):
    rec = EventRecorder()
    return ex.execute(prompt, emit=rec, **kw), rec


def shown(res, nid: str) -> list:
    return res.outputs[nid]["text"]


def test_lazy_input_runs_only_the_branch_check_lazy_status_asks_for(registry, paths, pack):
    prompt = {"1": {"class_type": "SemInt", "inputs": {"value": 1}},
              "2": {"class_type": "SemInt", "inputs": {"value": 2}},
              "3": {"class_type": "SemLazySwitch", "inputs": {"switch": False, "on_true": ["1", 0],
                                                              "on_false": ["2", 0]}},
              "4": {"class_type": "SemShow", "inputs": {"value": ["3", 0]}}}
    pack.EVENTS.clear()
    res, rec = run(Executor(registry, paths), prompt)
    assert res.status == "success" and shown(res, "4") == ["2"]
    assert "1" not in res.ran and "2" in res.ran
    # first check: nothing evaluated yet; second: on_false arrived; the node was staged twice
    assert [e for e in pack.EVENTS if e[0] == "lazy-check"] == [("lazy-check", None, None), ("lazy-check", None, 2)]
    assert rec.executing_nodes().count("3") == 2


def test_validate_inputs_replaces_range_checks_and_sees_linked_types(registry, paths):
    def prompt(value, source="SemInt"):
        src_inputs = {"value": 3} if source == "SemInt" else {"value": 1, "scale": 1.5}
        return {"1": {"class_type": source, "inputs": src_inputs},
                "2": {"class_type": "SemChecked", "inputs": {"value": value, "other": ["1", 0]}},
                "3": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}}}
    assert validate(prompt(5.0), registry, paths).ok  # max 1.0 is not checked: VALIDATE_INPUTS takes value
    bad = validate(prompt(7.0), registry, paths)
    err = bad.node_errors["2"]["errors"]
    assert [e["type"] for e in err] == ["custom_validation_failed"] * 2  # one per input it received
    assert {e["details"] for e in err} == {"value - no sevens", "input_types - no sevens"}
    res, _ = run(Executor(registry, paths), prompt(5.0))
    assert res.status == "success" and shown(res, "3") == ["15.0"]  # no runtime range check either
    assert validate(prompt(0.5, "SemV3Scale"), registry, paths).ok  # FLOAT link: input_types says FLOAT


def test_is_changed_gets_constants_only_and_nan_always_reruns(registry, paths, pack):
    ex = Executor(registry, paths)

    def prompt(mode):
        return {"1": {"class_type": "SemInt", "inputs": {"value": 4}},
                "2": {"class_type": "SemFingerprint", "inputs": {"value": ["1", 0], "mode": mode}},
                "3": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}}}
    pack.EVENTS.clear()
    first, _ = run(ex, prompt("same"))
    second, _ = run(ex, prompt("same"))
    assert "2" in first.ran and "2" not in second.ran and "2" in second.cached
    assert ("is-changed", None, "same") in pack.EVENTS  # the linked input is None
    third, _ = run(ex, prompt("always"))
    fourth, _ = run(ex, prompt("always"))
    assert "2" in third.ran and "2" in fourth.ran and "3" in fourth.ran  # NaN: never cached, nor its users


def test_output_is_list_maps_per_item_and_input_is_list_gets_the_list(registry, paths):
    prompt = {"1": {"class_type": "SemRange", "inputs": {"count": 4}},
              "2": {"class_type": "SemAdd", "inputs": {"a": ["1", 0], "b": 10}},
              "3": {"class_type": "SemSum", "inputs": {"values": ["2", 0]}},
              "4": {"class_type": "SemShow", "inputs": {"value": ["3", 0]}},
              "5": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}}}
    res, _ = run(Executor(registry, paths), prompt)
    assert shown(res, "4") == ["46"]
    assert shown(res, "5") == ["10", "11", "12", "13"]  # one call per item, UI merged


def test_hidden_inputs_unique_id_prompt_extra_pnginfo_dynprompt(registry, paths):
    prompt = {"7": {"class_type": "SemHidden", "inputs": {}}}
    res, _ = run(Executor(registry, paths), prompt, extra_data={"extra_pnginfo": {"workflow": {}}})
    assert shown(res, "7") == ["7", "7", "['workflow']", "DynamicPrompt", "SemHidden"]


def test_execution_blocker_silent_skips_consumers_and_message_reports_an_error(registry, paths):
    def prompt(message):
        return {"1": {"class_type": "SemInt", "inputs": {"value": 1}},
                "2": {"class_type": "SemBlock", "inputs": {"value": ["1", 0], "block": True, "message": message}},
                "3": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}}}
    res, rec = run(Executor(registry, paths), prompt(""))
    assert res.status == "success" and "3" not in res.outputs and rec.of("execution_error") == []
    res, rec = run(Executor(registry, paths), prompt("stop here"))
    errors = rec.of("execution_error")
    assert res.status == "success" and len(errors) == 1
    assert errors[0]["node_id"] == "3" and errors[0]["exception_message"] == "Execution Blocked: stop here"


def test_a_blocker_in_a_list_blocks_an_input_is_list_consumer_whole(registry, paths):
    prompt = {"1": {"class_type": "SemRange", "inputs": {"count": 3}},
              "2": {"class_type": "SemBlock", "inputs": {"value": ["1", 0], "block": True}},
              "3": {"class_type": "SemSum", "inputs": {"values": ["2", 0]}},
              "4": {"class_type": "SemShow", "inputs": {"value": ["3", 0]}},
              "5": {"class_type": "SemSum", "inputs": {"values": ["1", 0]}},
              "6": {"class_type": "SemShow", "inputs": {"value": ["5", 0]}}}
    res, _ = run(Executor(registry, paths), prompt)
    assert res.status == "success" and "4" not in res.outputs and shown(res, "6") == ["3"]


def test_expansion_runs_ephemeral_nodes_with_parent_display_id_and_caches_them(registry, paths):
    ex = Executor(registry, paths)
    prompt = {"5": {"class_type": "SemExpand", "inputs": {"value": 3, "cycle": False}},
              "6": {"class_type": "SemShow", "inputs": {"value": ["5", 0]}}}
    res, rec = run(ex, prompt)
    assert res.status == "success" and shown(res, "6") == ["103"]
    assert {"5.0.0.1", "5.0.0.2"} <= set(res.ran)  # <parent>.<call>.<graph>.<id>
    shown_as = {d["node"]: d["display_node"] for d in rec.of("executing") if d["node"]}
    assert shown_as["5.0.0.1"] == "5" and shown_as["6"] == "6"
    again, _ = run(ex, prompt)
    assert again.ran == [] and set(again.cached) == {"5", "6"}


def test_a_cycle_made_by_an_expansion_is_an_error_on_the_expanding_node(registry, paths):
    prompt = {"1": {"class_type": "SemExpand", "inputs": {"value": 1, "cycle": True}},
              "2": {"class_type": "SemShow", "inputs": {"value": ["1", 0]}}}
    res, rec = run(Executor(registry, paths), prompt)
    assert res.status == "error" and res.error["node_id"] == "1"
    assert res.error["exception_type"] == "DependencyCycleError"


def test_a_plugin_node_object_lives_on_between_prompts(registry, paths):
    ex = Executor(registry, paths)
    prompt = {"3": {"class_type": "SemCounter", "inputs": {}}, "4": {"class_type": "SemShow", "inputs": {"value": ["3", 0]}}}
    assert [shown(run(ex, prompt)[0], "4") for _ in range(3)] == [["1"], ["2"], ["3"]]


def test_async_nodes_overlap(registry, paths, pack):
    prompt = {"1": {"class_type": "SemInt", "inputs": {"value": 1}},
              "2": {"class_type": "SemAsync", "inputs": {"value": ["1", 0], "name": "a"}},
              "3": {"class_type": "SemAsync", "inputs": {"value": ["1", 0], "name": "b"}},
              "4": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}},
              "5": {"class_type": "SemShow", "inputs": {"value": ["3", 0]}}}
    pack.EVENTS.clear()
    res, _ = run(Executor(registry, paths), prompt)
    assert res.status == "success" and shown(res, "4") == ["2"] and shown(res, "5") == ["2"]
    order = [e for e in pack.EVENTS if e[0].startswith("async")]
    assert [e[0] for e in order[:2]] == ["async-start", "async-start"]  # b starts before a ends


def test_async_validate_inputs_and_async_check_lazy_status(registry, paths):
    prompt = {"1": {"class_type": "SemInt", "inputs": {"value": 9}},
              "2": {"class_type": "SemAsyncGate", "inputs": {"value": ["1", 0], "limit": 4}},
              "3": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}}}
    res, rec = run(Executor(registry, paths), prompt)
    assert shown(res, "3") == ["4"] and rec.executing_nodes().count("2") == 2  # staged again for "value"
    prompt["2"]["inputs"]["limit"] = -1
    errors = validate(prompt, registry, paths).node_errors["2"]["errors"]
    assert errors[0]["details"] == "limit - limit must not be negative"


def test_partial_execution_targets_run_only_the_named_outputs(registry, paths):
    prompt = {"1": {"class_type": "SemInt", "inputs": {"value": 1}},
              "2": {"class_type": "SemInt", "inputs": {"value": 2}},
              "3": {"class_type": "SemShow", "inputs": {"value": ["1", 0]}},
              "4": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}}}
    res, _ = run(Executor(registry, paths), prompt, targets=["4"])
    assert set(res.ran) == {"2", "4"} and list(res.outputs) == ["4"]


@pytest.mark.parametrize("mode, kept", [("budget", True), ("classic", False), ("lru", True), ("none", False)])
def test_cache_modes_decide_what_survives_another_prompt(registry, paths, mode, kept):
    ex = Executor(registry, paths, cache_mode=mode, cache_lru_size=10)
    a = {"1": {"class_type": "SemInt", "inputs": {"value": 11}}, "2": {"class_type": "SemShow", "inputs": {"value": ["1", 0]}}}
    b = {"1": {"class_type": "SemInt", "inputs": {"value": 12}}, "2": {"class_type": "SemShow", "inputs": {"value": ["1", 0]}}}
    run(ex, a)
    same, _ = run(ex, a)
    assert (same.ran == []) == (mode != "none")  # only --cache-none forgets the prompt just run
    run(ex, b)
    back, _ = run(ex, a)
    assert (back.ran == []) == kept


def test_lru_zero_keeps_only_the_current_prompt(registry, paths):
    ex = Executor(registry, paths, cache_mode="lru", cache_lru_size=0)
    a = {"1": {"class_type": "SemInt", "inputs": {"value": 21}}, "2": {"class_type": "SemShow", "inputs": {"value": ["1", 0]}}}
    b = {"1": {"class_type": "SemInt", "inputs": {"value": 22}}, "2": {"class_type": "SemShow", "inputs": {"value": ["1", 0]}}}
    run(ex, a)
    assert run(ex, a)[0].ran == []
    run(ex, b)
    assert run(ex, a)[0].ran == ["1", "2"]


def test_v3_node_runs_with_hidden_values_ui_and_its_own_validation(registry, paths, pack):
    nd = registry.get("SemV3Scale")
    assert nd.display_name == "Sem V3 Scale" and [o.type for o in nd.outputs] == ["FLOAT"]
    prompt = {"9": {"class_type": "SemV3Scale", "inputs": {"value": 3, "scale": 1.5}},
              "10": {"class_type": "SemShow", "inputs": {"value": ["9", 0]}}}
    pack.EVENTS.clear()
    res, _ = run(Executor(registry, paths), prompt)
    assert shown(res, "10") == ["4.5"] and res.outputs["9"] == {"text": ["3x1.5"]}
    assert ("v3", "9") in pack.EVENTS
    prompt["9"]["inputs"]["scale"] = -1.0
    bad = validate(prompt, registry, paths)
    assert bad.node_errors["9"]["errors"][0]["details"] == "scale - scale must not be negative"
    prompt["9"]["inputs"].update(scale=1.0, value=11)  # not covered by validate_inputs: range checked
    assert validate(prompt, registry, paths).node_errors["9"]["errors"][0]["type"] == "value_bigger_than_max"
