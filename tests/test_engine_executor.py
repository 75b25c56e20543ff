"""Executor behaviour in the style of ComfyUI's tests/execution: what ran, what was cached, events."""
from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest

from engine.cache import ModelCache, OutputCache, estimate_nbytes
from engine.events import EventRecorder, Preview
from engine.executor import Executor
from engine.paths import Paths
from tests.stub_nodes import RUNS, make_registry

REG = make_registry()


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp", tmp_path / "user")
    p.ensure_dirs()
    return p


@pytest.fixture
def ex(paths) -> Executor:
    RUNS.clear()
    return Executor(REG, paths)


def chain(value: int = 3, b: int = 4, label: str = "c") -> dict:
    """1 StubInt → 2 StubAdd → 3 StubCounter → 4 StubOutput, plus 5 StubImage → 6 StubInvert → 7 StubOutput."""
    return {
        "1": {"class_type": "StubInt", "inputs": {"value": value}},
        "2": {"class_type": "StubAdd", "inputs": {"a": ["1", 0], "b": b}},
        "3": {"class_type": "StubCounter", "inputs": {"value": ["2", 0], "label": label}},
        "4": {"class_type": "StubOutput", "inputs": {"value": ["3", 0]}},
        "5": {"class_type": "StubImage", "inputs": {"width": 2, "height": 2, "value": 0.25, "mode": "flat"}},
        "6": {"class_type": "StubInvert", "inputs": {"image": ["5", 0]}},
        "7": {"class_type": "StubOutput", "inputs": {"value": ["6", 0]}},
    }


def test_first_run_runs_everything_and_emits_comfyui_events(ex):
    rec = EventRecorder()
    res = ex.execute(chain(), prompt_id="p1", emit=rec)
    assert res.status == "success" and res.prompt_id == "p1"
    assert sorted(res.ran) == ["1", "2", "3", "4", "5", "6", "7"] and res.cached == []
    assert res.outputs == {"4": {"text": ["7"]}, "7": {"text": ["[0.75, 0.75, 0.75, 0.75]"]}}
    types = rec.types()
    assert types[0] == "execution_start" and types[-2:] == ["execution_success", "executing"]
    assert rec.of("executing")[-1] == {"node": None, "display_node": None, "prompt_id": "p1"}
    assert rec.of("executed")[0]["node"] in ("4", "7")
    assert set(rec.of("executed")[0]) == {"node", "display_node", "output", "prompt_id"}
    assert [m[0] for m in res.messages] == ["execution_start", "execution_cached", "execution_success"]
    assert set(res.messages[0][1]) == {"prompt_id", "timestamp"}
    assert res.messages[1][1]["nodes"] == [] and set(res.timings) == set(res.ran)


def test_identical_resubmit_runs_no_node(ex):
    ex.execute(chain())
    rec = EventRecorder()
    res = ex.execute(chain(), emit=rec)
    # ComfyUI lists every cached node of the prompt, not only the cached frontier
    assert res.ran == [] and sorted(res.cached) == ["1", "2", "3", "4", "5", "6", "7"]
    assert rec.of("execution_cached")[0]["nodes"] == res.cached
    assert res.outputs == {"4": {"text": ["7"]}, "7": {"text": ["[0.75, 0.75, 0.75, 0.75]"]}}
    assert [d["node"] for d in rec.of("executing")] == [None]
    assert sorted(d["node"] for d in rec.of("executed")) == ["4", "7"]  # cached UI is re-sent, as in ComfyUI
    assert RUNS["c"] == 1


def test_changing_one_widget_reruns_that_node_and_descendants(ex):
    ex.execute(chain())
    res = ex.execute(chain(b=10))
    assert res.ran == ["2", "3", "4"] and res.outputs["4"] == {"text": ["13"]}
    assert sorted(res.cached) == ["1", "5", "6", "7"]


def test_alternating_between_two_graphs_reuses_both(ex):
    ex.execute(chain(value=1))
    ex.execute(chain(value=2))
    assert ex.execute(chain(value=1)).ran == [] and ex.execute(chain(value=2)).ran == []
    assert RUNS["c"] == 2


def test_renumbered_node_ids_still_hit_the_cache(ex):
    ex.execute(chain())
    mapping = {str(i): f"n{10 - i}" for i in range(1, 8)}
    renamed = {}
    for nid, node in chain().items():
        node = copy.deepcopy(node)
        for k, v in node["inputs"].items():
            if isinstance(v, list):
                node["inputs"][k] = [mapping[v[0]], v[1]]
        renamed[mapping[nid]] = node
    res = ex.execute(renamed)
    assert res.ran == [] and sorted(res.cached) == sorted(mapping.values())


def test_never_cache_node_always_runs_with_descendants(ex):
    prompt = {"1": {"class_type": "StubRandom", "inputs": {}},
              "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "StubInt", "inputs": {"value": 5}},
              "4": {"class_type": "StubOutput", "inputs": {"value": ["3", 0]}}}
    first = ex.execute(prompt)
    second = ex.execute(prompt)
    assert first.ran == ["1", "2", "3", "4"] and second.ran == ["1", "2"] and second.cached == ["3", "4"]
    assert first.outputs["2"] != second.outputs["2"]


