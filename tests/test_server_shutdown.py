"""SIGTERM / Ctrl-C during a job: the job is interrupted and kept in history, the process exits in 5 s.

Both kinds of job: one whose node reaches an interrupt point every 0.1 s (LgSlow in many steps) and
one stuck in a node with no interrupt point for a minute (LgSlow in one step), while a WebSocket
client is connected (open connections used to hold the shutdown up).
"""
from __future__ import annotations

import signal
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.server_helpers import ServerProcess, stub_graph, wait_history, wait_running

EXIT_BOUND = 5.0  # seconds from the signal to the process being gone


@pytest.mark.parametrize("sig,steps", [(signal.SIGTERM, 600), (signal.SIGINT, 600), (signal.SIGTERM, 1)],
                         ids=["sigterm-stepping", "sigint-stepping", "sigterm-stuck-node"])
def test_stop_signal_mid_job_interrupts_it_and_exits_promptly(tmp_path, sig, steps):
    base = tmp_path / "srv"
    srv = ServerProcess(base).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30.0) as c, connect(srv.ws_url("watcher")) as ws:
            ws.recv(timeout=10)  # the initial status
            pid = c.post("/prompt", json={"prompt": stub_graph(3, seconds=60.0, steps=steps),
                                          "client_id": "watcher"}).json()["prompt_id"]
            later = c.post("/prompt", json={"prompt": stub_graph(4, prefix="later")}).json()["prompt_id"]
            wait_running(c, pid)
            srv.proc.send_signal(sig)
            deadline = time.monotonic() + EXIT_BOUND
            while srv.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not srv.alive(), f"still running {EXIT_BOUND} s after {sig.name}:\n{srv.log_tail()}"
    finally:
        srv.kill()
    again = ServerProcess(base).start()
    try:
        with httpx.Client(base_url=again.url, timeout=30.0) as c:
            entry = wait_history(c, pid)
            assert entry["status"]["completed"] is False
            stopped = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted"]
            assert stopped and stopped[0]["node_id"] == "2" and stopped[0]["node_type"] == "LgSlow"
            # the job queued behind it was not consumed by the shutdown: it runs now
            assert wait_history(c, later)["status"]["status_str"] == "success"
    finally:
        again.stop()
