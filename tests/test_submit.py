"""Submitting jobs (engine.submit) through POST /prompt: hostile bodies, validation done once.

The app is ``ui.server.create_app`` over the stub registry and a real ``JobQueue`` whose worker is
not started, so what a request stored can be read back from SQLite. After every refused body the
table must be exactly as before and the database must still open (issue 14: one request used to
store ``number = inf`` and break every later start).
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.events import Executing
from engine.executor import Executor
from engine.paths import Paths
from engine.queue import JobQueue
from engine.store import JobStore
from engine.submit import MAX_NUMBER, SubmitRejected, SubmitService, parse_request
from tests.stub_nodes import make_registry

REG = make_registry()
GRAPH = {"1": {"class_type": "StubInt", "inputs": {"value": 3}},
         "2": {"class_type": "StubOutput", "inputs": {"value": ["1", 0]}}}


def _paths(base: Path) -> Paths:
    p = Paths(base / "models", base / "input", base / "output", base / "temp", base / "user")
    p.ensure_dirs()
    return p


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    from ui.server import create_app

    paths = _paths(tmp_path_factory.mktemp("submit"))
    db = Path(paths.user_dir) / "latentgraph.db"
    queue = JobQueue(db, Executor(REG, paths))
    app = create_app(paths, queue, REG, start_queue=False, editor=False)
    yield app, queue, db
    queue.close()


@pytest.fixture
def client(app_env):
    from fastapi.testclient import TestClient

    app, queue, _ = app_env
    with TestClient(app) as c:  # raise_server_exceptions: a 500 must not even be raised
        yield c
    queue.clear()
    queue.clear_history()


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT prompt_id, number, status FROM jobs WHERE status != 'cancelled'").fetchall()


def _raw(obj: object) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


HOSTILE = [  # (name, raw body, expected status, expected error type or None)
    ("number 1e999", b'{"prompt": %s, "number": 1e999}', 400, "invalid_json"),
    ("number -1e999", b'{"prompt": %s, "number": -1e999}', 400, "invalid_json"),
    ("number Infinity", b'{"prompt": %s, "number": Infinity}', 400, "invalid_json"),
    ("number NaN", b'{"prompt": %s, "number": NaN}', 400, "invalid_json"),
    ("number 2**70", b'{"prompt": %s, "number": 1180591620717411303424}', 400, "invalid_prompt"),
    ("number beyond 2**53", b'{"prompt": %s, "number": 9007199254740992}', 400, "invalid_prompt"),
    ("number 1e300", b'{"prompt": %s, "number": 1e300}', 400, "invalid_prompt"),
    ("number a string", b'{"prompt": %s, "number": "5"}', 400, "invalid_prompt"),
    ("number a bool", b'{"prompt": %s, "number": true}', 400, "invalid_prompt"),
    ("huge int in extra_data", b'{"prompt": %s, "extra_data": {"x": ' + b"9" * 5000 + b"}}", 400, "invalid_json"),
    ("huge int in the prompt", b'{"prompt": {"1": {"class_type": "StubInt", "inputs": {"value": '
     + b"9" * 5000 + b"}}}}", 400, "invalid_json"),
    ("NaN in a widget", b'{"prompt": {"1": {"class_type": "StubInt", "inputs": {"value": NaN}}}}', 400, "invalid_json"),
    ("deep nesting (RecursionError)", b'{"prompt": %s, "extra_data": {"x": ' + b"[" * 100000 + b"]" * 100000 + b"}}",
     400, "invalid_json"),
    ("deep nesting under the limit", b'{"prompt": %s, "extra_data": {"x": ' + b"[" * 500 + b"]" * 500 + b"}}",
     400, "invalid_prompt"),
    ("body a list", b"[1, 2]", 400, "invalid_prompt"),
    ("body a string", b'"hello"', 400, "invalid_prompt"),
    ("body a number", b"12", 400, "invalid_prompt"),
    ("body null", b"null", 400, "invalid_prompt"),
    ("body empty", b"", 400, "invalid_json"),
    ("body not utf-8", b'{"prompt": "\xff"}', 400, "invalid_json"),
    ("lone surrogate in a widget", b'{"prompt": {"1": {"class_type": "StubInt", "inputs": {"value": "\\ud800"}}}}',
     400, "invalid_prompt"),
    ("lone surrogate in a key", b'{"prompt": %s, "extra_data": {"\\udfff": 1}}', 400, "invalid_prompt"),
    ("no prompt", b'{"client_id": "c"}', 400, "no_prompt"),
    ("prompt a list", b'{"prompt": [1]}', 400, "invalid_prompt"),
    ("client_id a number", b'{"prompt": %s, "client_id": 5}', 400, "invalid_prompt"),
    ("client_id an object", b'{"prompt": %s, "client_id": {"a": 1}}', 400, "invalid_prompt"),
    ("prompt_id an object", b'{"prompt": %s, "prompt_id": {"a": 1}}', 400, "invalid_prompt"),
    ("prompt_id a bool", b'{"prompt": %s, "prompt_id": true}', 400, "invalid_prompt"),
    ("prompt_id blank", b'{"prompt": %s, "prompt_id": "  "}', 400, "invalid_prompt"),
    ("prompt_id too long", b'{"prompt": %s, "prompt_id": "' + b"x" * 201 + b'"}', 400, "invalid_prompt"),
    ("prompt_id with a newline", b'{"prompt": %s, "prompt_id": "a\\nb"}', 400, "invalid_prompt"),
    ("extra_data a list", b'{"prompt": %s, "extra_data": [1]}', 400, "invalid_prompt"),
    ("extra_data a string", b'{"prompt": %s, "extra_data": "x"}', 400, "invalid_prompt"),
    ("targets a string", b'{"prompt": %s, "partial_execution_targets": "2"}', 400, "invalid_prompt"),
    ("targets of objects", b'{"prompt": %s, "partial_execution_targets": [{"a": 1}]}', 400, "invalid_prompt"),
    ("targets of floats", b'{"prompt": %s, "partial_execution_targets": [2.5]}', 400, "invalid_prompt"),
    ("front a string", b'{"prompt": %s, "front": "yes"}', 400, "invalid_prompt"),
    ("unknown class", b'{"prompt": {"1": {"class_type": "Nope", "inputs": {}}, "2": {"class_type": "StubOutput",'
     b' "inputs": {"value": ["1", 0]}}}}', 400, "missing_node_type"),
    ("node not an object", b'{"prompt": {"1": 5}}', 400, "prompt_no_outputs"),
]


@pytest.mark.parametrize("name,raw,status,kind", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_prompt_bodies_are_refused_before_anything_is_stored(app_env, client, name, raw, status, kind):
    _, _, db = app_env
    body = raw.replace(b"%s", json.dumps(GRAPH).encode()) if b"%s" in raw else raw
    r = client.post("/prompt", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text[:300]
    answer = r.json()
    assert set(answer["error"]) == {"type", "message", "details", "extra_info"} and "node_errors" in answer
    assert answer["error"]["type"] == kind, answer
    assert _rows(db) == []
    JobStore(db).close()  # the database still opens
    assert client.post("/prompt", json={"prompt": GRAPH}).status_code == 200  # and the server still serves


def test_comfyui_number_and_front_semantics(app_env, client):
    _, queue, _ = app_env
    a = client.post("/prompt", json={"prompt": GRAPH}).json()
    b = client.post("/prompt", json={"prompt": GRAPH, "front": True}).json()
    c = client.post("/prompt", json={"prompt": GRAPH, "number": 1e9 + 0.5, "front": True}).json()  # front ignored
    d = client.post("/prompt", json={"prompt": GRAPH, "number": -MAX_NUMBER}).json()
    assert b["number"] < 0 < a["number"] and c["number"] == 1e9 + 0.5 and d["number"] == -MAX_NUMBER
    pending = [item[1] for item in client.get("/queue").json()["queue_pending"]]
    assert pending == [d["prompt_id"], b["prompt_id"], a["prompt_id"], c["prompt_id"]]
    e = client.post("/prompt", json={"prompt": GRAPH, "client_id": "cli", "prompt_id": 42,
                                     "partial_execution_targets": [2], "extra_data": {"k": 1}}).json()
    job = queue.job("42")
    assert e["prompt_id"] == "42" and job.extra_data == {"k": 1, "client_id": "cli"} and job.targets == ["2"]
    dup = client.post("/prompt", json={"prompt": GRAPH, "prompt_id": "42"})
    assert dup.status_code == 400 and dup.json()["error"]["type"] == "invalid_prompt"


def test_the_store_refuses_what_the_service_would_have(tmp_path):
    from engine.store import Counter

    store = JobStore(tmp_path / "s.db")
    base = dict(front=False, counter=Counter(1), prompt={}, extra_data={}, client_id=None, targets=None,
                outputs_to_execute=[])
    for i, bad in enumerate([float("inf"), float("nan"), 2 ** 70, -(2 ** 63), "3", True]):
        with pytest.raises(ValueError):
            store.insert(prompt_id=f"n{i}", number=bad, **base)
    with pytest.raises(ValueError):
        store.insert(prompt_id="p", number=None, **dict(base, extra_data={"x": float("nan")}))
    assert store.by_status("pending") == []
    store.insert(prompt_id="ok", number=None, **base)
    store.finish("ok", status="success", outputs={"1": {"v": [float("inf"), 1.5]}}, messages=[],
                 error=None, timings={"t": float("nan")})  # a result is never lost: NaN/inf → null
    job = store.get("ok")
    assert job.outputs == {"1": {"v": [None, 1.5]}} and job.timings == {"t": None}
    store.close()


def _finished(event: Executing) -> bool:
    """The completion signal, sent after the job's result is saved."""
    return isinstance(event, Executing) and event.node is None


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
    queue.subscribe(lambda event, _job: _finished(event) and done.set())
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
    second.subscribe(lambda event, _job: _finished(event) and done.set())
    second.start()
    assert done.wait(30)
    assert second.job("later").status == "success" and at_run.calls == 1
    second.close()


