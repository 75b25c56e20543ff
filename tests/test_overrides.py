"""`--set` overrides (engine/overrides.py): values are JSON when they parse, text otherwise, and
JSON this application refuses (huge integers, deep nesting, NaN) is a SetError, never a crash."""
from __future__ import annotations

import pytest

from engine.overrides import SetError, apply_sets, sync_native_widgets
from tests.stub_nodes import make_registry

PROMPT = {"1": {"class_type": "StubInt", "inputs": {"value": 1}, "_meta": {"title": "Seed"}}}


def fresh() -> dict:
    return {k: {**v, "inputs": dict(v["inputs"])} for k, v in PROMPT.items()}


def test_json_values_parse_and_text_stays_text():
    assert apply_sets(fresh(), ["1.value=7"])["1"]["inputs"]["value"] == 7
    assert apply_sets(fresh(), ["Seed.value=a red circle"])["1"]["inputs"]["value"] == "a red circle"
    assert apply_sets(fresh(), ["StubInt.value=[1, 2]"])["1"]["inputs"]["value"] == [1, 2]


@pytest.mark.parametrize("raw,needle", [
    ("9" * 5000, "digits"),
    ("[" * 1000 + "]" * 1000, "levels"),
    ("NaN", "NaN"),
])
def test_json_we_refuse_is_a_set_error_with_a_short_message(raw, needle):
    with pytest.raises(SetError) as info:
        apply_sets(fresh(), [f"1.value={raw}"])
    message = str(info.value)
    assert needle in message and len(message) < 300 and "\n" not in message


def test_unknown_node_or_input_names_what_exists():
    with pytest.raises(SetError, match="no node with id, title or type 'Nope'.*Seed"):
        apply_sets(fresh(), ["Nope.value=1"])
    with pytest.raises(SetError, match="has no input 'valu'"):
        apply_sets(fresh(), ["1.valu=1"], make_registry())
    with pytest.raises(SetError, match="expected ID_OR_TITLE.input=value"):
        apply_sets(fresh(), ["value=1"])


def test_native_document_follows_the_overrides():
    doc = {"format": "latentgraph", "nodes": [{"id": "1", "widgets": {"value": 1}}]}
    out = sync_native_widgets(doc, apply_sets(fresh(), ["1.value=5"]))
    assert out["nodes"][0]["widgets"]["value"] == 5 and doc["nodes"][0]["widgets"]["value"] == 1
