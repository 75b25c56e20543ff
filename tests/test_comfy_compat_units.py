"""comfy_compat modules on their own: ComfyUI's helper functions over our engine and ldm."""
from __future__ import annotations

import threading

import pytest
import torch

from engine.context import NodeContext, current_context, running
from engine.errors import Interrupted
from engine.events import Preview, Progress
from nodes import plugin_env

plugin_env.prepare()

import comfy.utils  # noqa: E402 (comfy_compat is on sys.path after prepare())
from comfy.comfy_types import IO, ComfyNodeABC, InputTypeDict  # noqa: E402


def _ctx(events: list, interrupt: threading.Event | None = None) -> NodeContext:
    return NodeContext(node_id="7", prompt_id="p1", prompt={}, paths=None, models=None,
                       emit=events.append, interrupt=interrupt)


def test_progress_bar_reports_to_the_running_node():
    events: list = []
    with running(_ctx(events)):
        bar = comfy.utils.ProgressBar(4)
        bar.update(1)
        bar.update_absolute(3)
        bar.update(5)  # clamped to the total, as ComfyUI does
    assert [(e.value, e.max, e.node, e.prompt_id) for e in events] == [
        (1, 4, "7", "p1"), (3, 4, "7", "p1"), (4, 4, "7", "p1")]
    assert current_context() is None


def test_progress_bar_preview_tuple_becomes_a_preview_event():
    from PIL import Image

    events: list = []
    with running(_ctx(events)):
        comfy.utils.ProgressBar(2).update_absolute(1, 2, ("JPEG", Image.new("RGB", (64, 32), "red"), 16))
    assert isinstance(events[0], Progress) and isinstance(events[1], Preview)
    assert events[1].image[:2] == b"\xff\xd8"  # JPEG bytes


def test_progress_bar_stops_an_interrupted_job_and_is_silent_outside_execution():
    comfy.utils.ProgressBar(3).update(1)  # no node running: nothing to report, no error
    stop = threading.Event()
    stop.set()
    with running(_ctx([], stop)), pytest.raises(Interrupted):
        comfy.utils.ProgressBar(3).update(1)


def test_io_types_match_like_sockets():
    assert IO.IMAGE == "IMAGE" and str(IO.IMAGE) == "IMAGE"
    assert not (IO.ANY != "LATENT") and not (IO.NUMBER != "INT")
    assert IO.IMAGE != "MASK"

    class Node(ComfyNodeABC):
        @classmethod
        def INPUT_TYPES(cls) -> InputTypeDict:  # noqa: N802
            return {"required": {"x": (IO.INT, {"default": 1})}}

    assert Node.INPUT_TYPES()["required"]["x"][0] == "INT"


def test_common_upscale_and_tiled_scale():
    x = torch.rand(2, 3, 20, 30)
    assert comfy.utils.common_upscale(x, 60, 40, "bilinear", "disabled").shape == (2, 3, 40, 60)
    assert comfy.utils.common_upscale(x, 16, 16, "lanczos", "center").shape == (2, 3, 16, 16)
    double = lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
    out = comfy.utils.tiled_scale(x, double, tile_x=16, tile_y=16, overlap=4, upscale_amount=2)
    assert torch.allclose(out, double(x), atol=1e-5)
    assert comfy.utils.repeat_to_batch_size(torch.arange(2), 5).tolist() == [0, 1, 0, 1, 0]


def test_load_torch_file_round_trip(tmp_path):
    sd = {"a.weight": torch.ones(2, 2), "b": torch.zeros(3)}
    path = str(tmp_path / "w.safetensors")
    comfy.utils.save_torch_file(sd, path, metadata={"k": "v"})
    loaded, meta = comfy.utils.load_torch_file(path, return_metadata=True)
    assert set(loaded) == set(sd) and meta == {"k": "v"}
    assert comfy.utils.calculate_parameters(loaded) == 7
