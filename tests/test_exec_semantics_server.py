"""ComfyUI's execution semantics through the public interfaces: POST /prompt, WebSocket events and
/history, on a server started with ComfyUI's own flags (its test harness's command line): the
semantics pack comes in through an extra_model_paths.yaml `custom_nodes:` entry, --cache-lru 0.
"""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from tests.server_helpers import ServerProcess, collect_until_done, wait_history

PACKS = Path(__file__).resolve().parent / "plugin_packs"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("semantics_srv")
    yml = base / "conf" / "extra_model_paths.yaml"
    yml.parent.mkdir()
    # relative to the yaml's own folder, as ComfyUI reads it
    yml.write_text("testing:\n    custom_nodes: ../packs\n")
    (base / "packs").symlink_to(PACKS, target_is_directory=True)
    srv = ServerProcess(base, stubs=False, extra_args=[
        "--output-directory", str(base / "comfy_out"), "--extra-model-paths-config", str(yml),
        "--cache-lru", "0", "--listen", "127.0.0.1", "--plugin-timeout", "0", "--no-editor"]).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    """An HTTP client of the module's server."""
    c = httpx.Client(base_url=server.url, timeout=30.0)
    yield c
    c.close()


def submit(server, client, prompt: dict, **body) -> tuple[str, list]:
    async def go() -> tuple[str, list]:
        cid, pid = uuid.uuid4().hex, uuid.uuid4().hex
        async with websockets.connect(server.ws_url(cid)) as ws:
            await asyncio.wait_for(ws.recv(), 10)
            r = await asyncio.to_thread(client.post, "/prompt", json={"prompt": prompt, "client_id": cid,
                                                                       "prompt_id": pid, **body})
            assert r.status_code == 200, r.text
            return pid, await collect_until_done(ws, pid, 60)
    return asyncio.run(go())


def of(frames: list, kind: str) -> list[dict]:
    return [f["data"] for f in frames if isinstance(f, dict) and f["type"] == kind]


def ran(frames: list) -> list:
    return [d["node"] for d in of(frames, "executing") if d["node"] is not None]


def test_plugin_pack_loaded_through_the_yaml_and_saves_to_output_directory(server, client):
    info = client.get("/object_info/SemLazySwitch").json()["SemLazySwitch"]
    assert info["input"]["required"]["on_true"][1]["lazy"] is True
    assert client.get("/object_info/SemV3Scale").json()["SemV3Scale"]["display_name"] == "Sem V3 Scale"
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "sem"}}}
    pid, _ = submit(server, client, prompt)
    image = wait_history(client, pid)["outputs"]["2"]["images"][0]
    assert (server.base / "comfy_out" / image["filename"]).is_file()


def test_lazy_branch_and_expansion_events_and_history(server, client):
    prompt = {"1": {"class_type": "SemInt", "inputs": {"value": 1}},
              "2": {"class_type": "SemExpand", "inputs": {"value": 5, "cycle": False}},
              "3": {"class_type": "SemLazySwitch", "inputs": {"switch": False, "on_true": ["1", 0],
                                                              "on_false": ["2", 0]}},
              "4": {"class_type": "SemShow", "inputs": {"value": ["3", 0]}}}
    pid, frames = submit(server, client, prompt)
    nodes = ran(frames)
    assert "1" not in nodes and nodes.count("3") == 2 and "2.0.0.2" in nodes
    display = {d["node"]: d["display_node"] for d in of(frames, "executing") if d["node"]}
    assert display["2.0.0.1"] == "2" and display["2.0.0.2"] == "2"
    assert wait_history(client, pid)["outputs"]["4"] == {"text": ["105"]}
    pid, frames = submit(server, client, prompt)
    assert ran(frames) == [] and set(of(frames, "execution_cached")[0]["nodes"]) == {"2", "3", "4"}
    assert of(frames, "executed")[0]["output"] == {"text": ["105"]}  # cached output nodes report again


def test_validate_inputs_and_empty_targets_are_400s(server, client):
    prompt = {"1": {"class_type": "SemInt", "inputs": {"value": 3}},
              "2": {"class_type": "SemChecked", "inputs": {"value": 7.0, "other": ["1", 0]}},
              "3": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}}}
    r = client.post("/prompt", json={"prompt": prompt})
    assert r.status_code == 400
    assert {e["type"] for e in r.json()["node_errors"]["2"]["errors"]} == {"custom_validation_failed"}
    prompt["2"]["inputs"]["value"] = 3.0  # above the declared max: VALIDATE_INPUTS owns the check
    r = client.post("/prompt", json={"prompt": prompt, "partial_execution_targets": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "prompt_no_outputs"
    pid, _ = submit(server, client, prompt, partial_execution_targets=["3"])
    assert wait_history(client, pid)["outputs"]["3"] == {"text": ["9.0"]}


def test_blocker_message_is_an_execution_error_but_the_prompt_succeeds(server, client):
    prompt = {"1": {"class_type": "SemInt", "inputs": {"value": 1}},
              "2": {"class_type": "SemBlock", "inputs": {"value": ["1", 0], "block": True, "message": "nope"}},
              "3": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}},
              "4": {"class_type": "SemHidden", "inputs": {}}}
    pid, frames = submit(server, client, prompt, extra_data={"extra_pnginfo": {"workflow": {"v": 1}}})
    errors = of(frames, "execution_error")
    assert [e["exception_message"] for e in errors] == ["Execution Blocked: nope"]
    assert of(frames, "execution_success")
    hist = wait_history(client, pid)
    assert "3" not in hist["outputs"] and hist["outputs"]["4"]["text"][:3] == ["4", "1,2,3,4", "['workflow']"]


def test_cache_lru_zero_forgets_the_previous_prompt(server, client):
    a = {"1": {"class_type": "SemInt", "inputs": {"value": 31}}, "2": {"class_type": "SemShow", "inputs": {"value": ["1", 0]}}}
    b = {"1": {"class_type": "SemInt", "inputs": {"value": 32}}, "2": {"class_type": "SemShow", "inputs": {"value": ["1", 0]}}}
    submit(server, client, a)
    assert ran(submit(server, client, a)[1]) == []
    submit(server, client, b)
    assert sorted(ran(submit(server, client, a)[1])) == ["1", "2"]


def test_async_node_runs_over_the_server(server, client):
    prompt = {"1": {"class_type": "SemInt", "inputs": {"value": 1}},
              "2": {"class_type": "SemAsync", "inputs": {"value": ["1", 0], "name": "x"}},
              "3": {"class_type": "SemShow", "inputs": {"value": ["2", 0]}}}
    pid, frames = submit(server, client, prompt)
    assert wait_history(client, pid)["outputs"]["3"] == {"text": ["2"]}
    assert of(frames, "execution_success") and ran(frames) == ["1", "2", "3"]