def test_file_backed_node_reruns_when_file_changes(ex, tmp_path):
    f = tmp_path / "data.txt"
    f.write_text("one")
    prompt = {"1": {"class_type": "StubFile", "inputs": {"path": str(f)}},
              "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}}}
    assert ex.execute(prompt).outputs["2"] == {"text": ['"one"']}
    assert ex.execute(prompt).ran == []
    f.write_text("two")
    res = ex.execute(prompt)
    assert res.ran == ["1", "2"] and res.outputs["2"] == {"text": ['"two"']} and RUNS["file"] == 2


def test_failing_fingerprint_means_always_run_with_warning(ex, tmp_path):
    prompt = {"1": {"class_type": "StubFile", "inputs": {"path": str(tmp_path / "missing.txt")}},
              "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}}}
    res = ex.execute(prompt)
    assert res.status == "error" and any("fingerprint failed" in w for w in res.warnings)


def test_linked_value_out_of_range_is_a_node_error_not_an_allocation(ex):
    """Validation checks constants; a linked INT is checked when it arrives. Found by the
    property test: StubAdd(10**9) → StubImage.width made a 4·10**12-item list and the OOM killer
    ended the test process at 23 GB."""
    prompt = {"1": {"class_type": "StubAdd", "inputs": {"a": 10**9, "b": 1}},
              "2": {"class_type": "StubImage", "inputs": {"width": ["1", 0], "height": 4096}},
              "3": {"class_type": "StubOutput", "inputs": {"value": ["2", 0]}}}
    rec = EventRecorder()
    res = ex.execute(prompt, prompt_id="range", emit=rec)
    assert res.status == "error"
    err = rec.of("execution_error")[0]
    assert (err["node_id"], err["node_type"]) == ("2", "StubImage")
    assert err["exception_message"] == "input 'width': value 1000000001 is bigger than max 4096"
    prompt["1"]["inputs"]["a"] = -5
    assert "smaller than min 1" in ex.execute(prompt).error["exception_message"]
    prompt["1"]["inputs"]["a"] = 7
    assert ex.execute(prompt).status == "success"


def test_failing_node_reports_error_keeps_upstream_cached(ex):
    prompt = chain()
    prompt["8"] = {"class_type": "StubFail", "inputs": {"value": ["3", 0], "fail": True}}
    prompt["4"]["inputs"]["value"] = ["8", 0]
    rec = EventRecorder()
    res = ex.execute(prompt, prompt_id="pf", emit=rec)
    assert res.status == "error"
    err = rec.of("execution_error")[0]
    assert err["node_id"] == "8" and err["node_type"] == "StubFail" and err["prompt_id"] == "pf"
    assert err["exception_type"] == "ValueError" and "stub failure" in err["exception_message"]
    assert err["current_inputs"] == {"value": 7, "fail": True}
    assert isinstance(err["traceback"], list) and err["traceback"]
    assert {"1", "2", "3"} <= set(err["executed"])
    assert rec.types()[-2:] == ["execution_error", "executing"] and res.messages[-1][0] == "execution_error"
    prompt["8"]["inputs"]["fail"] = False
    res2 = ex.execute(prompt)
    assert res2.status == "success" and "8" in res2.ran and not {"1", "2", "3"} & set(res2.ran)


def test_interrupt_before_first_node(ex):
    stop = threading.Event()
    stop.set()
    rec = EventRecorder()
    res = ex.execute(chain(), prompt_id="pi", emit=rec, interrupt=stop)
    assert res.status == "interrupted" and res.ran == []
    data = rec.of("execution_interrupted")[0]
    assert set(data) == {"prompt_id", "node_id", "node_type", "executed", "timestamp"}
    # ComfyUI's pick order: 5 feeds 6, which feeds the output 7, so 5 is staged first
    assert data["node_id"] == "5" and data["executed"] == []
    assert rec.of("executing")[-1]["node"] is None


def test_interrupt_during_progress(ex):
    stop = threading.Event()
    rec = EventRecorder()

    def emit(event):
        rec(event)
        if event.type == "progress" and event.value == 2:
            stop.set()

    prompt = {"1": {"class_type": "StubInt", "inputs": {"value": 1}},
              "2": {"class_type": "StubSleep", "inputs": {"value": ["1", 0], "seconds": 0.0, "steps": 5}},
              "3": {"class_type": "StubOutput", "inputs": {"value": ["2", 0]}}}
    res = ex.execute(prompt, emit=emit, interrupt=stop)
    assert res.status == "interrupted" and rec.of("execution_interrupted")[0]["node_id"] == "2"
    assert [p["value"] for p in rec.of("progress")] == [1, 2]
    assert rec.of("progress")[0] == {"value": 1, "max": 5, "prompt_id": res.prompt_id, "node": "2"}
    previews = [e for e in rec.events if isinstance(e, Preview)]
    assert previews[0].image.startswith(b"\xff\xd8") and previews[0].image_format == 1  # JPEG
    assert ex.execute(prompt).ran == ["2", "3"]  # the interrupted node was not cached; node 1 was


def test_validation_failure_is_an_error_result(ex):
    rec = EventRecorder()
    res = ex.execute({"1": {"class_type": "StubInt", "inputs": {"value": 10**6}},
                      "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}}}, emit=rec)
    assert res.status == "error" and res.error["error"]["type"] == "prompt_outputs_failed_validation"
    assert "smaller" in rec.of("execution_error")[0]["exception_message"] or \
        "bigger" in rec.of("execution_error")[0]["exception_message"]


def test_warnings_go_out_as_warning_events(ex):
    rec = EventRecorder()
    ex.execute({"1": {"class_type": "StubWarn", "inputs": {"value": 1, "message": "mind the gap"}},
                "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}},
                "3": {"class_type": "StubImage", "inputs": {}},
                "4": {"class_type": "StubOutput", "inputs": {"value": ["3", 0]}}}, emit=rec)
    messages = [w["message"] for w in rec.of("warning")]
    assert "mind the gap" in messages and any("'width' was missing" in m for m in messages)


def test_list_outputs_run_downstream_per_item_and_input_is_list_gets_whole_lists(ex):
    prompt = {"1": {"class_type": "StubRange", "inputs": {"count": 3}},
              "2": {"class_type": "StubAdd", "inputs": {"a": ["1", 0], "b": 10}},
              "3": {"class_type": "StubSumList", "inputs": {"values": ["2", 0]}},
              "4": {"class_type": "StubOutput", "inputs": {"value": ["3", 0]}},
              "5": {"class_type": "StubOutput", "inputs": {"value": ["2", 0]}}}
    res = ex.execute(prompt)
    assert res.outputs["4"] == {"text": ["33"]}
    assert res.outputs["5"] == {"text": ["10", "11", "12"]}  # per-item UI merged
    prompt["1"]["inputs"]["count"] = 0
    assert ex.execute(prompt).outputs["4"] == {"text": ["0"]}


def test_targets_run_only_their_branch(ex):
    res = ex.execute(chain(), targets=["6"])
    assert res.ran == ["5", "6"] and res.outputs == {}


def test_output_cache_lru_under_byte_budget():
    cache = OutputCache(budget_bytes=100, sizeof=lambda v: v)
    cache.put("a", 40)
    cache.put("b", 40)
    assert cache.get("a") == 40  # a is now most recent
    cache.put("c", 40)
    assert cache.get("b") is None and cache.get("a") == 40 and cache.get("c") == 40
    assert not cache.put("huge", 101) and cache.get("huge") is None and cache.nbytes == 80


def test_small_budget_still_executes_correctly(paths):
    ex = Executor(REG, paths, cache_budget_bytes=1)
    assert ex.execute(chain()).outputs["4"] == {"text": ["7"]}
    assert sorted(ex.execute(chain()).ran) == ["1", "2", "3", "4", "5", "6", "7"]


def test_estimate_nbytes_duck_types():
    class Tensorish:
        def element_size(self):
            return 4

        def nelement(self):
            return 1000

    class Arrayish:
        nbytes = 512

    assert estimate_nbytes(Tensorish()) == 4000 and estimate_nbytes(Arrayish()) == 512
    nested = {"samples": Tensorish(), "batch": [Arrayish(), Arrayish()]}
    assert estimate_nbytes(nested) > 4000 + 1024
    class Module:
        def parameters(self):
            return iter([Tensorish(), Tensorish()])

        def buffers(self):
            return iter([Arrayish()])

    class Wrapper:
        def __init__(self):
            self.unet, self.name = Module(), "m"

    assert estimate_nbytes(Module()) == 8512 and estimate_nbytes(Wrapper()) > 8512
    loop: list = []
    loop.append(loop)
    assert estimate_nbytes(loop) > 0


def test_model_cache_lru_by_count_and_clear():
    cache, loads = ModelCache(max_items=2), []

    def loader(k):
        return lambda: loads.append(k) or f"model-{k}"

    assert cache.get("a", loader("a")) == "model-a" and cache.get("a", loader("a")) == "model-a"
    cache.get("b", loader("b"))
    cache.get("a", loader("a"))
    cache.get("c", loader("c"))
    assert loads == ["a", "b", "c"] and cache.keys() == ["a", "c"]
    cache.clear()
    assert len(cache) == 0


def test_wrong_number_of_returned_values_is_reported_at_the_producing_node(paths):
    from nodes.registry import Out, node

    reg = make_registry()

    @node(category="t", registry=reg)
    class TwoOutputsOneValue:
        INPUTS = []
        OUTPUTS = [Out("INT"), Out("INT")]

        def run(self, ctx):
            return (1,)

    res = Executor(reg, paths).execute({"1": {"class_type": "TwoOutputsOneValue", "inputs": {}},
                                        "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 1]}}})
    assert res.status == "error" and res.error["node_id"] == "1"
    assert "returned 1 values for 2 declared outputs" in res.error["exception_message"]
