"""The graph editor in headless Chromium against a real server with the tiny models.

The main flow does what an artist does, with real pointer and keyboard input: build txt2img from
an empty canvas through the palette and socket drags, set prompt/seed/steps, queue, wait for the
gallery, check the PNG carries exactly the editor's graph, reload, drop a ComfyUI UI file on the
canvas, provoke a validation error, undo/redo. Screenshots of each stage go to ``artifacts_dir``.
"""
from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.browser_helpers import (add_node, canvas_box, centre, connect, drag, drop_file, graph,
                                   in_dot, out_dot, png_text, set_number, shot)
from tests.server_helpers import ServerProcess

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "comfy_ui"
WAIT_MS = 30_000

if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tiny_dir, tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("ui_browser"), models_dir=tiny_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser_ctx():
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="lg-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=FLAGS, headless=True,
            viewport={"width": 1700, "height": 1000})
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_ctx, server):
    pg = browser_ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url + "/")
    pg.wait_for_selector(".lg-app[data-ready='1']", timeout=WAIT_MS)
    pg.lg_errors = errors
    yield pg
    pg.close()


# -- the main flow ---------------------------------------------------------------------------------
def build_txt2img(page) -> dict:
    ids = {
        "ckpt": add_node(page, "checkpoint loader", "CheckpointLoaderSimple", (40, 40)),
        "pos": add_node(page, "clip text", "CLIPTextEncode", (320, 30)),
        "neg": add_node(page, "cliptextencode", "CLIPTextEncode", (320, 300)),
        "latent": add_node(page, "empty latent", "EmptyLatentImage", (40, 300)),
        "ks": add_node(page, "ksampler", "KSampler", (600, 30)),
        "dec": add_node(page, "vae decode", "VAEDecode", (880, 30)),
        "save": add_node(page, "save image", "SaveImage", (880, 250)),
    }
    assert len(set(ids.values())) == 7
    connect(page, ids["ckpt"], 0, ids["ks"], "model")
    connect(page, ids["ckpt"], 1, ids["pos"], "clip")
    connect(page, ids["ckpt"], 1, ids["neg"], "clip")
    connect(page, ids["pos"], 0, ids["ks"], "positive")
    connect(page, ids["neg"], 0, ids["ks"], "negative")
    connect(page, ids["latent"], 0, ids["ks"], "latent_image")
    connect(page, ids["ks"], 0, ids["dec"], "samples")
    connect(page, ids["ckpt"], 2, ids["dec"], "vae")
    connect(page, ids["dec"], 0, ids["save"], "images", backwards=True)
    return ids


def refuse_wrong_type(page, ids: dict) -> None:
    """MODEL → VAEDecode.vae must be refused visibly and leave the links unchanged."""
    before = graph(page)["links"]
    drag(page, out_dot(page, ids["ckpt"], 0), in_dot(page, ids["dec"], "vae"))
    page.locator(".lg-toast[data-toast='error']", has_text="MODEL").first.wait_for()
    assert graph(page)["links"] == before


def set_widgets(page, ids: dict) -> None:
    node = lambda k: page.locator(f".lg-node[data-id='{ids[k]}']")  # noqa: E731
    node("ckpt").locator("[data-widget='ckpt_name'] select").select_option("tiny_sd1.safetensors")
    node("pos").locator("[data-widget='text'] textarea").fill("a red circle on blue")
    node("neg").locator("[data-widget='text'] textarea").fill("blurry")
    node("neg").locator("[data-widget='text'] textarea").blur()
    assert set_number(page, ids["ks"], "steps", 0) == "1"          # min enforced
    assert set_number(page, ids["ks"], "steps", 2) == "2"
    assert set_number(page, ids["ks"], "seed", 42) == "42"
    node("ks").locator("[data-control='seed']").select_option("increment")
    assert set_number(page, ids["latent"], "width", 70) == "72"     # step 8 enforced
    set_number(page, ids["latent"], "width", 64)
    set_number(page, ids["latent"], "height", 64)
    ks = graph(page)["nodes"]
    ks = next(n for n in ks if n["id"] == ids["ks"])
    assert ks["widgets"]["seed"] == 42 and ks["widgets"]["steps"] == 2 and ks["controls"]["seed"] == "increment"


