"""Editor (headless Chromium): the mask editor on Load Image and the history panel / image viewer
backed by the job store, with the queue state in a second tab (issue #21, items 3 and 6).

One server (stub nodes, no models) and one browser for the module. Screenshots go to artifacts_dir.
"""
from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image

from tests.browser_helpers import graph, shot
from tests.server_helpers import ServerProcess
from tests.test_ui_browser import WAIT_MS, browser_ctx, page  # noqa: F401  (shared fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("ui_mask")) as srv:
        buf = io.BytesIO()
        Image.new("RGB", (300, 200), (40, 160, 90)).save(buf, format="PNG")
        (srv.dirs["input"] / "field.png").write_bytes(buf.getvalue())
        yield srv


def chain(*rows) -> dict:
    """An API prompt LgConst → rows... → LgSave; rows are (class_type, inputs)."""
    prompt = {"1": {"class_type": "LgConst", "inputs": {"value": 5}}}
    prev = "1"
    for i, (kind, inputs) in enumerate(rows, start=2):
        prompt[str(i)] = {"class_type": kind, "inputs": {"value": [prev, 0], **inputs}}
        prev = str(i)
    prompt["9"] = {"class_type": "LgSave", "inputs": {"value": [prev, 0], "filename_prefix": "hist"}}
    return prompt


def submit(server, prompt, client_id="someone-else") -> str:
    r = httpx.post(server.url + "/api/prompt", json={"prompt": prompt, "client_id": client_id})
    assert r.status_code == 200, r.text
    return r.json()["prompt_id"]


def test_mask_editor_paints_saves_through_upload_mask_and_sets_the_node(page, server, artifacts_dir):
    doc = {"format": "latentgraph", "version": 1, "view": {"scale": 1, "offset": [0, 0]}, "links": [], "groups": [],
           "nodes": [{"id": "1", "type": "LoadImage", "pos": [60, 40], "size": [260, 0], "widgets": {"image": "field.png"}}]}
    page.evaluate("(d) => window.latentgraph.loadGraph(d)", doc)
    page.locator(".lg-node[data-id='1'] [data-mask-edit='image']").click()
    editor = page.locator("[data-mask-editor][data-ready='1']")
    editor.wait_for(timeout=WAIT_MS)
    canvas = page.locator("[data-mask-canvas]")
    box = canvas.bounding_box()
    page.locator("[data-mask-size]").fill("40")
    page.locator("[data-mask-feather]").fill("0")
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=8)   # a stroke across the left half
    page.mouse.up()
    page.locator("[data-mask-tool='eraser']").click()             # erase its start again
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    page.mouse.up()
    shot(page, artifacts_dir, "mask-editor")
    page.locator("[data-mask-action='save']").click()
    editor.wait_for(state="detached", timeout=WAIT_MS)
    value = next(n for n in graph(page)["nodes"] if n["id"] == "1")["widgets"]["image"]
    assert value.startswith("clipspace/clipspace-mask-"), value
    saved = Image.open(server.dirs["input"] / value)
    assert saved.mode == "RGBA" and saved.size == (300, 200)
    assert saved.getpixel((100, 100))[3] == 0                        # painted: transparent = masked
    assert saved.getpixel((280, 100)) == (40, 160, 90, 255)          # untouched, original colour
    assert saved.getpixel((1, 100))[3] == 255                        # erased again
    # Invert and clear act on the whole mask; the reopened editor starts from the saved mask.
    page.locator(".lg-node[data-id='1'] [data-mask-edit='image']").click()
    editor.wait_for(timeout=WAIT_MS)
    page.locator("[data-mask-action='invert']").click()
    page.locator("[data-mask-action='save']").click()
    editor.wait_for(state="detached", timeout=WAIT_MS)
    inverted = Image.open(server.dirs["input"] / next(n for n in graph(page)["nodes"] if n["id"] == "1")["widgets"]["image"])
    assert inverted.getpixel((100, 100))[3] == 255 and inverted.getpixel((280, 100))[3] == 0
    page.locator(".lg-node[data-id='1'] [data-mask-edit='image']").click()
    editor.wait_for(timeout=WAIT_MS)
    page.keyboard.press("Escape")                                   # Esc closes without saving
    editor.wait_for(state="detached", timeout=WAIT_MS)
    assert page.lg_errors == []


