"""The Gradio page at ``/`` whose centre is Latentgraph's own vanilla-JS node-graph editor.

Gradio provides the page shell (theme, layout, fonts); the editor itself is plain JS/CSS under
``ui/static`` served from ``/lg-static`` and started by the ``gr.HTML`` host's ``js_on_load``. The
editor talks to the same backend as any API client: ``/api/object_info``, ``/ws``, ``/api/view``,
``/api/upload/image``, ``/api/queue``, ``/api/interrupt`` and the editor routes in
``ui.editor_routes`` (``/lg/queue``, ``/lg/import``, ``/lg/workflows``).

``ui.server.create_app`` calls :func:`mount_editor` last, because Gradio is mounted at ``/`` and
would otherwise shadow routes registered after it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/lg-static"

# Static host only: the template must never reference ${value}, or Gradio re-patches the DOM and
# wipes the editor (UI-NOTES pitfall 4).
HOST_HTML = '<div class="lg-host" id="lg-host" data-lg-host="1"><div class="lg-boot">Loading editor…</div></div>'

# The editor modules load asynchronously from <head>; wait for the entry module, then start it once.
BOOT_JS = """
(function boot(tries) {
  if (element.dataset.lgStarted) return;
  const host = element.querySelector('.lg-host') || element;
  if (window.latentgraphBoot) { element.dataset.lgStarted = '1'; window.latentgraphBoot(host); return; }
  if (tries > 400) { host.textContent = 'The editor scripts failed to load (' + '/lg-static' + ').'; return; }
  setTimeout(function () { boot(tries + 1); }, 25);
})(0);
"""

# Gradio's page paddings (main 16px 32px, html-container 10px 12px) made the editor 28px taller than
# the window (the page scrolled); keep one 8px margin, which .lg-app's height subtracts.
PAGE_CSS = (".lg-editor-block{padding:0!important} footer{display:none!important}"
            " .gradio-container>.main.fillable{padding:8px!important}"
            " .lg-editor-block .html-container{padding:0!important}")


def _head() -> str:
    """``<head>`` additions: the editor stylesheet and its ES-module entry point (cache-busted)."""
    stamp = max((int(p.stat().st_mtime) for p in STATIC_DIR.glob("*.*")), default=0)
    return (f'<link rel="stylesheet" href="{STATIC_PREFIX}/editor.css?v={stamp}">\n'
            f'<script type="module" src="{STATIC_PREFIX}/main.js?v={stamp}"></script>\n')


def build_blocks() -> Any:
    """The Gradio Blocks of the editor page: one full-width ``gr.HTML`` host for the editor."""
    import gradio as gr

    with gr.Blocks(title="Latentgraph", fill_width=True, fill_height=True) as blocks:
        gr.HTML(value="", html_template=HOST_HTML, js_on_load=BOOT_JS, elem_id="lg-editor",
                elem_classes=["lg-editor-block"], padding=False, container=False,
                apply_default_css=False)
    return blocks


def mount_editor(app: Any, *, paths: Any, queue: Any, registry: Any,
                 workflows_dir: Path | None = None) -> None:
    """Add the editor routes, the ``/lg-static`` files and the Gradio page (at ``/``) to ``app``."""
    import gradio as gr
    from fastapi.staticfiles import StaticFiles

    from ui.editor_routes import make_router

    temp = getattr(paths, "temp_dir", None)
    if temp and not os.environ.get("GRADIO_TEMP_DIR"):
        os.environ["GRADIO_TEMP_DIR"] = str(Path(temp) / "gradio")
    app.include_router(make_router(paths, queue, registry, workflows_dir=workflows_dir))
    if not any(getattr(r, "path", None) == STATIC_PREFIX for r in app.routes):
        app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="lg-static")
    gr.mount_gradio_app(app, build_blocks(), path="/", head=_head(), run_history=False,
                        footer_links=[], ssr_mode=False, theme=gr.themes.Default(),
                        css=PAGE_CSS)