def check_first_open(page, server) -> None:
    """First open shows workflows/default.json, wired (or an empty canvas if there is none)."""
    import httpx

    default = httpx.get(server.url + "/lg/workflows/default")
    first = graph(page)
    if default.status_code == 200:
        want = default.json()["workflow"]
        assert {n["id"] for n in first["nodes"]} == {str(n["id"]) for n in want["nodes"]}
        assert len(first["links"]) == len(want["links"]) > 0
        assert page.locator(".lg-links path.lg-link").count() == len(want["links"])
    else:
        assert first["nodes"] == []


def run_and_check_png(page, server, ids: dict, artifacts_dir: Path) -> tuple[dict, dict]:
    """Ctrl+Enter, wait for the gallery; the PNG's workflow chunk is the queued editor graph."""
    import httpx

    queued = graph(page)
    page.locator(".lg-canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Enter")
    item = page.locator(".lg-gallery-item").first
    item.wait_for(timeout=90_000)
    page.locator(f".lg-node[data-id='{ids['save']}'].lg-done").wait_for()
    shot(page, artifacts_dir, "04-finished-run")
    assert page.locator(f".lg-node[data-id='{ids['ks']}'] .lg-preview[data-live='1']").count() == 1  # WS frames
    assert not page.locator(".lg-node.lg-error").count()

    url = f"{server.url}/api/view?filename={item.get_attribute('data-filename')}&type=output&subfolder="
    chunks = png_text(httpx.get(url).content)
    assert json.loads(chunks["workflow"]) == queued
    prompt = json.loads(chunks["prompt"])
    assert prompt[ids["ks"]]["inputs"]["seed"] == 42 and prompt[ids["ks"]]["inputs"]["steps"] == 2
    assert prompt[ids["pos"]]["inputs"]["text"] == "a red circle on blue"
    now = graph(page)   # control-after-generate "increment" applied once the job was queued
    assert next(n for n in now["nodes"] if n["id"] == ids["ks"])["widgets"]["seed"] == 43
    assert page.locator(f".lg-node[data-id='{ids['ks']}'] [data-widget='seed'] input").input_value() == "43"
    return queued, now


def reload_and_reopen_result(page, ids: dict, queued: dict, now: dict) -> None:
    """A reload keeps the graph; the gallery's "Load workflow" brings back the queued one."""
    page.reload()
    page.wait_for_selector(".lg-app[data-ready='1']", timeout=WAIT_MS)
    again = graph(page)
    assert again["nodes"] == now["nodes"] and again["links"] == now["links"]
    page.locator(".lg-gallery-item").first.click()
    page.locator("[data-action='load-image-workflow']").click()
    page.wait_for_function(f"() => window.latentgraph.getGraph().nodes.some(n => n.id === '{ids['ks']}' && n.widgets.seed === 42)")
    assert graph(page)["nodes"] == queued["nodes"]
    page.locator("[data-action='close-viewer']").click()


def drop_comfy_ui_file(page, server, artifacts_dir: Path) -> None:
    """Dropping a ComfyUI UI workflow on the canvas loads it as /lg/import converts it."""
    import httpx

    ui_text = (FIXTURES / "muted_bypassed.json").read_text()
    expected = httpx.post(server.url + "/lg/import", content=ui_text,
                          headers={"Content-Type": "application/json"}).json()["workflow"]
    drop_file(page, "muted_bypassed.json", ui_text)
    page.wait_for_function(f"() => window.latentgraph.getGraph().nodes.length === {len(expected['nodes'])}")
    dropped = graph(page)
    assert {n["id"] for n in dropped["nodes"]} == {n["id"] for n in expected["nodes"]}
    assert len(dropped["links"]) == len(expected["links"])
    assert page.locator(".lg-node[data-mode='bypass']").count() >= 1
    shot(page, artifacts_dir, "05-dropped-ui-file")


