"""Editor (headless Chromium): Reroute / Note / MarkdownNote / PrimitiveNode as real nodes, the
ComfyUI UI round trip through the editor, and number fields (issue #21, items 2 and 7).

One server (stub nodes, no models) and one browser for the module. Screenshots go to artifacts_dir.
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.browser_helpers import add_node, connect, drag, drop_file, graph, in_dot, out_dot, set_number, shot
from tests.server_helpers import ServerProcess
from tests.test_formats_roundtrip import CORPUS, comfy_structure
from tests.test_ui_browser import WAIT_MS, browser_ctx, page  # noqa: F401  (shared fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("ui_nodes")) as srv:
        yield srv


def const_save(page) -> dict:
    """LgConst → LgSave loaded through the page's loadGraph; returns the node ids."""
    doc = {"format": "latentgraph", "version": 1, "nodes": [
        {"id": "1", "type": "LgConst", "pos": [40, 80], "size": [240, 0], "widgets": {"value": 3}},
        {"id": "2", "type": "LgSave", "pos": [700, 80], "size": [240, 0], "widgets": {"filename_prefix": "kinds"}}],
        "links": [{"id": 1, "from": ["1", 0], "to": ["2", "value"], "type": "LG_INT"}], "groups": [],
        "view": {"scale": 1, "offset": [0, 0]}}
    page.evaluate("(d) => window.latentgraph.loadGraph(d)", doc)
    return {"const": "1", "save": "2"}


def last_prompt(server) -> dict:
    hist = httpx.get(server.url + "/api/history").json()
    return list(hist.values())[-1]["prompt"][2]


def test_frontend_nodes_are_added_drawn_connected_and_resolved_when_queued(page, server, artifacts_dir):
    ids = const_save(page)
    reroute = add_node(page, "reroute", "Reroute", (380, 60))
    note = add_node(page, "note", "Note", (40, 320))
    md = add_node(page, "markdown", "MarkdownNote", (380, 320))
    prim = add_node(page, "primitive", "PrimitiveNode", (40, 200))
    page.locator(f".lg-node[data-id='{prim}'] [data-hint='primitive']").wait_for()
    connect(page, ids["const"], 0, reroute, "input")
    drag(page, out_dot(page, reroute, 0), in_dot(page, ids["save"], "value"))   # replaces the direct link
    assert [l["from"] for l in graph(page)["links"] if l["to"] == [ids["save"], "value"]] == [[reroute, 0]]
    # Dropped on the widget row, as in ComfyUI: the widget becomes an input fed by the primitive.
    drag(page, out_dot(page, prim, 0), page.locator(f".lg-node[data-id='{ids['const']}'] [data-widget='value']"))
    assert [l["from"] for l in graph(page)["links"] if l["to"] == [ids["const"], "value"]] == [[prim, 0]]
    assert set_number(page, prim, "value", 7) == "7"                      # spec copied from LgConst.value
    assert set_number(page, prim, "value", 999) == "255"                  # ... including its max
    set_number(page, prim, "value", 7)
    page.locator(f".lg-node[data-id='{prim}'] [data-control='value']").select_option("increment")
    page.locator(f".lg-node[data-id='{note}'] textarea").fill("remember the seed")
    page.locator(f".lg-node[data-id='{md}'] textarea").fill("## Heads up\n* **bold** item")
    page.locator(f".lg-node[data-id='{md}'] textarea").blur()
    page.locator(f".lg-node[data-id='{md}'] [data-markdown] h4", has_text="Heads up").wait_for()
    doc = graph(page)
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert nodes[prim]["widgets"]["value"] == 7 and nodes[prim]["controls"] == {"value": "increment"}
    assert nodes[ids["const"]]["widgets"]["value"] == 7                  # the target shows the value too
    assert nodes[note]["widgets"]["text"] == "remember the seed"
    shot(page, artifacts_dir, "frontend-nodes")

    page.locator("[data-action='queue']").click()
    page.locator("[data-run][data-status='success']").first.wait_for(timeout=WAIT_MS)
    prompt = last_prompt(server)
    assert {n["class_type"] for n in prompt.values()} == {"LgConst", "LgSave"}
    assert prompt[ids["const"]]["inputs"]["value"] == 7
    assert prompt[ids["save"]]["inputs"]["value"] == [ids["const"], 0]     # through the reroute
    after = {n["id"]: n for n in graph(page)["nodes"]}
    assert after[prim]["widgets"]["value"] == 8                           # increment after queueing
    assert page.locator(f".lg-node[data-id='{prim}'] [data-widget='value'] input[type='number']").input_value() == "8"
    assert page.lg_errors == []


@pytest.mark.parametrize("name", ["editor_nodes_modern"])
def test_comfyui_workflow_round_trips_through_the_editor(page, name, artifacts_dir):
    original = json.loads((CORPUS / f"{name}.json").read_text())
    drop_file(page, f"{name}.json", json.dumps(original))
    toast = page.locator(".lg-toast", has_text=f"Loaded {name}.json")
    toast.wait_for(timeout=WAIT_MS)
    text = toast.text_content()
    for part in ("19 nodes", "2 groups", "1 note", "1 Markdown note", "4 reroutes", "3 primitives"):
        assert part in text, text
    for kind in ("Reroute", "Note", "MarkdownNote", "PrimitiveNode"):
        assert page.locator(f".lg-node[data-type='{kind}']").count() >= 1
    shot(page, artifacts_dir, "imported-comfyui-workflow")
    with page.expect_download() as dl:
        page.locator("[data-action='export-comfy']").click()
    exported = json.loads(Path(dl.value.path()).read_text())
    (artifacts_dir / "exported.json").write_text(json.dumps(exported, indent=1))
    # Opening a file fits it into the view (the editor's choice): only the viewport may differ.
    exported["extra"].pop("ds"), original["extra"].pop("ds")
    assert comfy_structure(exported) == comfy_structure(original)
    assert page.lg_errors == []


def test_clearing_a_number_field_keeps_the_previous_value(page):
    ids = const_save(page)
    field = page.locator(f".lg-node[data-id='{ids['const']}'] [data-widget='value'] input[type='number']")
    set_number(page, ids["const"], "value", 20)
    field.fill("")
    field.press("Enter")
    assert field.input_value() == "20"
    field.blur()
    assert next(n for n in graph(page)["nodes"] if n["id"] == ids["const"])["widgets"]["value"] == 20
