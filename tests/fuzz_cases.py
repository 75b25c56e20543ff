"""Seeded mutation fuzzing shared by tests/test_reliability_*.py and bench/bench_reliability.py.

Cases are raw bytes, not Python objects, so they can say what ``json.dumps`` cannot: ``1e999``,
``NaN``, 5000-digit integers, lone surrogates, 10,000-deep nesting, truncated or non-UTF-8 text.
Everything is derived from ``random.Random(seed)``: the same seed gives the same cases, so a failure
found in CI is reproduced by its case number alone.

``prompt_bodies(seed, n)`` yields (label, body) for ``POST /prompt``; ``workflow_files(seed, n,
bases)`` yields (label, bytes) for ``main.py validate``; ``response_problem(...)`` says what is wrong
with an answer (a 5xx, a non-JSON body, an error outside ComfyUI's shape), or None.
"""
from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from tests.server_helpers import stub_graph

SEED = 20261203


class Raw(str):
    """A JSON token written verbatim (``1e999``, ``NaN``, a 5000-digit integer, deep nesting)."""


def dumps(value: Any) -> bytes:
    """JSON text of ``value`` where Raw tokens are copied as they are (everything else is strict)."""
    if isinstance(value, Raw):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, dict):
        return b"{" + b", ".join(dumps(str(k)) + b": " + dumps(v) for k, v in value.items()) + b"}"
    if isinstance(value, (list, tuple)):
        return b"[" + b", ".join(dumps(v) for v in value) + b"]"
    return json.dumps(value).encode()


def _deep(depth: int, kind: str = "list") -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a": ' * depth + "1" + "}" * depth)


