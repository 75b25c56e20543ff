"""Property tests: validation never raises and never hits an internal error, whatever it is fed;
graphs that validate also execute (or fail with a node error), never crash the executor."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.executor import Executor
from engine.graph import validate
from engine.paths import Paths
from tests.stub_nodes import make_registry

REG = make_registry()
CLASSES = sorted(nd.class_type for nd in REG.all() if nd.class_type not in ("StubSleep", "StubFile"))
INPUT_NAMES = sorted({s.name for nd in REG.all() for s in nd.inputs}) + ["junk"]
IDS = [str(i) for i in range(6)] + ["x"]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                      st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                          max_leaves=8)
link = st.one_of(st.tuples(st.sampled_from(IDS), st.integers(-2, 3)).map(list),
                 st.tuples(st.integers(0, 6), st.integers(0, 2)).map(list),
                 st.lists(json_leaf, max_size=4))
input_value = st.one_of(link, json_value)
node_strategy = st.one_of(
    st.fixed_dictionaries({"class_type": st.sampled_from(CLASSES),
                           "inputs": st.dictionaries(st.sampled_from(INPUT_NAMES), input_value, max_size=5)}),
    st.fixed_dictionaries({"class_type": st.one_of(st.sampled_from(CLASSES), json_value),
                           "inputs": json_value}, optional={"_meta": json_value}),
    json_value)
prompt_strategy = st.one_of(st.dictionaries(st.sampled_from(IDS), node_strategy, max_size=6), json_value)


def _paths(tmp: str) -> Paths:
    return Paths(f"{tmp}/m", f"{tmp}/i", f"{tmp}/o", f"{tmp}/t", f"{tmp}/u")


PATHS = _paths("/nonexistent-latentgraph")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt_strategy)
def test_validate_never_raises_on_malformed_input(prompt):
    v = validate(prompt, REG, PATHS)
    assert isinstance(v.ok, bool)
    if v.error is not None:
        assert "internal validation error" not in v.error["details"], v.error
        assert set(v.error) >= {"type", "message", "details", "extra_info"}
    json.dumps(v.response_body())
    assert all(isinstance(line, str) for line in v.lines())
    if v.ok:
        assert v.outputs and set(v.outputs) <= set(v.prompt)


def _plausible_value(draw, spec, earlier: list[str]):
    """Mostly schema-valid values (so that many graphs validate), sometimes links or junk."""
    choices = [st.sampled_from([(e, 0) for e in earlier]).map(list)] if earlier else []
    if spec.widget:
        good = [spec.default] + [v for v in (spec.opts.get("min"), spec.opts.get("max")) if v is not None]
        good += spec.choices(None)
        choices.append(st.sampled_from(good))
    return draw(st.one_of(*choices, json_leaf) if draw(st.integers(0, 9)) == 0 else st.one_of(*choices)) \
        if choices else draw(json_leaf)


@st.composite
def plausible_graphs(draw):
    """Chains of stub nodes linked to earlier nodes, ending in output nodes."""
    prompt, ids = {}, []
    for i in range(draw(st.integers(1, 6))):
        nd = REG.get(draw(st.sampled_from(CLASSES)))
        inputs = {}
        for spec in nd.inputs:
            if spec.optional and draw(st.booleans()):
                continue
            if not spec.widget and not ids:
                break
            inputs[spec.name] = _plausible_value(draw, spec, ids)
        prompt[str(i)] = {"class_type": nd.class_type, "inputs": inputs}
        ids.append(str(i))
    prompt["out"] = {"class_type": "StubOutput", "inputs": {"value": [draw(st.sampled_from(ids)), 0]}}
    return prompt


@settings(max_examples=60, deadline=None)
@given(plausible_graphs())
def test_validated_graphs_execute_without_crashing(prompt):
    v = validate(prompt, REG, PATHS)
    assume(v.ok)  # hypothesis fails the health check if most graphs were rejected
    res = Executor(REG, PATHS).execute(prompt)
    assert res.status in ("success", "error")
    if res.status == "error":  # only a node may fail (e.g. StubFail), never the engine itself
        assert res.error["node_id"] in v.prompt and res.error["node_type"] == v.prompt[res.error["node_id"]]["class_type"]
