"""The one server process: ComfyUI-compatible HTTP + WebSocket API and the Gradio editor.

``create_app`` wires the routes (at ``/`` and ``/api``), ``/ws``, ``/lg-static`` and finally the
editor (mounted at ``/`` last, so API routes registered before it keep priority). Two pure-ASGI
middlewares guard everything, HTTP and WebSocket alike: the optional bearer token and the
request-body size limit. Every error leaves as JSON; tracebacks stay in the server log.
``serve(services, host=, port=, token=)`` runs uvicorn on the engine objects main.py built.
"""
from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
import sys
import threading
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from engine.submit import SubmitRejected, error_body

from ui.api_files import MAX_UPLOAD_BYTES, ApiError, file_router
from ui.api_jobs import jobs_router
from ui.api_misc import internal_router, misc_router, templates_router
from ui.api_routes import MAX_JSON_BYTES, Api, api_router
from ui.api_user import user_router
from ui.hosts import HostAllowList, host_name, is_loopback, listen_refusal, listen_warning
from ui.ws import WsHub

log = logging.getLogger("latentgraph.server")
STATIC_DIR = Path(__file__).resolve().parent / "static"
# Shutdown (SIGTERM / Ctrl-C) must end within 5 s even during a big job: open connections get
# SHUTDOWN_GRACE seconds, then the queue worker SHUTDOWN_GRACE more (its job was interrupted the
# moment the signal came); a job still inside a node after that is recorded as interrupted.
SHUTDOWN_GRACE = 1.5
TOKEN_COOKIE = "lg_token"


def _error_body(kind: str, message: str) -> dict:
    """Every JSON error here, guards included, is engine.graph.error_body's one shape."""
    return error_body(kind, message)


