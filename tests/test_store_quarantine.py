"""One bad stored row never stops the server: opening the store quarantines it as a failed job.

Rows are planted with plain SQL, as a hand edit, an old bug (issue 14 stored ``number = inf``) or a
damaged disk would leave them; then the queue is opened and started as the server does.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from engine.events import Executing
from engine.executor import Executor
from engine.paths import Paths
from engine.queue import JobQueue
from engine.store import QUARANTINE_TYPE, JobStore
from tests.stub_nodes import make_registry

REG = make_registry()
GRAPH = json.dumps({"1": {"class_type": "StubInt", "inputs": {"value": 3}},
                    "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}}})
COLUMNS = "prompt_id, number, status, prompt, extra_data, outputs_to_execute, created"
BAD_ROWS = {  # prompt_id: (SQL values after the prompt_id, what the message must name)
    "inf": ("1e999, 'pending', :g, '{}', '[]', 1.0", "number inf"),
    "minus-inf": ("-1e999, 'success', :g, '{}', '[]', 1.0", "number -inf"),
    "text-number": ("'soon', 'pending', :g, '{}', '[]', 1.0", "number 'soon'"),
    "int64-min": ("-9223372036854775808, 'pending', :g, '{}', '[]', 1.0", "number -9223372036854775808"),
    "huge-real": ("1e300, 'pending', :g, '{}', '[]', 1.0", "number 1e+300"),
    "bad-json": ("5, 'pending', '{\"1\": ', '{}', '[]', 1.0", "prompt is not valid JSON"),
    "wrong-type": ("6, 'success', :g, '[1, 2]', '[]', 1.0", "extra_data is a list"),
    "odd-status": ("7, 'exploded', :g, '{}', '[]', 1.0", "status 'exploded'"),
    "text-created": ("8, 'running', :g, '{}', '[]', 'yesterday'", "created time 'yesterday'"),
    "nan-json": ("9, 'pending', :g, '{}', 'NaN', 1.0", "outputs_to_execute is a float"),
}


def _plant(db: Path) -> None:
    JobStore(db).close()  # the schema
    with sqlite3.connect(db) as conn:
        for pid, (values, _) in BAD_ROWS.items():
            conn.execute(f"INSERT INTO jobs ({COLUMNS}) VALUES ('{pid}', {values})", {"g": GRAPH})
        conn.execute(f"INSERT INTO jobs ({COLUMNS}) VALUES ('good', 3, 'pending', :g, '{{}}', '[]', 1.0)",
                     {"g": GRAPH})


def test_bad_rows_are_quarantined_and_the_queue_starts(tmp_path):
    db = tmp_path / "user" / "latentgraph.db"
    _plant(db)
    paths = Paths(tmp_path / "m", tmp_path / "i", tmp_path / "o", tmp_path / "t", tmp_path / "user")
    paths.ensure_dirs()
    queue = JobQueue(db, Executor(REG, paths))
    assert sorted(queue.store.quarantined) == sorted(BAD_ROWS)
    done = threading.Event()
    queue.subscribe(lambda event, _job: isinstance(event, Executing) and event.node is None
                    and event.prompt_id == "good" and done.set())
    queue.start()
    assert done.wait(30)
    assert queue.job("good").status == "success"
    history = queue.history()
    for pid, (_, named) in BAD_ROWS.items():
        entry = history[pid]
        assert entry["status"]["status_str"] == "error" and entry["prompt"][1] == pid
        error = queue.job(pid).error
        assert error["exception_type"] == QUARANTINE_TYPE and named in error["exception_message"], error
        assert entry["status"]["messages"][-1][0] == "execution_error"
    running, pending = queue.queue()
    assert running == [] and pending == []
    json.dumps(history, allow_nan=False)  # everything reads back as plain JSON
    queue.close()
    again = JobStore(db)  # a second start finds nothing left to do
    assert again.quarantined == [] and again.max_abs_number() == 9
    again.close()


@pytest.mark.parametrize("number,expected", [(2 ** 62, 2 ** 62), (-(2 ** 63 - 1), 2 ** 63 - 1), (1.5e6, 1500000)])
def test_the_counter_continues_after_extreme_but_valid_numbers(tmp_path, number, expected):
    from engine.store import Counter

    store = JobStore(tmp_path / "c.db")
    store.insert(prompt_id="x", number=number, front=False, counter=Counter(1), prompt={}, extra_data={},
                 client_id=None, targets=None, outputs_to_execute=[])
    store.close()
    reopened = JobStore(tmp_path / "c.db")
    assert reopened.quarantined == [] and reopened.max_abs_number() == expected
    reopened.close()