def test_artist_flow(page, server, artifacts_dir):
    check_first_open(page, server)
    shot(page, artifacts_dir, "01-first-open")
    page.locator("[data-action='clear']").click()
    assert graph(page)["nodes"] == []
    shot(page, artifacts_dir, "02-empty")

    ids = build_txt2img(page)
    refuse_wrong_type(page, ids)
    set_widgets(page, ids)
    page.locator("[data-action='fit']").click()
    shot(page, artifacts_dir, "03-built")

    queued, now = run_and_check_png(page, server, ids, artifacts_dir)
    reload_and_reopen_result(page, ids, queued, now)
    drop_comfy_ui_file(page, server, artifacts_dir)

    page.locator("[data-action='undo']").click()      # back to our txt2img graph
    assert graph(page)["nodes"] == queued["nodes"]
    page.locator("[data-action='fit']").click()
    validation_error_and_undo(page, ids, artifacts_dir)
    assert page.lg_errors == []


def validation_error_and_undo(page, ids: dict, artifacts_dir: Path) -> None:
    """Drag the model link off KSampler: queueing must fail with the input highlighted; undo fixes."""
    n_links = len(graph(page)["links"])
    src = in_dot(page, ids["ks"], "model")
    x, y = centre(src)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 60, y + 260, steps=8)
    page.mouse.up()
    assert len(graph(page)["links"]) == n_links - 1
    page.locator("[data-action='queue']").click()
    ks = page.locator(f".lg-node[data-id='{ids['ks']}']")
    ks.locator(".lg-input-error[data-input='model']").wait_for()
    assert "lg-error" in ks.get_attribute("class")
    banner = page.locator("[data-error-banner]")
    assert banner.is_visible() and "Required input is missing" in banner.inner_text()
    assert "Required input is missing" in ks.locator(".lg-node-messages").inner_text()
    shot(page, artifacts_dir, "06-validation-error")

    page.locator(".lg-canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    assert len(graph(page)["links"]) == n_links
    page.keyboard.press("Control+y")
    assert len(graph(page)["links"]) == n_links - 1
    page.keyboard.press("Control+Shift+z")
    assert len(graph(page)["links"]) == n_links - 1   # nothing left to redo
    page.keyboard.press("Control+z")
    assert len(graph(page)["links"]) == n_links


# -- editing ---------------------------------------------------------------------------------------
def stub_doc(*, seconds: float = 0.0, steps: int = 1, fail: bool = False) -> dict:
    """LgConst → LgSlow → (LgFail →) LgSave as a native document (server_helpers' stub nodes)."""
    chain = [("1", "LgConst", {"value": 5}), ("2", "LgSlow", {"seconds": seconds, "steps": steps})]
    chain += [("4", "LgFail", {"message": "stub failure for the test"})] if fail else []
    chain += [("3", "LgSave", {"filename_prefix": "stub"})]
    nodes = [{"id": i, "type": t, "title": t, "pos": [20 + 290 * k, 60], "size": [240, 0], "color": None,
              "mode": "normal", "widgets": w, "controls": {}, "converted": []} for k, (i, t, w) in enumerate(chain)]
    links = [{"id": k + 1, "from": [a[0], 0], "to": [b[0], "value"], "type": "LG_INT"}
             for k, (a, b) in enumerate(zip(chain, chain[1:]))]
    return {"format": "latentgraph", "version": 1, "nodes": nodes, "links": links, "groups": [],
            "view": {"scale": 1, "offset": [0, 0]}}


def load(page, doc: dict) -> None:
    page.evaluate("(doc) => window.latentgraph.loadGraph(doc)", doc)


def one_link_per_input(page) -> None:
    """Connecting into a linked input replaces its link; undo restores the old one."""
    drag(page, out_dot(page, "1", 0), in_dot(page, "3", "value"))
    links = [(l["from"], l["to"]) for l in graph(page)["links"]]
    assert sorted(links) == sorted([(["1", 0], ["2", "value"]), (["1", 0], ["3", "value"])])
    page.keyboard.press("Control+z")
    assert len(graph(page)["links"]) == 2 and graph(page)["links"][1]["from"] == ["2", 0]


def pan_and_zoom(page) -> None:
    view0 = graph(page)["view"]
    box = canvas_box(page)
    page.mouse.move(box["x"] + 600, box["y"] + 500)          # pan by dragging the empty canvas
    page.mouse.down()
    page.mouse.move(box["x"] + 650, box["y"] + 530, steps=4)
    page.mouse.up()
    v = graph(page)["view"]
    assert [round(v["offset"][0] - view0["offset"][0]), round(v["offset"][1] - view0["offset"][1])] == [50, 30]
    page.mouse.wheel(0, -300)                                 # zoom in around the cursor
    page.wait_for_function(f"() => window.latentgraph.getGraph().view.scale > {v['scale']}")
    page.locator("[data-action='fit']").click()


def palette_copy_paste_delete(page) -> None:
    page.locator("[data-action='add-node']").click()          # palette by button + keyboard
    page.locator("[data-palette-search]").fill("empty latent")
    page.keyboard.press("Enter")
    assert page.locator(".lg-node[data-type='EmptyLatentImage']").count() == 1
    page.locator(".lg-node[data-id='1'] .lg-node-title").click()   # shift-click adds to the selection
    page.locator(".lg-node[data-id='2'] .lg-node-title").click(modifiers=["Shift"])
    assert page.locator(".lg-node.lg-selected").count() == 2
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    doc = graph(page)
    assert len(doc["nodes"]) == 6 and len(doc["links"]) == 3   # the 1→2 link is copied too
    assert page.locator(".lg-node.lg-selected").count() == 2
    page.keyboard.press("Delete")
    assert len(graph(page)["nodes"]) == 4


def link_released_on_canvas(page) -> None:
    """Releasing a link on empty canvas offers the nodes accepting its type and connects one."""
    x, y = centre(out_dot(page, "1", 0))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 20, y + 330, steps=5)
    page.mouse.up()
    offered = {e.get_attribute("data-node-type") for e in page.locator(".lg-palette-item").all()}
    # PreviewAny and the editor's Reroute take any type ("*"), so they accept every link too
    assert offered == {"LgSlow", "LgFail", "LgWarn", "LgSave", "PreviewAny", "Reroute"}
    page.locator(".lg-palette-item[data-node-type='LgSave']").click()
    new = [n for n in graph(page)["nodes"] if n["type"] == "LgSave" and n["id"] != "3"]
    assert len(new) == 1 and {"from": ["1", 0], "to": [new[0]["id"], "value"]} in [
        {"from": l["from"], "to": l["to"]} for l in graph(page)["links"]]
    page.keyboard.press("Delete")                             # the new node is selected
    assert len(graph(page)["nodes"]) == 4


