"""Who may reach the server: public binds need a token, and the Host allow-list stops DNS rebinding.

Everything goes through the real CLI (`python main.py serve`, tests.server_helpers.ServerProcess).
DNS rebinding = a page on evil.example re-points its name at this machine: its requests carry
``Host: evil.example`` and a matching ``Origin``, so only the Host name gives them away.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.server_helpers import ROOT, ServerProcess


def _rebound(port: int) -> dict:
    return {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}


def test_public_bind_without_token_refuses_to_start(tmp_path):
    srv = ServerProcess(tmp_path, extra_args=["--listen", "0.0.0.0"], stubs=False)
    done = subprocess.run(srv.command(), cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--auth-token" in done.stderr and "--allow-no-auth" in done.stderr
    with socket.socket() as probe:  # nothing was bound
        probe.bind(("0.0.0.0", srv.port))


def test_serve_help_documents_the_guards():
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "serve", "--help"], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)
    for flag in ("--allow-no-auth", "--allowed-hosts", "DNS", "rebinding"):
        assert flag in done.stdout


@pytest.fixture(scope="module")
def open_public(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("pub"),
                        extra_args=["--listen", "0.0.0.0", "--allow-no-auth", "--allowed-hosts", "studio.lan"])
    srv.start()
    yield srv
    srv.stop()


def test_public_bind_without_auth_warns_loudly(open_public):
    log = open_public.log_tail(20000)
    assert "NO authentication" in log and "WARNING" in log


def test_public_bind_refuses_rebound_names(open_public):
    port = open_public.port
    with httpx.Client(base_url=open_public.url, timeout=30.0) as c:
        refused = c.get("/queue", headers=_rebound(port))
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "forbidden_host"
        assert c.post("/prompt", json={"prompt": {}}, headers=_rebound(port)).status_code == 403
        for host in ("studio.lan", socket.gethostname(), "192.0.2.7", "127.0.0.1", "localhost"):
            assert c.get("/queue", headers={"Host": f"{host}:{port}"}).status_code == 200, host

    async def ws_check() -> None:
        with pytest.raises(InvalidStatus):
            async with websockets.connect(open_public.ws_url("x"), additional_headers=_rebound(port)):
                pass

    asyncio.run(ws_check())


@pytest.fixture(scope="module")
def loopback_token(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("lo"), auth_token="tok-123",
                        extra_args=["--allowed-hosts", "proxy.test"])
    srv.start()
    yield srv
    srv.stop()


def test_loopback_bind_answers_loopback_and_listed_names_only(loopback_token):
    port = loopback_token.port
    with httpx.Client(base_url=loopback_token.url, timeout=30.0, headers=loopback_token.headers()) as c:
        # the allow-list applies even with a valid token
        assert c.get("/queue", headers={"Host": f"evil.example:{port}"}).status_code == 403
        assert c.get("/queue", headers={"Host": f"192.0.2.7:{port}"}).status_code == 403
        for host in ("proxy.test", "localhost", "127.0.0.1", "[::1]"):
            assert c.get("/queue", headers={"Host": f"{host}:{port}"}).status_code == 200, host