def test_history_lists_every_run_with_status_and_the_viewer_navigates(page, server, artifacts_dir):
    ok = submit(server, chain())
    failed = submit(server, chain(("LgFail", {"message": "boom on purpose"})))
    slow = submit(server, chain(("LgSlow", {"seconds": 60, "steps": 600})))
    page.locator(f"[data-run='{slow}'][data-status='running']").wait_for(timeout=WAIT_MS)
    status = page.locator("[data-run-status]")
    assert status.get_attribute("data-state") == "running"            # a job this tab did not queue
    httpx.post(server.url + "/api/interrupt", json={})
    page.locator(f"[data-run='{slow}'][data-status='interrupted']").wait_for(timeout=WAIT_MS)
    page.locator(f"[data-run='{ok}'][data-status='success']").wait_for(timeout=WAIT_MS)
    page.locator(f"[data-run='{failed}'][data-status='error']", has_text="boom on purpose").wait_for(timeout=WAIT_MS)
    page.locator("[data-run-status][data-state='idle']").wait_for(timeout=WAIT_MS)
    assert page.locator(f"[data-run='{ok}'] [data-duration]").text_content().endswith(" s")
    shot(page, artifacts_dir, "history-panel")

    second = submit(server, chain())
    page.locator(f"[data-run='{second}'][data-status='success'] .lg-run-thumb").wait_for(timeout=WAIT_MS)
    page.locator(f"[data-run='{second}'] .lg-run-thumb").first.click()
    viewer = page.locator("[data-viewer]")
    viewer.wait_for()
    count = page.locator("[data-viewer-index]")
    assert count.text_content() == "1 / 2"            # two successful runs saved an image; the newest first
    assert "hist_" in page.locator("[data-viewer-meta]").text_content()
    page.keyboard.press("ArrowRight")
    assert count.text_content() == "2 / 2"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")                  # wraps around
    assert count.text_content() == "2 / 2"
    shot(page, artifacts_dir, "image-viewer")
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")

    page.locator(f"[data-run='{failed}'] [data-run-action='requeue']").click()
    page.locator("[data-run][data-status='error']").nth(1).wait_for(timeout=WAIT_MS)    # the same prompt again
    with page.expect_download() as dl:
        page.locator(f"[data-run='{ok}'] [data-run-action='download']").click()
    assert json.loads(open(dl.value.path()).read())["1"]["class_type"] == "LgConst"
    page.locator(f"[data-run='{ok}'] [data-run-action='open']").click()
    page.locator(".lg-toast", has_text="Loaded run").wait_for(timeout=WAIT_MS)
    assert {n["type"] for n in graph(page)["nodes"]} == {"LgConst", "LgSave"}
    page.locator(f"[data-run='{ok}'] [data-run-action='delete']").click()
    page.locator(f"[data-run='{ok}']").wait_for(state="detached", timeout=WAIT_MS)
    assert ok not in httpx.get(server.url + "/api/history").json()
    assert page.lg_errors == []


def test_a_second_tab_shows_running_from_the_queue_on_load(browser_ctx, server):  # noqa: F811
    slow = submit(server, chain(("LgSlow", {"seconds": 60, "steps": 600})))
    other = browser_ctx.new_page()
    try:
        other.goto(server.url + "/")
        other.wait_for_selector(".lg-app[data-ready='1']", timeout=WAIT_MS)
        other.locator("[data-run-status][data-state='running']").wait_for(timeout=WAIT_MS)
        other.locator(f"[data-run='{slow}'][data-status='running']").wait_for(timeout=WAIT_MS)
        httpx.post(server.url + "/api/interrupt", json={})
        other.locator("[data-run-status][data-state='idle']").wait_for(timeout=WAIT_MS)
    finally:
        other.close()