def box_select_group_and_mute(page) -> None:
    n1, n2 = page.locator(".lg-node[data-id='1']"), page.locator(".lg-node[data-id='2']")
    page.locator(".lg-canvas").click(position={"x": 5, "y": 5})  # box select (Ctrl+drag) nodes 1 and 2
    a, b = n1.bounding_box(), n2.bounding_box()
    page.keyboard.down("Control")
    page.mouse.move(a["x"] - 10, a["y"] - 10)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] + 5, max(a["y"] + a["height"], b["y"] + b["height"]) + 5, steps=5)
    page.mouse.up()
    page.keyboard.up("Control")
    assert {e.get_attribute("data-id") for e in page.locator(".lg-node.lg-selected").all()} == {"1", "2"}

    page.keyboard.press("Control+g")                           # group them, then drag the group
    group = page.locator(".lg-group-title").first
    before = {n["id"]: n["pos"] for n in graph(page)["nodes"]}
    gx, gy = centre(group)
    page.mouse.move(gx, gy)
    page.mouse.down()
    page.mouse.move(gx + 40, gy + 60, steps=5)
    page.mouse.up()
    after = {n["id"]: n["pos"] for n in graph(page)["nodes"]}
    scale = graph(page)["view"]["scale"]
    for nid in ("1", "2"):
        assert abs((after[nid][0] - before[nid][0]) * scale - 40) < 2.5   # positions are whole units
        assert abs((after[nid][1] - before[nid][1]) * scale - 60) < 2.5
    assert after["3"] == before["3"]
    assert len(graph(page)["groups"]) == 1
    page.keyboard.press("Control+m")                           # mute the selection
    assert page.locator(".lg-node[data-mode='muted']").count() == 2