@pytest.mark.parametrize("field,value", [("client_id", 5), ("number", 2 ** 60)])
def test_parse_request_names_the_field_at_fault(field, value):
    with pytest.raises(SubmitRejected) as info:
        parse_request({"prompt": GRAPH, field: value})
    assert info.value.status == 400 and info.value.body["error"]["message"].startswith(f"Invalid prompt: {field}:")
    assert parse_request({"prompt": GRAPH, "prompt_id": 5, "unknown_key": 1}).prompt_id == "5"


# -- hypothesis: mutated /prompt bodies never get a 5xx ---------------------------------------
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 80), max_value=2 ** 80),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
FIELDS = ["prompt", "client_id", "prompt_id", "number", "front", "extra_data", "partial_execution_targets"]


@st.composite
def mutated_bodies(draw) -> object:
    body: dict = {"prompt": json.loads(json.dumps(GRAPH)), "client_id": "c"}
    for field in draw(st.lists(st.sampled_from(FIELDS + ["inputs", "class_type"]), max_size=3)):
        value = draw(JSON_VALUE)
        if field in ("inputs", "class_type"):  # reach into a node
            node = body["prompt"].get("1") if isinstance(body.get("prompt"), dict) else None
            if isinstance(node, dict):
                node[field] = value
        else:
            body[field] = value
    return draw(st.one_of(st.just(body), JSON_VALUE)) if draw(st.integers(0, 9)) == 0 else body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutated_bodies())
def test_mutated_prompt_bodies_never_get_a_5xx(app_env, client, body):
    _, queue, db = app_env
    r = client.post("/prompt", content=_raw(body), headers={"content-type": "application/json"})
    assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    answer = r.json()
    assert ("prompt_id" in answer) if r.status_code == 200 else answer["error"]["type"]
    JobStore(db).close()
    queue.clear()
