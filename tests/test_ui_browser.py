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
    base = tmp_path_factory.mktemp("ui_browser")
    srv = ServerProcess(base, models_dir=tiny_dir).start()
    try:
        yield srv
    finally:
        srv.stop()


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


# -- helpers ---------------------------------------------------------------------------------------
def graph(page) -> dict:
    return page.evaluate("() => window.latentgraph.getGraph()")


def canvas_box(page) -> dict:
    return page.locator(".lg-canvas").bounding_box()


def centre(locator) -> tuple[float, float]:
    b = locator.bounding_box()
    assert b is not None, "element not visible"
    return b["x"] + b["width"] / 2, b["y"] + b["height"] / 2


def add_node(page, query: str, node_type: str, at: tuple[float, float]) -> str:
    """Double-click the canvas at `at` (canvas-relative), search, pick `node_type`; → its id."""
    box = canvas_box(page)
    page.mouse.dblclick(box["x"] + at[0], box["y"] + at[1])
    search = page.locator("[data-palette-search]")
    search.wait_for(state="visible")
    search.fill(query)
    page.locator(f".lg-palette-item[data-node-type='{node_type}']").first.click()
    node = page.locator(f".lg-node.lg-selected[data-type='{node_type}']")
    node.wait_for()
    return node.get_attribute("data-id")


def drag(page, src, dst, steps: int = 6) -> None:
    """A real pointer drag from one element's centre to another's."""
    x0, y0 = centre(src)
    x1, y1 = centre(dst)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=steps)
    page.mouse.move(x1, y1, steps=steps)
    page.mouse.up()


def out_dot(page, nid: str, index: int):
    return page.locator(f".lg-node[data-id='{nid}'] [data-output='{index}'] .lg-dot")


def in_dot(page, nid: str, name: str):
    return page.locator(f".lg-node[data-id='{nid}'] [data-input='{name}'] .lg-dot")


def connect(page, src: str, index: int, dst: str, name: str) -> None:
    before = len(graph(page)["links"])
    drag(page, out_dot(page, src, index), in_dot(page, dst, name))
    links = graph(page)["links"]
    assert len(links) == before + 1, f"link {src}:{index} → {dst}.{name} was not made"
    assert any(l["from"] == [src, index] and l["to"] == [dst, name] for l in links)


def set_number(page, nid: str, name: str, value) -> str:
    field = page.locator(f".lg-node[data-id='{nid}'] [data-widget='{name}'] input[type='number']")
    field.fill(str(value))
    field.blur()
    return field.input_value()


def png_text(data: bytes) -> dict:
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return dict(img.text)


def shot(page, artifacts_dir: Path, name: str) -> None:
    page.wait_for_timeout(150)
    page.screenshot(path=str(artifacts_dir / f"{name}.png"))


def ui_file_drop(page, name: str, text: str) -> None:
    """Drop a file on the canvas the way the browser does (a DataTransfer carrying a File)."""
    page.evaluate("""([name, text]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], name, {type: 'application/json'}));
        const c = document.querySelector('.lg-canvas');
        const r = c.getBoundingClientRect();
        const opts = {bubbles: true, cancelable: true, dataTransfer: dt, clientX: r.left + 200, clientY: r.top + 200};
        c.dispatchEvent(new DragEvent('dragover', opts));
        c.dispatchEvent(new DragEvent('drop', opts));
    }""", [name, text])


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
    connect(page, ids["dec"], 0, ids["save"], "images")
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


def test_artist_flow(page, server, artifacts_dir):
    import httpx

    default = httpx.get(server.url + "/lg/workflows/default")
    first = graph(page)
    if default.status_code == 200:  # first open shows the default workflow, wired
        want = default.json()["workflow"]
        assert {n["id"] for n in first["nodes"]} == {str(n["id"]) for n in want["nodes"]}
        assert len(first["links"]) == len(want["links"]) > 0
        assert page.locator(".lg-links path.lg-link").count() == len(want["links"])
    else:
        assert first["nodes"] == []
    shot(page, artifacts_dir, "01-first-open")

    page.locator("[data-action='clear']").click()
    assert graph(page)["nodes"] == []
    shot(page, artifacts_dir, "02-empty")

    ids = build_txt2img(page)
    refuse_wrong_type(page, ids)
    set_widgets(page, ids)
    page.locator("[data-action='fit']").click()
    shot(page, artifacts_dir, "03-built")

    queued = graph(page)
    page.locator(".lg-canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Enter")
    item = page.locator(".lg-gallery-item").first
    item.wait_for(timeout=90_000)
    page.locator(f".lg-node[data-id='{ids['save']}'].lg-done").wait_for()
    shot(page, artifacts_dir, "04-finished-run")
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

    page.reload()
    page.wait_for_selector(".lg-app[data-ready='1']", timeout=WAIT_MS)
    again = graph(page)
    assert again["nodes"] == now["nodes"] and again["links"] == now["links"]

    page.locator(".lg-gallery-item").first.click()          # the result's workflow, one click away
    page.locator("[data-action='load-image-workflow']").click()
    page.wait_for_function(f"() => window.latentgraph.getGraph().nodes.some(n => n.id === '{ids['ks']}' && n.widgets.seed === 42)")
    assert graph(page)["nodes"] == queued["nodes"]
    page.locator("[data-action='close-viewer']").click()

    ui_text = (FIXTURES / "muted_bypassed.json").read_text()
    expected = httpx.post(server.url + "/lg/import", content=ui_text,
                          headers={"Content-Type": "application/json"}).json()["workflow"]
    ui_file_drop(page, "muted_bypassed.json", ui_text)
    page.wait_for_function(f"() => window.latentgraph.getGraph().nodes.length === {len(expected['nodes'])}")
    dropped = graph(page)
    assert {n["id"] for n in dropped["nodes"]} == {n["id"] for n in expected["nodes"]}
    assert len(dropped["links"]) == len(expected["links"])
    assert page.locator(".lg-node[data-mode='bypass']").count() >= 1
    shot(page, artifacts_dir, "05-dropped-ui-file")

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