def test_editing_tools(page, artifacts_dir):
    load(page, stub_doc())
    one_link_per_input(page)
    pan_and_zoom(page)
    palette_copy_paste_delete(page)
    link_released_on_canvas(page)
    box_select_group_and_mute(page)
    shot(page, artifacts_dir, "editing")
    save_and_open(page, artifacts_dir)
    assert page.lg_errors == []


def save_and_open(page, artifacts_dir: Path) -> None:
    """Save downloads the document; Open… (file picker) loads it back after Clear."""
    with page.expect_download() as dl:
        page.locator("[data-action='save']").click()
    saved_path = artifacts_dir / "saved-workflow.json"
    dl.value.save_as(str(saved_path))
    saved = json.loads(saved_path.read_text())
    assert saved == graph(page) and saved["format"] == "latentgraph" and saved["version"] == 1
    page.locator("[data-action='clear']").click()
    assert graph(page)["nodes"] == []
    with page.expect_file_chooser() as fc:
        page.locator("[data-action='open']").click()
    fc.value.set_files(str(saved_path))
    page.wait_for_function("() => window.latentgraph.getGraph().nodes.length === 4")
    again = graph(page)
    assert again["nodes"] == saved["nodes"] and again["links"] == saved["links"]
    assert again["groups"] == saved["groups"]


