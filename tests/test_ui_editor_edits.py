"""How the browser editor changes its document (ui/static/graph.js `Graph.edit`), in headless Chromium.

Pinned here: every user action is exactly one undo step (a widget edit, a whole node drag, a resize);
a widget edit reaches the document, the change event and localStorage without any other call; the
renderer and the selection follow the graph's change events, so a change made through the Graph API
alone (no editor command) is drawn; and the transaction rules themselves (shared `step`, rollback,
view changes and `record: false` leave the undo history alone).
"""
from __future__ import annotations

import pytest

from tests.browser_helpers import centre, graph, set_number
from tests.test_ui_browser import browser_ctx, load, page, server, stub_doc  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

STORE_KEY = "latentgraph.workflow.v1"


def node_doc(page, nid: str) -> dict:
    return next(n for n in graph(page)["nodes"] if n["id"] == nid)


def mouse_drag(page, x: float, y: float, dx: float, dy: float, steps: int = 12) -> None:
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=steps)
    page.mouse.up()


def test_one_undo_step_per_widget_edit_drag_and_resize(page):
    load(page, stub_doc())
    start = node_doc(page, "2")
    set_number(page, "1", "value", 7)
    set_number(page, "1", "value", 9)
    x, y = centre(page.locator(".lg-node[data-id='2'] .lg-node-title"))
    mouse_drag(page, x, y, 90, 70)                     # 12 pointer moves, one drag
    moved = node_doc(page, "2")
    assert moved["pos"] != start["pos"]
    x, y = centre(page.locator(".lg-node[data-id='2'] .lg-node-resize"))
    mouse_drag(page, x, y, 60, 0, steps=6)
    assert node_doc(page, "2")["size"][0] > moved["size"][0]

    page.locator(".lg-canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")                   # the whole resize
    assert node_doc(page, "2")["size"][0] == moved["size"][0] and node_doc(page, "2")["pos"] == moved["pos"]
    page.keyboard.press("Control+z")                   # the whole drag, not its last move
    assert node_doc(page, "2")["pos"] == start["pos"]
    assert node_doc(page, "1")["widgets"]["value"] == 9
    page.keyboard.press("Control+z")
    assert node_doc(page, "1")["widgets"]["value"] == 7
    assert page.locator(".lg-node[data-id='1'] [data-widget='value'] input").input_value() == "7"
    page.keyboard.press("Control+z")
    assert node_doc(page, "1")["widgets"]["value"] == 5
    page.keyboard.press("Control+y")
    page.keyboard.press("Control+y")
    page.keyboard.press("Control+y")
    assert node_doc(page, "2")["pos"] == moved["pos"] and node_doc(page, "1")["widgets"]["value"] == 9
    assert page.lg_errors == []


def test_widget_edit_emits_a_change_and_is_saved_without_another_call(page):
    load(page, stub_doc())
    page.evaluate("""() => { window.__changes = [];
        window.latentgraph.editor.graph.on('change', (c) => window.__changes.push(
            Object.fromEntries([...c.widgets].map(([id, names]) => [id, [...names]])))); }""")
    seconds = page.locator(".lg-node[data-id='2'] [data-widget='seconds'] input[type='number']")
    seconds.fill("0.5")
    seconds.blur()
    assert page.evaluate("() => window.__changes") == [{"2": ["seconds"]}]
    page.wait_for_function(f"() => JSON.parse(localStorage.getItem('{STORE_KEY}'))"
                           ".nodes.find(n => n.id === '2').widgets.seconds === 0.5")
    page.reload()
    page.wait_for_selector(".lg-app[data-ready='1']")
    assert node_doc(page, "2")["widgets"]["seconds"] == 0.5
    assert seconds.input_value() == "0.5"


def test_components_follow_graph_changes_made_through_the_graph_api_alone(page):
    """No editor command is called: the Graph API's change events redraw nodes, links, widgets
    and the selection."""
    load(page, stub_doc())
    page.locator(".lg-node[data-id='2'] .lg-node-title").click()
    assert page.locator(".lg-node.lg-selected").count() == 1
    assert page.locator(".lg-links path.lg-link").count() == 2
    page.evaluate("() => window.latentgraph.editor.graph.removeNodes(['2'])")
    assert page.locator(".lg-node[data-id='2']").count() == 0
    page.wait_for_function("() => document.querySelectorAll('.lg-links path.lg-link').length === 0")
    assert page.evaluate("() => window.latentgraph.editor.selection.size") == 0

    page.evaluate("() => window.latentgraph.editor.graph.setWidget('1', 'value', 11)")
    assert page.locator(".lg-node[data-id='1'] [data-widget='value'] input").input_value() == "11"
    page.evaluate("() => window.latentgraph.editor.graph.moveNodes([['3', [700, 300]]])")
    style = page.locator(".lg-node[data-id='3']").evaluate("e => [e.style.left, e.style.top]")
    assert style == ["700px", "300px"]
    page.evaluate("() => window.latentgraph.editor.graph.setNodeProps('3', {mode: 'muted', title: 'Kept'})")
    node3 = page.locator(".lg-node[data-id='3']")
    assert node3.get_attribute("data-mode") == "muted" and node3.locator(".lg-node-title").inner_text() == "Kept"
    page.keyboard.press("Control+z")                   # each Graph API call was its own undo step
    assert node3.get_attribute("data-mode") == "normal"
    assert page.lg_errors == []


