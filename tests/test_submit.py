"""Submitting jobs (engine.submit): one service for POST /prompt and /lg/queue, validation done once."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.executor import Executor
from engine.paths import Paths
from engine.queue import JobQueue
from engine.submit import SubmitRejected, SubmitService, parse_request
from tests.stub_nodes import make_registry

REG = make_registry()
GRAPH = {"1": {"class_type": "StubInt", "inputs": {"value": 3}},
         "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}}}


def _paths(base: Path) -> Paths:
    p = Paths(base / "models", base / "input", base / "output", base / "temp", base / "user")
    p.ensure_dirs()
    return p


def _finished(event: str, data: dict) -> bool:
    """The completion signal, sent after the job's result is saved."""
    return event == "executing" and data.get("node") is None


class _CountingValidate:
    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


def test_a_prompt_is_validated_once_and_again_only_after_a_restart(tmp_path, monkeypatch):
    import engine.executor
    import engine.submit

    at_submit = _CountingValidate(engine.submit.validate)
    at_run = _CountingValidate(engine.executor.validate)
    monkeypatch.setattr(engine.submit, "validate", at_submit)
    monkeypatch.setattr(engine.executor, "validate", at_run)
    paths = _paths(tmp_path)
    queue = JobQueue(tmp_path / "v.db", Executor(REG, paths))
    done = threading.Event()
    queue.subscribe(lambda event, data, _cid: _finished(event, data) and done.set())
    service = SubmitService(queue, REG, paths)
    pid = service.submit({"prompt": GRAPH})["prompt_id"]
    pending = service.submit({"prompt": GRAPH, "number": 99})["prompt_id"]
    queue.delete([pending])
    queue.start()
    assert done.wait(30)
    assert queue.job(pid).status == "success" and at_submit.calls == 2 and at_run.calls == 0
    queue.close()
    assert queue._validated == {}  # nothing kept for the cancelled job either

    first = JobQueue(tmp_path / "w.db", Executor(REG, paths))
    SubmitService(first, REG, paths).submit({"prompt": GRAPH, "prompt_id": "later"})
    first.store.close()  # "restart" before it ran: the next process must validate it itself
    second = JobQueue(tmp_path / "w.db", Executor(REG, paths))
    done.clear()
    second.subscribe(lambda event, data, _cid: _finished(event, data) and done.set())
    second.start()
    assert done.wait(30)
    assert second.job("later").status == "success" and at_run.calls == 1
    second.close()


@pytest.mark.parametrize("field,value", [("client_id", 5)])
def test_parse_request_names_the_field_at_fault(field, value):
    with pytest.raises(SubmitRejected) as info:
        parse_request({"prompt": GRAPH, field: value})
    assert info.value.status == 400 and info.value.body["error"]["message"].startswith(f"Invalid prompt: {field}:")
    assert parse_request({"prompt": GRAPH, "prompt_id": 5, "unknown_key": 1}).prompt_id == "5"