def test_example_menu_and_combo_refresh(page, server):
    import httpx

    page.locator("[data-action='help']").click()                  # the shortcuts panel
    assert "Ctrl+Enter" in page.locator("[data-help]").inner_text()
    page.locator("[data-help]").click()
    assert page.locator("[data-help]").count() == 0

    listing = httpx.get(server.url + "/lg/workflows").json()["workflows"]
    assert listing, "the repository ships example workflows"
    for item in listing:            # every example opens from the menu, all node types known, all links drawn
        want = httpx.get(f"{server.url}/lg/workflows/{item['name']}").json()["workflow"]
        page.locator("[data-examples]").select_option(item["name"])
        page.wait_for_function("(ids) => JSON.stringify(window.latentgraph.getGraph().nodes.map(n => n.id))"
                               " === JSON.stringify(ids)", arg=[n["id"] for n in want["nodes"]])
        assert page.locator(".lg-node.lg-missing").count() == 0, item["name"]
        assert graph(page).get("title") == want.get("title")     # document keys the editor does not edit survive
        assert page.locator(".lg-links path.lg-link").count() == len(want["links"]), item["name"]

    page.locator("[data-action='clear']").click()
    nid = add_node(page, "load image", "LoadImage", (60, 60))
    combo = page.locator(f".lg-node[data-id='{nid}'] [data-widget='image'] select")
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    r = httpx.post(server.url + "/api/upload/image", files={"image": ("fresh_upload.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200
    assert "fresh_upload.png" not in combo.locator("option").all_inner_texts()
    page.locator(f".lg-node[data-id='{nid}'] [data-refresh='image']").click()
    page.wait_for_function("(id) => [...document.querySelectorAll(`.lg-node[data-id='${id}'] [data-widget='image'] option`)]"
                           ".some(o => o.value === 'fresh_upload.png')", arg=nid)


def upload_and_drop_images(page, server, nid: str) -> None:
    """Upload through the node's button (thumbnail via /api/view), then drop an image on it."""
    node = page.locator(f".lg-node[data-id='{nid}']")
    from PIL import Image

    path = Path(server.base) / "upload_me.png"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(path)
    node.locator("[data-upload='image']").set_input_files(str(path))
    thumb = node.locator("img[data-thumb='image']")
    thumb.wait_for()
    page.wait_for_function("(id) => { const i = document.querySelector(`.lg-node[data-id='${id}'] img[data-thumb]`);"
                           " return i && i.complete && i.naturalWidth === 32; }", arg=nid)
    assert node.locator("[data-widget='image'] select").input_value() == "upload_me.png"
    assert "upload_me.png" in thumb.get_attribute("src")

    buf = io.BytesIO()                                           # an image dropped on the node
    Image.new("RGB", (16, 16), (20, 200, 20)).save(buf, format="PNG")
    drop_file(page, "dropped.png", buf.getvalue(), "image/png", f".lg-node[data-id='{nid}'] .lg-node-header")
    page.wait_for_function("(id) => document.querySelector(`.lg-node[data-id='${id}'] [data-widget='image'] select`)"
                           ".value === 'dropped.png'", arg=nid)
    assert len(graph(page)["nodes"]) == 1                         # not taken for a workflow


def ksampler_widgets(page, ks: str) -> None:
    """Widget ↔ socket conversion, max clamping, slider for a [0, 1] float."""
    ks_node = page.locator(f".lg-node[data-id='{ks}']")
    ks_node.locator("[data-convert='steps']").click()
    assert ks_node.locator("[data-input='steps']").count() == 1
    assert ks_node.locator("[data-widget='steps']").count() == 0
    assert "steps" in next(n for n in graph(page)["nodes"] if n["id"] == ks)["converted"]
    ks_node.locator("[data-unconvert='steps']").click()
    assert ks_node.locator("[data-widget='steps'] input").input_value() == "20"
    field = ks_node.locator("[data-widget='cfg'] input[type='number']")
    field.fill("250")
    field.blur()
    assert field.input_value() == "100"                          # max enforced
    denoise = ks_node.locator("[data-widget='denoise'] input[type='range']")
    assert denoise.count() == 1                                  # float in [0, 1] → slider


def menu_and_resize(page, ks: str) -> None:
    """Right-click menu (bypass, colour, convert) and widening the node by its corner."""
    ks_node = page.locator(f".lg-node[data-id='{ks}']")
    ks_node.locator(".lg-node-title").click(button="right")       # context menu on a node
    page.locator("[data-menu-item='bypass']").click()
    assert ks_node.get_attribute("data-mode") == "bypass"
    ks_node.locator(".lg-node-title").click(button="right")
    page.locator("[data-menu-item='color-red']").click()
    ks_node.locator(".lg-node-title").click(button="right")
    page.locator("[data-menu-item='convert-seed']").click()
    doc = next(n for n in graph(page)["nodes"] if n["id"] == ks)
    assert doc["mode"] == "bypass" and doc["color"] == "#7a3a3a" and doc["converted"] == ["seed"]
    assert ks_node.locator("[data-input='seed']").count() == 1

    width = doc["size"][0]                                       # widen the node by its corner
    x, y = centre(ks_node.locator(".lg-node-resize"))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y, steps=4)
    page.mouse.up()
    scale = graph(page)["view"]["scale"]
    grown = next(n for n in graph(page)["nodes"] if n["id"] == ks)["size"][0]
    assert abs((grown - width) * scale - 80) < 2.5


def test_widget_conversion_and_image_upload(page, server, artifacts_dir):
    page.locator("[data-action='clear']").click()
    nid = add_node(page, "load image", "LoadImage", (60, 60))
    upload_and_drop_images(page, server, nid)
    ks = add_node(page, "ksampler", "KSampler", (420, 60))
    ksampler_widgets(page, ks)
    menu_and_resize(page, ks)
    shot(page, artifacts_dir, "widgets")


def test_run_panel_progress_preview_cancel_and_errors(page, artifacts_dir):
    load(page, stub_doc(seconds=3.0, steps=12))
    page.locator("[data-field='batch-count']").fill("2")
    page.locator("[data-action='queue']").click()
    slow = page.locator(".lg-node[data-id='2']")
    slow.locator(".lg-preview[data-live='1']").wait_for(timeout=WAIT_MS)   # binary WS preview frame
    page.wait_for_function("() => /step \\d+\\/12/.test(document.querySelector('.lg-progress-text').textContent)")
    assert "lg-running" in slow.get_attribute("class")
    page.locator(".lg-queue-item[data-state='pending']").wait_for()
    assert page.locator(".lg-queue-item").count() == 2
    shot(page, artifacts_dir, "running")
    page.locator(".lg-queue-item[data-state='pending'] [data-cancel]").click()
    page.wait_for_function("() => !document.querySelector(\".lg-queue-item[data-state='pending']\")")
    page.locator("[data-action='interrupt']").click()
    page.locator("[data-run-status]", has_text="Interrupted").wait_for(timeout=WAIT_MS)
    page.wait_for_function("() => !document.querySelector('.lg-queue-item')")

    page.locator("[data-field='batch-count']").fill("1")
    load(page, stub_doc(fail=True))
    page.locator("[data-action='queue']").click()
    failed = page.locator(".lg-node[data-id='4'].lg-error")
    failed.wait_for(timeout=WAIT_MS)
    assert "stub failure for the test" in failed.locator(".lg-node-messages").inner_text()
    page.locator(".lg-toast[data-toast='error']", has_text="stub failure").first.wait_for()
    assert page.locator(".lg-node[data-id='1'].lg-done, .lg-node[data-id='1'].lg-cached").count() == 1
    shot(page, artifacts_dir, "runtime-error")
    assert page.lg_errors == []


def test_server_errors_never_leave_the_page_stuck(page, artifacts_dir):
    load(page, stub_doc())
    page.route("**/lg/queue", lambda route: route.fulfill(status=500, body="boom"))
    page.locator("[data-action='queue']").click()
    page.locator(".lg-toast[data-toast='error']", has_text="500").first.wait_for()
    assert page.locator("[data-action='queue']").is_enabled()
    page.unroute("**/lg/queue")
    page.route("**/lg/import", lambda route: route.abort())
    drop_file(page, "x.json", "{}")
    page.locator(".lg-toast[data-toast='error']", has_text="Cannot open x.json").first.wait_for()
    page.unroute("**/lg/import")
    assert len(graph(page)["nodes"]) == 3
    shot(page, artifacts_dir, "server-error")


def test_graph_model_rules(page):
    """graph.js rules the widgets rely on: clamping, type matching, cycles, control-after-generate."""
    r = page.evaluate("""async () => {
        const G = await import('/lg-static/graph.js'), g = new G.Graph(), seeds = {};
        const int = {type: 'INT', options: {min: 16, max: 1024, step: 8}};
        const flt = {type: 'FLOAT', options: {min: 0, max: 100, step: 0.1, round: 0.01}};
        g.setSchemas(await (await fetch('/api/object_info')).json());
        const a = g.addNode('LgSlow', [0, 0]), b = g.addNode('LgSlow', [300, 0]), ks = g.addNode('KSampler', [0, 300]);
        g.connect(a.id, 0, b.id, 'value');
        for (const mode of ['fixed', 'increment', 'decrement', 'randomize']) {
            ks.controls.seed = mode; ks.widgets.seed = 0; g.applyControls(); seeds[mode] = ks.widgets.seed;
        }
        return {clampInt: [G.clampNumber(int, 70), G.clampNumber(int, 3), G.clampNumber(int, 5000)],
                clampFloat: [G.clampNumber(flt, 7.123), G.clampNumber(flt, -1)],
                types: [G.typesCompatible('INT', 'INT'), G.typesCompatible('MODEL', 'VAE'),
                        G.typesCompatible('*', 'VAE'), G.typesCompatible('IMAGE,MASK', 'MASK')],
                cycle: g.checkConnect(b.id, 0, a.id, 'value'), wrong: g.checkConnect(b.id, 0, ks.id, 'model'),
                seeds};
    }""")
    assert r["clampInt"] == [72, 16, 1024]
    assert r["clampFloat"] == [7.12, 0]
    assert r["types"] == [True, False, True, True]
    assert "type mismatch" in r["wrong"] and "cycle" in r["cycle"]
    seeds = r["seeds"]
    assert seeds["fixed"] == 0 and seeds["increment"] == 1
    assert seeds["decrement"] == 2 ** 53 - 1      # wraps to the max (capped to exact JS integers)
    assert 0 <= seeds["randomize"] < 2 ** 53