# Values no well-formed client sends; each goes into a body field, a node input, a node, an id...
HOSTILE: list[Any] = [
    Raw("1e999"), Raw("-1e999"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("-0.0"),
    2 ** 70, -(2 ** 70), 2 ** 63, -(2 ** 63) - 1, 2 ** 64, Raw("9" * 5000), Raw("-" + "7" * 5000),
    Raw("1" + "0" * 400 + ".5"), 1e308, 5e-324, -1, 0, 1, 1.5, -3.75, 10 ** 18,
    True, False, None, "", " ", "1", "-5", "NaN", "1e999", "x" * 70_000, "é" * 3000,
    "\u202e\U0001F600\u0301", "\x00", "a\x00b", "\ufeff", Raw('"\\ud800"'), Raw('"\\udfff\\ud800"'),
    "../../etc/passwd", "/etc/passwd", "C:\\Windows\\win.ini", "%s%n%x", "${jndi:ldap://x}",
    [], {}, [1, 2], ["1", 0], ["999", 0], ["1", 99], ["1", -1], ["1", 1.5], ["1", "0"], [None, 0],
    [["1", 0]], ["1", 0, 0], {"a": 1}, {"": None}, [Raw("1e999")], {"k": Raw("NaN")},
    _deep(200), _deep(5000), _deep(100_000), _deep(300, "dict"), _deep(3000, "dict"),
    # big containers as opaque tokens: cheap to copy, and mutations need not walk into them
    Raw(json.dumps(list(range(3000)))), Raw(json.dumps({str(i): i for i in range(2000)})),
]
FIELDS = ["number", "front", "prompt_id", "client_id", "extra_data", "partial_execution_targets", "prompt"]


def hostile(rng: random.Random) -> Any:
    """One of HOSTILE; containers are copied since later mutations may edit them in place."""
    value = rng.choice(HOSTILE)
    return copy.deepcopy(value) if isinstance(value, (list, dict)) else value


def _paths(doc: Any, here: tuple = (), out: list | None = None, limit: int = 4000) -> list[tuple]:
    """Every path (tuple of keys/indices) to a value inside ``doc`` (bounded)."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    out.append(here)
    if isinstance(doc, dict) and not isinstance(doc, Raw):
        for k, v in doc.items():
            _paths(v, here + (k,), out, limit)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            _paths(v, here + (i,), out, limit)
    return out


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def mutate_anywhere(doc: Any, rng: random.Random) -> Any:
    """Replace, delete or add one value somewhere in ``doc`` (returns the new document)."""
    paths = _paths(doc)
    path = rng.choice(paths)
    if not path:
        return hostile(rng)
    parent = _get(doc, path[:-1])
    action = rng.random()
    if action < 0.6:
        parent[path[-1]] = hostile(rng)
    elif action < 0.8 and isinstance(parent, dict):
        del parent[path[-1]]
    elif action < 0.9 and isinstance(parent, dict):
        parent[rng.choice(["", "x" * 300, "\x00", "é", "__proto__", "-1"])] = hostile(rng)
    elif isinstance(parent, list):
        parent.insert(rng.randrange(len(parent) + 1), hostile(rng))
    else:
        parent[path[-1]] = [parent[path[-1]], hostile(rng)]
    return doc


# ------------------------------------------------------------------------------------------------
# /prompt bodies
# ------------------------------------------------------------------------------------------------
def base_body(rng: random.Random, n: int) -> dict:
    """A valid body (stub nodes), with some of the optional fields filled in."""
    body: dict = {"prompt": stub_graph(rng.randrange(256), prefix="fz")}
    if rng.random() < 0.5:
        body["client_id"] = f"fuzz-{rng.randrange(8)}"
    if rng.random() < 0.3:
        body["prompt_id"] = f"fuzz-{n}"
    if rng.random() < 0.2:
        body["extra_data"] = {"extra_pnginfo": {"workflow": {"nodes": []}}}
    if rng.random() < 0.2:
        body["front"] = rng.random() < 0.5
    return body


def _m_field(body: dict, rng: random.Random) -> Any:
    body[rng.choice(FIELDS)] = hostile(rng)
    return body


def _m_extra(body: dict, rng: random.Random) -> Any:
    key = rng.choice(["extra_pnginfo", "preview_method", "client_id", "workflow", "x" * 200])
    inner = hostile(rng)
    body["extra_data"] = {key: {"workflow": inner} if key == "extra_pnginfo" and rng.random() < 0.5 else inner}
    return body


def _m_input(body: dict, rng: random.Random) -> Any:
    node = body["prompt"][rng.choice(list(body["prompt"]))]
    names = list(node["inputs"]) + ["not_declared"]
    node["inputs"][rng.choice(names)] = hostile(rng)
    return body


def _m_node(body: dict, rng: random.Random) -> Any:
    graph = body["prompt"]
    nid = rng.choice(list(graph))
    what = rng.randrange(5)
    if what == 0:
        graph[nid] = hostile(rng)
    elif what == 1:
        graph[nid]["class_type"] = hostile(rng)
    elif what == 2:
        graph[nid]["inputs"] = hostile(rng)
    elif what == 3:
        graph[nid]["_meta"] = hostile(rng)
    else:
        graph[rng.choice(["", "x" * 5000, "\x00", "é\U0001F600", "-1", "1e999", "../3"])] = graph.pop(nid)
    return body


def _m_links(body: dict, rng: random.Random) -> Any:
    graph = body["prompt"]
    what = rng.randrange(4) if {"2", "3"} <= set(graph) else 3
    if what == 0:  # a cycle through LgSlow
        graph["5"] = {"class_type": "LgSlow", "inputs": {"value": ["2", 0], "seconds": 0.0, "steps": 1}}
        graph["2"]["inputs"]["value"] = ["5", 0]
    elif what == 1:  # a node linked to itself
        graph["2"]["inputs"]["value"] = ["2", 0]
    elif what == 2:  # links to nowhere / the wrong output / an output node
        graph["3"]["inputs"]["value"] = rng.choice([["404", 0], ["1", 7], ["3", 0], ["1", 2 ** 70]])
    else:  # partial targets naming odd nodes
        body["partial_execution_targets"] = rng.choice([["404"], ["1"], [""], ["3", "3"], [3], [None]])
    return body


def _m_big_graph(body: dict, rng: random.Random) -> Any:
    """A long chain, or many independent outputs (cost of validation, not of running)."""
    n = rng.choice([150, 600])
    graph = {"1": {"class_type": "LgConst", "inputs": {"value": 1}}}
    for i in range(2, n):
        graph[str(i)] = {"class_type": "LgSlow", "inputs": {"value": [str(i - 1), 0], "seconds": 0.0, "steps": 1}}
    graph[str(n)] = {"class_type": rng.choice(["LgSave", "Nope"]), "inputs": {"value": [str(n - 1), 0]}}
    if rng.random() < 0.5:
        graph["2"]["inputs"]["value"] = [str(n - 1), 0]  # and close it into a cycle
    body["prompt"] = graph
    return body


def _m_anywhere(body: dict, rng: random.Random) -> Any:
    return mutate_anywhere(body, rng)


def _raw_damage(data: bytes, rng: random.Random) -> bytes:
    """Byte-level damage: truncation, invalid UTF-8, BOMs, duplicate keys, stray tokens."""
    what = rng.randrange(8)
    if what == 0:
        return data[: rng.randrange(max(1, len(data)))]
    if what == 1:
        i = rng.randrange(max(1, len(data)))
        return data[:i] + rng.choice([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x00"]) + data[i:]
    if what == 2:
        return b"\xef\xbb\xbf" + data
    if what == 3:
        return data.replace(b"{", b'{"prompt": 1, ', 1) if data.startswith(b"{") else data + b"}"
    if what == 4:
        return rng.choice([b"", b"null", b"[]", b"0", b'"x"', b"true", b"NaN", b"-1e999", b"{}"])
    if what == 5:
        return data + rng.choice([b",", b"]", b" garbage", b"\n{}"])
    if what == 6:
        return b" " * rng.choice([10, 100_000]) + data
    return data.replace(b": ", b":" + b" " * rng.randrange(1, 50))


_BODY_MUTATORS: list[tuple[str, Callable[[dict, random.Random], Any]]] = [
    ("field", _m_field), ("field", _m_field), ("extra_data", _m_extra), ("input", _m_input),
    ("input", _m_input), ("node", _m_node), ("links", _m_links), ("anywhere", _m_anywhere),
    ("anywhere", _m_anywhere),
]


def prompt_bodies(seed: int = SEED, n: int = 2000) -> Iterator[tuple[str, bytes]]:
    """``n`` (label, raw /prompt body) cases: 1–3 structural mutations, sometimes byte damage."""
    rng = random.Random(seed)
    for i in range(n):
        body: Any = base_body(rng, i)
        kinds = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            # big graphs cost the server ~0.1 s each: one case in twenty
            kind, fn = ("big_graph", _m_big_graph) if rng.random() < 0.05 else rng.choice(_BODY_MUTATORS)
            if not isinstance(body, dict) or not isinstance(body.get("prompt"), dict) or \
                    not all(isinstance(v, dict) and isinstance(v.get("inputs"), dict) for v in body["prompt"].values()):
                kind, fn = "anywhere", mutate_anywhere
            body = fn(body, rng)
            kinds.append(kind)
        data = dumps(body)
        if rng.random() < 0.08:
            data = _raw_damage(data, rng)
            kinds.append("raw")
        yield f"#{i} {'+'.join(kinds)}", data


# ------------------------------------------------------------------------------------------------
# workflow files (for the CLI)
# ------------------------------------------------------------------------------------------------
def workflow_files(seed: int, n: int, bases: list[bytes]) -> Iterator[tuple[str, bytes]]:
    """``n`` (label, file bytes) mutations of the given workflow files (any of our formats)."""
    rng = random.Random(seed)
    docs = [json.loads(b) for b in bases]
    for i in range(n):
        j = rng.randrange(len(docs))
        doc = copy.deepcopy(docs[j])
        for _ in range(rng.choice([1, 1, 2, 4])):
            doc = mutate_anywhere(doc, rng)
        data = dumps(doc)
        label = f"#{i} base{j}"
        if rng.random() < 0.15:
            data = _raw_damage(data, rng)
            label += " raw"
        yield label, data


# ------------------------------------------------------------------------------------------------
# judging an answer
# ------------------------------------------------------------------------------------------------
def _strict_json(text: bytes) -> Any:
    """JSON as browsers parse it: NaN/Infinity are not JSON, so a body containing them is broken."""
    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token}")
    return json.loads(text, parse_constant=refuse)


def error_shape_problem(body: Any, *, node_errors: bool) -> str | None:
    """ComfyUI's error body: ``{"error": {"type", "message", ...}, "node_errors": {...}}``."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return "4xx body has no 'error' object"
    err = body["error"]
    if not isinstance(err.get("type"), str) or not isinstance(err.get("message"), str):
        return "4xx 'error' lacks a string type/message"
    if node_errors and not isinstance(body.get("node_errors"), dict):
        return "/prompt 4xx body has no 'node_errors' object"
    return None


def response_problem(status: int, content_type: str, content: bytes, *, prompt_route: bool = True) -> str | None:
    """None when the answer is acceptable for a hostile request, else what is wrong with it."""
    if status >= 500:
        return f"{status}: {content[:160]!r}"
    if not content_type.startswith("application/json"):
        return f"{status} with content-type {content_type!r}"
    try:
        body = _strict_json(content)
    except ValueError as exc:
        return f"{status} body is not strict JSON ({exc})"
    if b"Traceback (most recent call last)" in content:
        return f"{status} body carries a traceback"
    if status == 200 and prompt_route:
        if not (isinstance(body, dict) and isinstance(body.get("prompt_id"), str)
                and isinstance(body.get("node_errors"), dict)):
            return f"200 body is not {{prompt_id, number, node_errors}}: {content[:160]!r}"
        return None
    if 400 <= status < 500:
        return error_shape_problem(body, node_errors=prompt_route and status == 400)
    return None if status < 400 else f"unexpected status {status}"


# ------------------------------------------------------------------------------------------------
# sending cases to a server
# ------------------------------------------------------------------------------------------------
@dataclass
class FuzzTally:
    """What a batch of hostile requests did to a server."""
    tried: int = 0
    accepted: list[str] = field(default_factory=list)  # prompt ids answered 200
    structured: int = 0  # 4xx in ComfyUI's error shape
    server_errors: int = 0  # 5xx
    crashes: int = 0  # the server process died (it is restarted to go on)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (case label, what was wrong)

    def summary(self, limit: int = 25) -> str:
        """The first problems, one line each, for an assertion message."""
        lines = [f"{label}: {what}" for label, what in self.problems[:limit]]
        more = len(self.problems) - limit
        return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


def _post_once_more(srv: Any, client: Any, path: str, data: bytes, headers: dict) -> tuple[Any, Any]:
    """(response or the exception, client). A connection the server closed after its previous
    answer (it does after a 500) is retried once on a new one, so the fault lands on the right case."""
    import httpx

    for attempt in (1, 2):
        try:
            return client.post(path, content=data, headers=headers), client
        except httpx.HTTPError as exc:
            client.close()
            client = httpx.Client(base_url=srv.url, timeout=60.0)
            if attempt == 2 or not srv.alive():
                return exc, client
    raise AssertionError("unreachable")


def fire_prompts(srv: Any, cases: Iterable[tuple[str, bytes]], tally: FuzzTally | None = None,
                 path: str = "/prompt") -> FuzzTally:
    """POST every case to ``srv`` on one kept-alive connection and judge each answer.

    A dead server counts as a crash and is started again on the same directories, so one hole does
    not hide the others; a request that gets no answer (timeout, reset) is a problem too.
    """
    import httpx

    tally = tally or FuzzTally()
    headers = {"content-type": "application/json", **srv.headers()}
    client = httpx.Client(base_url=srv.url, timeout=60.0)
    try:
        for label, data in cases:
            tally.tried += 1
            r, client = _post_once_more(srv, client, path, data, headers)
            if isinstance(r, Exception):
                if not srv.alive():
                    tally.crashes += 1
                    tally.problems.append((label, f"server died: {srv.log_tail(300)!r}"))
                    srv.start()
                else:
                    tally.problems.append((label, f"no answer: {type(r).__name__}: {r}"))
                continue
            problem = response_problem(r.status_code, r.headers.get("content-type", ""), r.content)
            if r.status_code >= 500:
                tally.server_errors += 1
            elif 400 <= r.status_code < 500 and problem is None:
                tally.structured += 1
            elif r.status_code == 200 and problem is None:
                tally.accepted.append(r.json()["prompt_id"])
            if problem:
                tally.problems.append((label, problem))
    finally:
        client.close()
    return tally
