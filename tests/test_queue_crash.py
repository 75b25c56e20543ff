"""Crash safety: a process killed with SIGKILL mid-job leaves a queue that recovers on restart."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from engine.queue import RESTART_MESSAGE, JobQueue

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from engine.queue import JobQueue

    class Slow:
        def execute(self, prompt, *, prompt_id, extra_data=None, targets=None, emit, interrupt, validation=None):
            print("RUNNING", prompt_id, flush=True)
            time.sleep(60)

    q = JobQueue(sys.argv[1], Slow())
    for i in (1, 2, 3):
        q.submit({"job": i}, prompt_id=f"job{i}")
    q.start()
    time.sleep(120)
""")


class Quick:
    def __init__(self) -> None:
        self.ran: list[str] = []

    def execute(self, prompt, *, prompt_id, extra_data=None, targets=None, emit, interrupt, validation=None):
        self.ran.append(prompt_id)

        class R:
            status = "success"
            outputs = {"7": {"text": [str(prompt["job"])]}}
            error = None
            messages = [["execution_success", {"prompt_id": prompt_id}]]
            timings = {}
        return R()


def test_sigkill_during_a_job_then_restart(tmp_path):
    db = tmp_path / "user" / "latentgraph.db"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(ROOT)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.split() == ["RUNNING", "job1"], proc.stderr.read() if not line else line
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    ex = Quick()
    q = JobQueue(db, ex)
    try:
        assert q.queue()[0][0][1] == "job1"  # still marked running on disk before recovery
        assert q.recover() == ["job1"]
        entry = q.history_item("job1")["job1"]
        assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
        assert entry["status"]["messages"][-1][1]["exception_message"] == RESTART_MESSAGE
        assert entry["prompt"][2] == {"job": 1}
        running, pending = q.queue()
        assert running == [] and [i[1] for i in pending] == ["job2", "job3"]
        q.start()
        end = time.monotonic() + 10
        while q.queue_remaining() and time.monotonic() < end:
            time.sleep(0.01)
        assert ex.ran == ["job2", "job3"]
        hist = q.history()
        assert list(hist) == ["job1", "job2", "job3"]
        assert hist["job3"]["status"]["status_str"] == "success"
        assert hist["job3"]["outputs"] == {"7": {"text": ["3"]}}
        assert q.job("job1").error["exception_message"] == RESTART_MESSAGE
    finally:
        q.close()