def test_edit_transaction_rules(page):
    """graph.edit(): one snapshot per step token, nested edits join, a throwing edit rolls back,
    an equal widget value, view changes and record:false record nothing."""
    r = page.evaluate("""async () => {
        const G = await import('/lg-static/graph.js'), g = new G.Graph(), out = {}, events = [];
        g.setSchemas(await (await fetch('/api/object_info')).json());
        g.on('change', (c) => events.push(c));
        const depth = () => g.undoStack.length;
        const a = g.addNode('LgConst', [0, 0]), b = g.addNode('LgSave', [300, 0]);
        out.twoAdds = depth();
        g.edit(() => { g.connect(a.id, 0, b.id, 'value'); g.setNodeProps(b.id, {title: 'Out'}); });
        out.nested = depth();
        const drag = {};
        for (let i = 1; i <= 5; i++) g.edit((x) => x.moveNodes([[a.id, [10 * i, 0]]]), {step: drag});
        out.drag = [depth(), g.nodes.get(a.id).pos[0]];
        out.sameValue = [g.setWidget(a.id, 'value', g.nodes.get(a.id).widgets.value), depth()];
        g.setView({scale: 2, offset: [5, 5]});
        out.view = depth();
        g.undo();
        out.redoKept = g.redoStack.length;
        g.applyControls(); g.edit((x) => x.setWidget(a.id, 'value', 99), {record: false});
        out.unrecorded = [depth(), g.redoStack.length, g.nodes.get(a.id).widgets.value];
        const before = JSON.stringify(g.serialize()), n = events.length;
        try { g.edit((x) => { x.setWidget(a.id, 'value', 3); x.connect(b.id, 0, a.id, 'nope'); }); } catch (e) { out.thrown = e.message; }
        out.rolledBack = [JSON.stringify(g.serialize()) === before, depth(), events.length - n, events[events.length - 1].load];
        out.outside = (() => { try { g.touch('links'); return 'no error'; } catch (e) { return e.message; } })();
        return out;
    }""")
    assert r["twoAdds"] == 2
    assert r["nested"] == 3                       # connect + rename inside one edit: one step
    assert r["drag"] == [4, 50]                   # five moves with one step token: one step
    assert r["sameValue"] == [False, 4]
    assert r["view"] == 4                         # pan/zoom is saved but never an undo step
    assert r["redoKept"] == 1
    assert r["unrecorded"] == [3, 1, 99]          # record:false keeps both histories
    assert r["thrown"]
    assert r["rolledBack"] == [True, 3, 1, True]  # no half-applied edit, no undo step left behind
    assert "graph.edit" in r["outside"]


def test_server_warnings_show_on_the_node_and_as_a_toast(page):
    """A `warning` event (ctx.warn: a skipped embedding, a refused file, an automatic tiled decode)
    is kept on its node until the next run, and toasted."""
    doc = stub_doc()
    doc["nodes"].insert(1, {"id": "5", "type": "LgWarn", "title": "LgWarn", "pos": [20, 360], "size": [240, 0],
                            "color": None, "mode": "normal", "widgets": {"message": "embedding x skipped"},
                            "controls": {}, "converted": []})
    doc["links"] = [{"id": 1, "from": ["1", 0], "to": ["5", "value"], "type": "LG_INT"},
                    {"id": 2, "from": ["5", 0], "to": ["2", "value"], "type": "LG_INT"},
                    {"id": 3, "from": ["2", 0], "to": ["3", "value"], "type": "LG_INT"}]
    load(page, doc)
    page.locator("[data-action='queue']").click()
    note = page.locator(".lg-node[data-id='5'] .lg-node-warning")
    note.wait_for(timeout=20_000)
    assert note.inner_text() == "embedding x skipped"
    page.locator(".lg-toast[data-toast='warn']", has_text="#5: embedding x skipped").first.wait_for()
    assert page.locator(".lg-node[data-id='5'].lg-error").count() == 0
