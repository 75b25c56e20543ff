"""Seeded fuzzing of POST /prompt against one real server (stub nodes): no body can brick it.

2,000 cases per run (tests/fuzz_cases.py: hostile values in every body field, in node inputs,
nodes, ids and links; cycles, links to nowhere, big graphs; byte-level damage), all on one
kept-alive connection. Asserted: never a 5xx or a dead server, every 4xx is JSON in ComfyUI's error
shape, the server answers afterwards, and a restart on the same user directory serves /queue and
/history with every accepted job in them (a stored row must never stop the server coming back).
"""
from __future__ import annotations

import httpx
import pytest

from tests.fuzz_cases import SEED, fire_prompts, prompt_bodies, response_problem
from tests.server_helpers import ServerProcess, wait_idle

N_CASES = 2000


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """(server, tally) after the whole campaign; the server is stopped at the end of the module."""
    srv = ServerProcess(tmp_path_factory.mktemp("fuzz")).start()
    try:
        yield srv, fire_prompts(srv, prompt_bodies(SEED, N_CASES))
    finally:
        srv.stop()


def test_prompt_bodies_never_5xx_and_errors_are_structured(fuzzed):
    srv, tally = fuzzed
    assert tally.tried == N_CASES
    assert not tally.problems, (
        f"{len(tally.problems)} of {tally.tried} cases answered badly "
        f"({tally.server_errors} 5xx, {tally.crashes} crashes):\n{tally.summary()}")
    # the campaign exercised both sides: refusals and real jobs
    assert tally.structured > N_CASES // 2 and len(tally.accepted) > 20


def test_server_answers_after_fuzz(fuzzed):
    srv, tally = fuzzed
    assert srv.alive()
    with httpx.Client(base_url=srv.url, timeout=30.0) as c:
        for route in ("/system_stats", "/prompt", "/queue", "/history?max_items=5", "/object_info/LgConst"):
            r = c.get(route)
            assert r.status_code == 200, (route, r.status_code, r.text[:300])
            assert response_problem(r.status_code, r.headers["content-type"], r.content,
                                    prompt_route=False) is None, route


UNKNOWN_ROUTES = [("GET", "/nope"), ("GET", "/api/nope"), ("POST", "/nope"), ("GET", "/prompt/x"),
                  ("DELETE", "/queue"), ("GET", "/history/a/b"), ("PUT", "/api/prompt"),
                  ("GET", "/view/" + "x" * 3000), ("GET", "/%00"), ("GET", "/api/..%2f..%2fetc")]


@pytest.mark.parametrize("method,path", UNKNOWN_ROUTES, ids=[f"{m} {p[:20]}" for m, p in UNKNOWN_ROUTES])
def test_unknown_routes_answer_json_4xx_in_comfyui_shape(fuzzed, method, path):
    srv, _ = fuzzed
    with httpx.Client(base_url=srv.url, timeout=30.0) as c:
        r = c.request(method, path)
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
        assert response_problem(r.status_code, r.headers.get("content-type", ""), r.content,
                                prompt_route=False) is None, r.text[:300]


def test_restart_on_same_user_dir_after_fuzz(fuzzed):
    srv, tally = fuzzed
    with httpx.Client(base_url=srv.url, timeout=30.0) as c:
        wait_idle(c, timeout=180.0)
    srv.stop()
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60.0) as c:
        queue = c.get("/queue")
        assert queue.status_code == 200, queue.text[:300]
        assert set(queue.json()) == {"queue_running", "queue_pending"}
        history = c.get("/history")
        assert history.status_code == 200, history.text[:300]
        known = set(history.json()) | {item[1] for items in queue.json().values() for item in items}
        lost = [pid for pid in tally.accepted if pid not in known]
        assert not lost, f"{len(lost)} accepted jobs vanished after the restart: {lost[:10]}"
        for pid in tally.accepted[:50]:
            one = c.get(f"/history/{pid}")
            assert one.status_code == 200 and response_problem(
                200, one.headers["content-type"], one.content, prompt_route=False) is None, pid


def test_fuzz_cases_are_deterministic():
    first = [data for _, data in prompt_bodies(SEED, 60)]
    again = [data for _, data in prompt_bodies(SEED, 60)]
    assert first == again
    assert len(set(first)) > 50 and first != [d for _, d in prompt_bodies(SEED + 1, 60)]
