"""JobQueue behaviour: ordering, cancellation, interrupt, history shape and paging, concurrency."""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field

import pytest

from engine.events import ExecutionInterrupted, ExecutionStart, Executed, Executing
from engine.queue import INTERRUPTED, SUCCESS, JobQueue


@dataclass
class Result:
    status: str
    outputs: dict = field(default_factory=dict)
    error: dict | None = None
    messages: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)


class FakeExecutor:
    """Records the order of execution; a job whose prompt has "block" waits for the gate or an interrupt."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        self.lock = threading.Lock()

    def execute(self, prompt, *, prompt_id, extra_data=None, targets=None, emit, interrupt, validation=None):
        emit(ExecutionStart(prompt_id, 0))
        msgs = [["execution_start", {"prompt_id": prompt_id, "timestamp": 0}]]
        if prompt.get("block"):
            self.started.set()
            while not self.gate.is_set():
                if interrupt.wait(0.01):
                    stopped = ExecutionInterrupted(prompt_id, "1", "Slow", [])
                    emit(stopped)
                    emit(Executing(None, prompt_id))
                    return Result("interrupted", messages=msgs + [stopped.message()])
        if prompt.get("fail"):
            err = {"prompt_id": prompt_id, "exception_message": "boom"}
            return Result("error", error=err, messages=msgs + [["execution_error", err]])
        with self.lock:
            self.ran.append(prompt_id)
        out = {"9": {"images": [{"filename": f"{prompt_id}.png", "subfolder": "", "type": "output"}]}}
        emit(Executed("9", out["9"], prompt_id))
        emit(Executing(None, prompt_id))
        return Result("success", outputs=out,
                      messages=msgs + [["execution_success", {"prompt_id": prompt_id}]],
                      timings={"9": 0.001})


def wait_until(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def q(tmp_path):
    ex = FakeExecutor()
    queue = JobQueue(tmp_path / "lg.db", ex)
    yield queue
    ex.gate.set()
    queue.close()


def test_submit_returns_ids_numbers_and_honours_client_prompt_id(q):
    pid, n1 = q.submit({"a": 1}, prompt_id="mine")
    pid2, n2 = q.submit({"a": 2})
    assert pid == "mine" and n2 == n1 + 1 and len(pid2) == 36
    with pytest.raises(ValueError):
        q.submit({"a": 3}, prompt_id="mine")
    running, pending = q.queue()
    assert running == [] and [i[1] for i in pending] == ["mine", pid2]
    assert pending[0] == [n1, "mine", {"a": 1}, {}, []]


def test_front_of_queue_runs_next_and_explicit_numbers_order(q):
    ids = [q.submit({"i": i})[0] for i in range(3)]
    front, num = q.submit({"front": 1}, front=True)
    assert num < 0
    front2, num2 = q.submit({"front": 2}, front=True)
    assert num2 < num  # a later front job goes before the earlier one (ComfyUI: -counter)
    late, _ = q.submit({"late": 1}, number=-1000)
    _, pending = q.queue()
    assert [i[1] for i in pending] == [late, front2, front] + ids
    q.start()
    assert wait_until(lambda: len(q.executor.ran) == 6)
    assert q.executor.ran == [late, front2, front] + ids


def test_delete_and_clear_cancel_pending_only(q):
    a, _ = q.submit({"block": 1})
    b, _ = q.submit({"x": 1})
    c, _ = q.submit({"x": 2})
    d, _ = q.submit({"x": 3})
    q.start()
    assert q.executor.started.wait(5)
    assert q.delete([b, "unknown", a]) == [b]  # the running job cannot be deleted
    assert q.delete(b) == []  # a single id is accepted; already cancelled
    running, pending = q.queue()
    assert [i[1] for i in running] == [a] and [i[1] for i in pending] == [c, d]
    assert q.clear() == [c, d]
    assert q.queue()[1] == [] and q.queue_remaining() == 1
    q.executor.gate.set()
    assert wait_until(lambda: q.queue_remaining() == 0)
    assert q.executor.ran == [a]
    assert list(q.history()) == [a]
    assert q.job(b).status == "cancelled"


def test_interrupt_only_the_matching_running_job(q):
    a, _ = q.submit({"block": 1}, extra_data={"client_id": "c1"}, targets=["9"])
    b, _ = q.submit({"x": 1})
    q.start()
    assert q.executor.started.wait(5)
    assert q.interrupt(prompt_id=b) is False  # pending, not running: nothing happens
    assert q.interrupt(prompt_id=a) is True
    assert wait_until(lambda: b in q.history())
    h = q.history_item(a)[a]
    assert h["status"]["status_str"] == "error" and h["status"]["completed"] is False
    assert h["status"]["messages"][-1][0] == "execution_interrupted"
    assert h["prompt"] == [h["prompt"][0], a, {"block": 1}, {"client_id": "c1"}, ["9"]]
    assert q.job(a).status == INTERRUPTED and q.job(b).status == SUCCESS
    assert q.interrupt() is False  # nothing running any more


def test_history_shape_errors_and_paging(q):
    ids = [q.submit({"i": i})[0] for i in range(5)]
    bad, _ = q.submit({"fail": 1})
    q.start()
    assert wait_until(lambda: len(q.history()) == 6)
    hist = q.history()
    assert list(hist) == ids + [bad]  # oldest first
    ok = hist[ids[0]]
    assert ok["status"] == {"status_str": "success", "completed": True,
                            "messages": ok["status"]["messages"]}
    assert ok["outputs"]["9"]["images"][0]["filename"] == f"{ids[0]}.png"
    assert ok["meta"]["9"] == {"node_id": "9", "display_node": "9", "parent_node": None,
                               "real_node_id": "9"}
    assert hist[bad]["status"]["status_str"] == "error"
    assert q.job(bad).error == {"prompt_id": bad, "exception_message": "boom"}
    assert list(q.history(max_items=2)) == [ids[4], bad]
    assert list(q.history(max_items=2, offset=2)) == [ids[2], ids[3]]
    assert list(q.history(max_items=10, offset=5)) == [ids[0]]
    assert q.history_item("nope") == {}
    assert q.delete_history([ids[0], ids[1]]) == 2
    assert list(q.history()) == ids[2:] + [bad]
    assert q.clear_history() == 4 and q.history() == {}


def test_events_reach_listeners_with_client_id_and_status_broadcasts(q):
    got = []
    unsubscribe = q.subscribe(lambda ev, job: got.append((ev.type, ev.data, job and job.client_id)))
    q.subscribe(lambda ev, job: 1 / 0)  # a broken listener must not break the queue
    pid, _ = q.submit({"x": 1}, client_id="client-7")
    q.start()
    assert wait_until(lambda: pid in q.history())
    # ComfyUI's order: the job is saved, `status` goes out, then the completion signal
    assert wait_until(lambda: got and got[-1][0] == "executing" and got[-1][1]["node"] is None)
    assert got[-2][0] == "status"
    statuses = [d["status"]["exec_info"]["queue_remaining"] for ev, d, c in got if ev == "status"]
    assert statuses[0] == 1 and statuses[-1] == 0
    assert all(c is None for ev, d, c in got if ev == "status")
    job_events = [(ev, c) for ev, d, c in got if ev != "status"]
    assert job_events == [("execution_start", "client-7"), ("executed", "client-7"),
                          ("executing", "client-7")]
    unsubscribe()
    n = len(got)
    q.submit({"x": 2})
    assert wait_until(lambda: q.queue_remaining() == 0)
    assert len(got) == n


def test_executor_exception_is_recorded_as_error(tmp_path):
    class Raising:
        def execute(self, prompt, **kw):
            raise RuntimeError("executor bug")

    queue = JobQueue(tmp_path / "x.db", Raising())
    pid, _ = queue.submit({})
    queue.start()
    try:
        assert wait_until(lambda: pid in queue.history())
        entry = queue.history_item(pid)[pid]
        assert entry["status"]["status_str"] == "error"
        assert entry["status"]["messages"][0][1]["exception_message"] == "executor bug"
    finally:
        queue.close()


def test_fifty_concurrent_submitters_and_pollers(q, tmp_path):
    q.start()
    submitted: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        try:
            for j in range(4):
                pid, _ = q.submit({"k": k, "j": j}, front=(j == 2))
                with lock:
                    submitted.append(pid)
                q.queue()
                q.history(max_items=5)
                q.queue_remaining()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(submitted) == 200 == len(set(submitted))
    assert wait_until(lambda: q.queue_remaining() == 0, timeout=60)
    hist = q.history()
    assert sorted(hist) == sorted(submitted)
    assert sorted(q.executor.ran) == sorted(submitted)  # each ran exactly once
    with sqlite3.connect(q.store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 200


def test_numbers_continue_after_reopen(tmp_path):
    ex = FakeExecutor()
    first = JobQueue(tmp_path / "n.db", ex)
    _, n1 = first.submit({})
    first.close()
    second = JobQueue(tmp_path / "n.db", ex)
    try:
        _, n2 = second.submit({})
        assert n2 > n1
        assert len(second.queue()[1]) == 2
    finally:
        second.close()


def test_real_executor_success_error_and_interrupt(tmp_path):
    """The queue over engine.executor.Executor with the shared stub nodes (no torch)."""
    from engine.executor import Executor
    from engine.paths import Paths
    from tests.stub_nodes import make_registry

    paths = Paths(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "u")
    paths.ensure_dirs()
    queue = JobQueue(paths.user_dir / "latentgraph.db", Executor(make_registry(), paths))
    events = []
    queue.subscribe(lambda ev, job: events.append((ev.type, ev.data, job and job.client_id)))
    ok = {"1": {"class_type": "StubInt", "inputs": {"value": 3}},
          "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}}}
    bad = {"1": {"class_type": "StubInt", "inputs": {"value": 3}},
           "2": {"class_type": "StubFail", "inputs": {"value": ["1", 0], "fail": True}},
           "3": {"class_type": "StubOutput", "inputs": {"value": ["2", 0]}}}
    slow = {"1": {"class_type": "StubInt", "inputs": {"value": 4}},
            "2": {"class_type": "StubSleep", "inputs": {"value": ["1", 0], "seconds": 0.05, "steps": 100}},
            "3": {"class_type": "StubOutput", "inputs": {"value": ["2", 0]}}}
    a, _ = queue.submit(ok, client_id="me", outputs_to_execute=["2"])
    b, _ = queue.submit(bad)
    c, _ = queue.submit(slow)
    queue.start()
    try:
        assert wait_until(lambda: any(ev == "progress" and d["prompt_id"] == c for ev, d, _ in events))
        assert queue.interrupt(c)
        assert wait_until(lambda: queue.queue_remaining() == 0)
        hist = queue.history()
        assert list(hist) == [a, b, c]
        assert hist[a]["outputs"] == {"2": {"text": ["3"]}} and hist[a]["prompt"][4] == ["2"]
        assert hist[a]["status"]["status_str"] == "success" and hist[a]["status"]["completed"]
        assert [m[0] for m in hist[a]["status"]["messages"]][-1] == "execution_success"
        assert hist[b]["status"]["status_str"] == "error"
        assert hist[b]["status"]["messages"][-1][0] == "execution_error"
        assert hist[c]["status"]["status_str"] == "error"
        assert hist[c]["status"]["messages"][-1][0] == "execution_interrupted"
        assert (queue.job(a).status, queue.job(b).status, queue.job(c).status) == (
            "success", "error", "interrupted")
        assert ("executing", {"node": None, "display_node": None, "prompt_id": a}, "me") in events
    finally:
        queue.close()


def test_client_float_number_orders_between_integers(q):
    a, na = q.submit({"a": 1})
    b, nb = q.submit({"b": 1})
    c, nc = q.submit({"c": 1}, number=na + 0.5)
    assert nc == na + 0.5 and isinstance(na, int)
    assert [i[1] for i in q.queue()[1]] == [a, c, b]


def test_unserialisable_ui_values_are_still_recorded(tmp_path):
    from pathlib import Path

    class Odd:
        def execute(self, prompt, **kw):
            return Result("success", outputs={"1": {"file": [Path("a.png")]}})

    queue = JobQueue(tmp_path / "odd.db", Odd())
    pid, _ = queue.submit({})
    queue.start()
    try:
        assert wait_until(lambda: pid in queue.history())
        assert queue.history_item(pid)[pid]["outputs"] == {"1": {"file": [repr(Path("a.png"))]}}
    finally:
        queue.close()


def test_history_keeps_only_the_newest_max_history_jobs(tmp_path):
    ex = FakeExecutor()
    queue = JobQueue(tmp_path / "h.db", ex, max_history=3)
    ids = [queue.submit({"i": i})[0] for i in range(5)]
    queue.start()
    try:
        assert wait_until(lambda: len(ex.ran) == 5 and queue.queue_remaining() == 0)
        assert list(queue.history()) == ids[2:]
        assert queue.job(ids[0]) is None
    finally:
        queue.close()