async def _send_json(send: Any, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])})
    await send({"type": "http.response.body", "body": data})


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for bodies over the limit: by Content-Length up front, by counting when streamed."""

    def __init__(self, app: Any, json_limit: int = MAX_JSON_BYTES,
                 upload_limit: int = MAX_UPLOAD_BYTES + 1024 * 1024) -> None:
        self.app, self.json_limit, self.upload_limit = app, json_limit, upload_limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limit if "/upload/" in scope.get("path", "") else self.json_limit
        if "/gradio_api/" in scope.get("path", ""):  # the editor's own uploads: Gradio limits them
            limit = self.upload_limit
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _send_json(send, 413, _error_body("too_large", f"request body exceeds {limit} bytes"))
        seen, started = 0, False

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, _error_body("too_large", f"request body exceeds {limit} bytes"))


_TOKEN_PAGE = (b"<!doctype html><meta charset=utf-8><title>Latentgraph: token needed</title>"
               b"<body style='font:15px system-ui;margin:3em;max-width:40em'><h2>Latentgraph needs its token</h2>"
               b"<p>This server was started with <code>--auth-token</code>. Open this page once as "
               b"<code>/?token=YOUR_TOKEN</code>; the browser then keeps a cookie for this server.</p>")


class TokenAuthMiddleware:
    """Every route needs ``Authorization: Bearer T``, ``?token=T`` or the cookie set from it.

    ``/manifest.json`` (Gradio's static web-app manifest, no data) is open: browsers fetch it
    without cookies. A browser page load without the token gets a short HTML explanation."""

    PUBLIC_PATHS = ("/manifest.json",)

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode()

    def _presented(self, scope: dict) -> list[bytes]:
        headers = dict(scope.get("headers") or [])
        found = []
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            found.append(auth[7:].strip())
        for value in parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", []):
            found.append(value.encode())
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:
            pass
        if TOKEN_COOKIE in cookie:
            found.append(cookie[TOKEN_COOKIE].value.encode())
        return found

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if scope["type"] == "http" and scope.get("path") in self.PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        presented = self._presented(scope)
        if any(hmac.compare_digest(p, self.token) for p in presented):
            if scope["type"] == "http" and b"token=" in scope.get("query_string", b""):
                return await self.app(scope, receive, self._with_cookie(send))
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        accept = dict(scope.get("headers") or []).get(b"accept", b"")
        if scope.get("method") == "GET" and b"text/html" in accept:
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"text/html; charset=utf-8"), (b"www-authenticate", b"Bearer"),
                (b"content-length", str(len(_TOKEN_PAGE)).encode())]})
            await send({"type": "http.response.body", "body": _TOKEN_PAGE})
            return
        await _send_json(send, 401, _error_body("unauthorized", "missing or wrong token"),
                         [(b"www-authenticate", b"Bearer")])

    def _with_cookie(self, send: Any) -> Any:
        """A browser that opened ``/?token=T`` keeps access for the assets it loads next."""
        value = f"{TOKEN_COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def wrapped(message: dict) -> None:
            if message.get("type") == "http.response.start":
                message = {**message, "headers": list(message.get("headers") or []) + [(b"set-cookie", value)]}
            await send(message)
        return wrapped


def _split_host(value: str) -> tuple[str, str]:
    """``host:port`` (or ``[v6]:port``) → (lower-case host with loopback names unified, port)."""
    value = value.strip().lower()
    port = value.rpartition("]")[2] if value.startswith("[") else value.partition(":")[2]
    host = host_name(value)
    return ("loopback" if is_loopback(host) else host), port.lstrip(":")


class OriginCheckMiddleware:
    """Refuse cross-site requests and DNS rebinding, the two ways a web page reaches a local server.

    A request whose ``Origin`` names another site than its ``Host`` is refused (a page elsewhere could
    otherwise queue jobs, upload files or read the WebSocket); with ``allowed_hosts`` the ``Host``
    itself must be a name this server answers to, so a rebound DNS name cannot pose as same-origin
    (ui/hosts.py). ``serve`` always passes one; in-process apps (tests) may leave it None.
    """

    def __init__(self, app: Any, allowed_hosts: HostAllowList | None = None) -> None:
        self.app, self.allowed_hosts = app, allowed_hosts

    def _refusal(self, scope: dict) -> tuple[str, str] | None:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.allowed_hosts is not None and host and not self.allowed_hosts.allows(host):
            return "forbidden_host", (f"host {host!r} is not allowed (DNS rebinding guard); "
                                      "start the server with --allowed-hosts NAME to add it")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and host:
            netloc = origin.split("://", 1)[-1].split("/", 1)[0]
            if origin == "null" or _split_host(netloc) != _split_host(host):
                return "forbidden_origin", f"cross-origin request from {origin!r} refused"
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        reason = self._refusal(scope) if scope["type"] in ("http", "websocket") else None
        if reason is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        await _send_json(send, 403, _error_body(*reason))


# Top-level path segments that belong to the API: ComfyUI's route names (its server.py, user and
# internal routes, the frontend's probes), the /api prefix and the editor's /lg. A request under one
# of them that no route takes gets a JSON 404/405 instead of the Gradio editor's own answer.
API_NAMESPACES = frozenset((
    "api", "lg", "prompt", "queue", "history", "object_info", "system_stats", "view", "view_metadata",
    "upload", "interrupt", "free", "embeddings", "models", "extensions", "features", "settings", "users",
    "userdata", "v2", "i18n", "internal", "workflow_templates", "experiment", "global_subgraphs", "jobs",
    "templates", "ws"))
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def _is_catch_all(route: Any) -> bool:
    return isinstance(route, Mount) and route.path in ("", "/")


def _routed(router: Any, scope: dict) -> bool:
    """Does a route other than a catch-all mount (the editor) take this request?"""
    return any(route.matches(dict(scope))[0] is Match.FULL for route in router.routes if not _is_catch_all(route))


class ApiNotFound:
    """Wraps the editor's catch-all mount: what reaches it under an API namespace matched no API
    route, so it is answered as JSON — 405 with ``Allow`` when another method would match, else
    404 — and only non-API paths reach Gradio. Only misses pay for the method probe."""

    def __init__(self, app: Any, router: Any) -> None:
        self.app, self.router = app, router

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if path.strip("/").split("/", 1)[0] not in API_NAMESPACES:
            return await self.app(scope, receive, _json_404_in_error_shape(send, path))
        method = scope.get("method")
        allowed = [m for m in _METHODS if m != method and _routed(self.router, dict(scope, method=m))]
        if allowed:
            return await _send_json(send, 405, _error_body("method_not_allowed", f"{method} is not allowed on {path}"),
                                    [(b"allow", ", ".join(allowed).encode())])
        await _send_json(send, 404, _error_body("not_found", f"no API route {path}"))


def _json_404_in_error_shape(send: Any, path: str) -> Any:
    """Wraps `send` for the editor mount: its JSON 404 (Gradio's ``{"detail": "Not Found"}``) is
    re-sent in ComfyUI's error shape (``detail`` kept), so a client that reads ``error`` or calls
    ``.forEach`` on a list never meets a third shape. Pages and files pass through untouched."""
    held: dict | None = None

    async def wrapped(message: dict) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            ctype = dict(message.get("headers") or []).get(b"content-type", b"")
            if message["status"] == 404 and ctype.startswith(b"application/json"):
                held = message
                return
        elif held is not None and message["type"] == "http.response.body":
            if message.get("more_body"):
                return  # the short 404 body is replaced whole; nothing of it is needed
            body = _error_body("not_found", f"no route {path}")
            body["detail"] = "Not Found"
            await _send_json(send, 404, body)
            return
        await send(message)

    return wrapped


def _guard_api_paths(app: FastAPI) -> None:
    """Put ApiNotFound in front of every catch-all mount (the Gradio editor at ``/``)."""
    for route in app.router.routes:
        if _is_catch_all(route) and not isinstance(route.app, ApiNotFound):
            route.app = ApiNotFound(route.app, app.router)


class UnhandledErrorMiddleware:
    """Innermost guard: an exception escaping a route → JSON 500 + a log line, and the connection
    stays usable. Starlette's ``exception_handler(Exception)`` answers too but then re-raises, so
    the server dropped the connection after every 500."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, receive_failed = False, False

        async def tracking_receive() -> dict:
            nonlocal receive_failed
            try:
                return await receive()
            except BaseException:
                receive_failed = True
                raise

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, tracking_receive, tracking_send)
        except Exception as exc:
            if receive_failed:  # raised by an outer guard while reading the body (413): theirs to answer
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _send_json(send, 500, _error_body("internal_error", f"{type(exc).__name__}: {exc}"))


def _install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON in one shape; unexpected ones are logged with their traceback and
    answered without it (UnhandledErrorMiddleware, added here so it sits inside the other guards;
    unknown API paths: ApiNotFound, put in front of the editor by ``_mount_editor``)."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(exc.kind, exc.message), status_code=exc.status)

    @app.exception_handler(SubmitRejected)
    async def rejected(_: Request, exc: SubmitRejected) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_error_body(kind, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_error_body("invalid_request", str(exc.errors())[:2000]), status_code=400)

    @app.exception_handler(Exception)  # only errors raised in the outer guards get this far
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(_error_body("internal_error", f"{type(exc).__name__}: {exc}"), status_code=500)

    app.add_middleware(UnhandledErrorMiddleware)


def create_app(paths: Any, queue: Any, registry: Any, *, auth_token: str | None = None,
               executor: Any = None, start_queue: bool = True, editor: bool = True,
               allowed_hosts: HostAllowList | None = None) -> FastAPI:
    """The FastAPI app: API at ``/`` and ``/api``, ``/ws``, ``/lg-static``, editor at ``/`` (last).

    With ``start_queue`` the app starts the queue's worker on start-up and stops it on shutdown;
    ``allowed_hosts`` (always set by ``serve``) refuses any other Host header (DNS rebinding).
    """
    hub = WsHub(queue.queue_remaining)
    api = Api(paths, queue, registry, executor)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        hub.attach(asyncio.get_running_loop())
        queue.subscribe(hub.on_queue_event)
        if start_queue:
            queue.start()
        try:
            yield
        finally:
            await hub.close_all()
            if start_queue:
                await asyncio.to_thread(queue.stop, SHUTDOWN_GRACE)

    app = FastAPI(title="Latentgraph", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.hub, app.state.api = hub, api
    _install_error_handlers(app)
    frontend_routers = (user_router(paths.user_dir), jobs_router(queue), misc_router(paths))
    for prefix in ("", "/api"):
        app.include_router(api_router(api), prefix=prefix)
        app.include_router(file_router(paths), prefix=prefix)
        for router in frontend_routers:
            app.include_router(router, prefix=prefix)
        app.add_api_websocket_route(f"{prefix}/ws", hub.serve)
    app.include_router(internal_router(paths, hub), prefix="/internal")
    app.include_router(templates_router(registry))
    if STATIC_DIR.is_dir():
        from fastapi.staticfiles import StaticFiles
        app.mount("/lg-static", StaticFiles(directory=STATIC_DIR), name="lg-static")
    app.add_middleware(BodyLimitMiddleware)
    if auth_token:
        app.add_middleware(TokenAuthMiddleware, token=auth_token)
    app.add_middleware(OriginCheckMiddleware, allowed_hosts=allowed_hosts)  # outermost: runs first
    if editor:
        _mount_editor(app, paths, queue, registry)
    return app


def _mount_editor(app: FastAPI, paths: Any, queue: Any, registry: Any) -> None:
    """Mount the Gradio editor at ``/`` if its module (and gradio) can be imported."""
    try:
        from ui.editor_app import mount_editor
    except ImportError as exc:
        log.warning("editor not available (%s); serving the API only", exc)
        return
    try:
        mount_editor(app, paths=paths, queue=queue, registry=registry)
    except ImportError as exc:
        log.warning("editor not available (%s); serving the API only", exc)
    _guard_api_paths(app)


# ------------------------------------------------------------------------------------------------
# serve
# ------------------------------------------------------------------------------------------------
def bind_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, bad address), or None when it can."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot resolve --listen {host}: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                what = "already in use (is Latentgraph or ComfyUI running?)" if exc.errno == errno.EADDRINUSE \
                    else "not allowed for this user"
                return f"cannot listen on {host}:{port}: the port is {what}; choose another with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _warm_up() -> None:
    """Slow first-time imports, done while the user opens the page rather than on the first Queue."""
    try:
        from ldm.clip import preload_text_model_code

        preload_text_model_code()
    except Exception as exc:  # noqa: BLE001 — the prompt that needs it will report the real error
        logging.getLogger("latentgraph").debug("warm-up import failed: %s", exc)


class _Server(uvicorn.Server):
    """uvicorn's server, but SIGTERM / SIGINT first interrupts the running job, so that it stops
    while connections close rather than after them."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._on_signal()  # lock-free (JobQueue.halt): this runs inside a signal handler
        super().handle_exit(sig, frame)


def serve(services: Any, *, host: str = "127.0.0.1", port: int = 8188, token: str | None = None,
          allowed_hosts: Iterable[str] = (), allow_no_auth: bool = False, editor: bool = True) -> int:
    """Run the server on ``services`` (main.Services: paths, registry, executor, queue) until
    Ctrl-C / SIGTERM; the queue worker stops with it. 2 when a public address has no token (and
    no ``allow_no_auth``), 1 when the address cannot be bound. ``allowed_hosts`` adds Host names
    to the defaults of ui/hosts.py."""
    problem = listen_refusal(host, token, allow_no_auth)
    if problem:
        print(f"[latentgraph] error: {problem}", file=sys.stderr, flush=True)
        return 2
    problem = bind_problem(host, port)
    if problem:
        print(f"[latentgraph] error: {problem}", file=sys.stderr, flush=True)
        return 1
    warning = listen_warning(host, token)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    app = create_app(services.paths, services.queue, services.registry, auth_token=token,
                     executor=services.executor, allowed_hosts=HostAllowList.for_listen(host, allowed_hosts),
                     editor=editor)
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://[{local}]:{port}/" if ":" in local else f"http://{local}:{port}/"
    print(f"[latentgraph] serving on {url}" + (f" (listening on {host})" if local != host else "")
          + (" — open it once as /?token=YOUR_TOKEN" if token else ""), file=sys.stderr, flush=True)
    threading.Thread(target=_warm_up, name="latentgraph-warm-up", daemon=True).start()
    # Keep-alive as ComfyUI's aiohttp (75 s), not uvicorn's 5 s: a client that keeps a pooled
    # connection idle while it waits on the WebSocket must not race the server closing it.
    config = uvicorn.Config(app, host=host, port=port, ws="websockets-sansio", log_level="warning",
                            timeout_graceful_shutdown=SHUTDOWN_GRACE, timeout_keep_alive=75)
    server = _Server(config, on_signal=services.queue.halt)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its shutdown, which is done
        pass
    return 0 if server.started else 1
