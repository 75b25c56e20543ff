"""Helpers for the browser tests: read the editor's graph, add nodes through the palette, real
pointer drags between sockets, widget input, file drops, PNG text chunks, screenshots."""
from __future__ import annotations

import base64
import io
from pathlib import Path


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


def connect(page, src: str, index: int, dst: str, name: str, *, backwards: bool = False) -> None:
    """Drag output → input (or, backwards, from the free input to the output)."""
    before = len(graph(page)["links"])
    a, b = out_dot(page, src, index), in_dot(page, dst, name)
    drag(page, *((b, a) if backwards else (a, b)))
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


def drop_file(page, name: str, data: bytes | str, mime: str = "application/json",
              target: str = ".lg-canvas") -> None:
    """Drop a file on `target` the way the browser does (a DataTransfer carrying a File)."""
    raw = data.encode() if isinstance(data, str) else data
    page.evaluate("""([name, b64, mime, sel]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, {type: mime}));
        const c = document.querySelector(sel), r = c.getBoundingClientRect();
        const opts = {bubbles: true, cancelable: true, dataTransfer: dt, clientX: r.left + 20, clientY: r.top + 10};
        c.dispatchEvent(new DragEvent('dragover', opts));
        c.dispatchEvent(new DragEvent('drop', opts));
    }""", [name, base64.b64encode(raw).decode(), mime, target])
