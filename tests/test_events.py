"""Typed events: ComfyUI's message names and payload key order, and their framing in ui/ws.py.

The JSON strings below are what the WebSocket carried before events were typed (byte for byte), so
a client parsing the text by position or comparing payloads sees no difference.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from engine.events import (ExecutionCached, ExecutionError, ExecutionInterrupted, ExecutionStart,
                           ExecutionSuccess, ExecutionWarning, Executed, Executing, Preview, Progress,
                           ResultImage, Status)
from ui.ws import image_frame, text_frame, wants_previews

WIRE = [
    (ExecutionStart("p", 5), '{"type": "execution_start", "data": {"prompt_id": "p", "timestamp": 5}}'),
    (ExecutionCached(["1"], "p", 6),
     '{"type": "execution_cached", "data": {"nodes": ["1"], "prompt_id": "p", "timestamp": 6}}'),
    (Executing("3", "p"), '{"type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": "p"}}'),
    (Executing(None, "p"),
     '{"type": "executing", "data": {"node": null, "display_node": null, "prompt_id": "p"}}'),
    (Progress(1, 4, "p", "3"), '{"type": "progress", "data": {"value": 1, "max": 4, "prompt_id": "p", "node": "3"}}'),
    (Executed("9", {"images": []}, "p"),
     '{"type": "executed", "data": {"node": "9", "display_node": "9", "output": {"images": []}, "prompt_id": "p"}}'),
    (ExecutionSuccess("p", 7), '{"type": "execution_success", "data": {"prompt_id": "p", "timestamp": 7}}'),
    (ExecutionInterrupted("p", "3", "KSampler", ["1"], 8),
     '{"type": "execution_interrupted", "data": {"prompt_id": "p", "node_id": "3", "node_type": "KSampler", '
     '"executed": ["1"], "timestamp": 8}}'),
    (ExecutionError("p", "3", "KSampler", [], "boom", "ValueError", ["tb"], {"steps": 2}, ["1"], 9),
     '{"type": "execution_error", "data": {"prompt_id": "p", "node_id": "3", "node_type": "KSampler", '
     '"executed": [], "exception_message": "boom", "exception_type": "ValueError", "traceback": ["tb"], '
     '"current_inputs": {"steps": 2}, "current_outputs": ["1"], "timestamp": 9}}'),
    (ExecutionWarning("p", None, "w"), '{"type": "warning", "data": {"prompt_id": "p", "node": null, "message": "w"}}'),
    (Status(2), '{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}}}'),
]


@pytest.mark.parametrize("event,text", WIRE, ids=[e.type + str(i) for i, (e, _) in enumerate(WIRE)])
def test_text_frames_are_comfyui_messages(event, text):
    assert text_frame(event) == text


def test_status_on_connect_carries_the_sid():
    assert json.loads(text_frame(Status(0), "abc")) == {
        "type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "abc"}}


def test_history_messages_are_the_comfyui_subset():
    recorded = [e for e, _ in WIRE if e.in_history]
    assert [e.type for e in recorded] == ["execution_start", "execution_cached", "execution_success",
                                          "execution_interrupted", "execution_error"]
    assert ExecutionStart("p", 5).message() == ["execution_start", {"prompt_id": "p", "timestamp": 5}]


def test_timestamps_default_to_now_in_milliseconds():
    assert ExecutionStart("p").timestamp > 1_600_000_000_000


def test_binary_image_frames():
    assert image_frame(Preview("p", "3", b"JPG")) == b"\x00\x00\x00\x01\x00\x00\x00\x01JPG"
    assert image_frame(ResultImage("p", "3", b"PNG")) == b"\x00\x00\x00\x01\x00\x00\x00\x02PNG"


def test_preview_policy_is_read_from_the_job():
    def job(extra):
        return SimpleNamespace(client_id="c", extra_data=extra)

    native = {"format": "latentgraph", "version": 1, "nodes": [], "links": []}
    assert not wants_previews(job({}))
    assert not wants_previews(job({"preview_method": "none"}))
    assert not wants_previews(job({"preview_method": "default"}))
    assert not wants_previews(job({"extra_pnginfo": {"workflow": {"nodes": [], "links": []}}}))  # UI format
    for method in ("auto", "latent2rgb", "taesd", "AUTO"):
        assert wants_previews(job({"preview_method": method}))
    assert wants_previews(job({"extra_pnginfo": {"workflow": native}}))  # the editor's /lg/queue
