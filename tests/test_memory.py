"""Memory estimates and refusals: sizes within the declared limits that cannot fit are refused
with a structured error naming the node and the figures, before anything big is allocated.

Estimator tests pin the formulas (ldm/memory.py) and check they do not refuse normal work; the
node tests run the real nodes on the tiny VAE under a budget; the CLI and server tests go through
`python main.py run` / the HTTP API.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from engine.context import NodeContext
from engine.errors import NodeError
from ldm import memory
from ldm.configs import SD15_UNET, SD_VAE, SDXL_UNET, UNetConfig
from tests.server_helpers import ServerProcess, tiny_sd_graph, wait_history

ROOT = Path(__file__).resolve().parent.parent
MiB, GiB = 1 << 20, 1 << 30


@pytest.fixture(autouse=True)
def _no_budget():
    memory.set_memory_budget(None)
    yield
    memory.set_memory_budget(None)


def _ctx(node_id: str = "8", class_type: str = "VAEDecode") -> NodeContext:
    events: list = []
    ctx = NodeContext(node_id=node_id, prompt_id="p", prompt={}, paths=None, models=None,
                      class_type=class_type, emit=lambda e: events.append((e.type, e.data)))
    return ctx


# ------------------------------------------------------------------------------------ estimators
@pytest.mark.parametrize("text, expected", [("8G", 8 * GiB), ("512M", 512 * MiB), ("1.5GiB", int(1.5 * GiB)),
                                            ("64mb", 64 * MiB), ("4096", 4096), ("0", None), ("none", None)])
def test_parse_size(text, expected):
    assert memory.parse_size(text) == expected


@pytest.mark.parametrize("bad", ["12Q", "-1G", "G", "lots"])
def test_parse_size_refuses_nonsense(bad):
    with pytest.raises(ValueError, match="not a size"):
        memory.parse_size(bad)


def test_unet_estimate_follows_the_layer_walk():
    """One level, one ResBlock, no attention: the worst moment is the first output block:
    8 (the other skip) + 8 (h) + 16 (h ‖ skip) + 64 (ResBlock 16→8 on it: input 16 + 5·8 + 8 skip
    conv) = 96 channels per pixel, × batch × 4 bytes × the calibration factor."""
    cfg = UNetConfig(model_channels=8, channel_mult=(1,), num_res_blocks=1, transformer_depth=(0,),
                     transformer_depth_middle=0, num_heads=1, norm_groups=1)
    for batch, h, w in ((1, 10, 10), (3, 16, 8)):
        expected = int(96 * h * w * batch * 4 * memory.UNET_SLACK)
        assert memory.unet_step_bytes(cfg, batch, h, w) == expected


def test_unet_estimate_scales_with_pixels_and_batch_and_counts_scores_only_where_built():
    small = memory.unet_step_bytes(SD15_UNET, 2, 32, 32)
    assert 3.5 < memory.unet_step_bytes(SD15_UNET, 2, 64, 64) / small < 4.5  # flash: linear in pixels
    assert memory.unet_step_bytes(SD15_UNET, 4, 32, 32) == pytest.approx(2 * small, rel=0.01)
    assert not memory.scores_materialised("cpu", 512)
    assert memory.scores_materialised("cuda", 512) and not memory.scores_materialised("cuda", 64)
    # where the N×N scores are built (MPS), they dominate at high resolution
    mps = memory.unet_step_bytes(SD15_UNET, 2, 64, 64, device="mps")
    assert mps > memory.unet_step_bytes(SD15_UNET, 2, 64, 64) + 2 * 8 * 4096 * 4096 * 4


def test_estimates_do_not_refuse_normal_work():
    """Upper bounds, but not wild ones: what a 24 GiB machine runs every day stays well below."""
    assert memory.sampling_bytes(SD15_UNET, 1, 64, 64, cfg_scale=7.0) < 1 * GiB
    assert memory.sampling_bytes(SDXL_UNET, 1, 128, 128, cfg_scale=7.0) < 2 * GiB
    assert memory.vae_decode_bytes(SD_VAE, 1, 64, 64) < 2 * GiB
    assert memory.vae_encode_bytes(SD_VAE, 1, 512, 512) < 1 * GiB
    assert memory.sampling_bytes(SD15_UNET, 1, 2048, 2048, cfg_scale=7.0) > 100 * GiB


def test_tiled_decode_needs_the_image_buffers_plus_one_tile():
    full = memory.vae_decode_bytes(SD_VAE, 1, 256, 256)
    tiled = memory.vae_decode_bytes(SD_VAE, 1, 256, 256, tile=512)
    image = memory.image_bytes(1, 2048, 2048)
    assert tiled < full / 8
    assert tiled > 4 * image  # output + accumulator + the clamped copies
    assert memory.vae_decode_bytes(SD_VAE, 1, 256, 256, tile=256) < tiled


def test_budget_caps_what_is_available_and_check_fits_reports_both_figures():
    memory.set_memory_budget(100 * MiB)
    assert memory.available_bytes("cpu") <= 100 * MiB
    memory.check_fits(50 * MiB, "a small thing")
    with pytest.raises(memory.MemoryEstimateError) as info:
        memory.check_fits(3 * GiB, "a big thing", "try less")
    err = info.value
    assert (err.needed, err.available) == (3 * GiB, 100 * MiB)
    assert str(err) == "a big thing needs ~3.0 GiB, 100.0 MiB available; try less"
    memory.set_memory_budget(None)
    free = memory.system_available_bytes()
    assert free is None or memory.available_bytes("cpu") == free


def test_estimate_is_an_upper_bound_of_a_measured_unet_pass():
    """bench/bench_memory.py's measurement (peak RSS growth in a fresh process) of the tiny UNet
    at 128×128: the estimate covers it and is not more than 2.5× it (calibration: ~1.3×)."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_memory.py"), "--child", "unet",
                          "tiny_sd1", "2", "128", "128"], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["measured"] <= r["estimate"] <= 2.5 * r["measured"], r


# ------------------------------------------------------------------------------------ nodes
@pytest.fixture(scope="module")
def tiny_vae():
    from ldm.tiny import tiny_vae as make
    from ldm.vae import VAE

    return VAE(make(0))


def test_vae_decode_falls_back_to_tiles_under_a_budget(tiny_vae):
    from nodes.vae import VAEDecode

    z = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    whole = tiny_vae.decode(z)
    memory.set_memory_budget(128 * MiB)
    ctx = _ctx()
    (image,) = VAEDecode().run(ctx, {"samples": z}, tiny_vae)
    assert image.shape == whole.shape == (1, 512, 512, 3)
    assert len(ctx.warnings) == 1 and "256-pixel tiles" in ctx.warnings[0], ctx.warnings
    assert (image - whole).abs().mean() < 0.03  # seams feathered; GroupNorm statistics per tile


def test_vae_decode_refuses_when_even_tiles_do_not_fit(tiny_vae):
    from nodes.vae import VAEDecode

    memory.set_memory_budget(128 * MiB)
    with pytest.raises(NodeError) as info:
        VAEDecode().run(_ctx(), {"samples": torch.zeros(1, 4, 256, 256)}, tiny_vae)
    err = info.value
    assert err.node_id == "8" and err.class_type == "VAEDecode" and err.input_name == "samples"
    assert "2048×2048" in err.message and "even in 64-pixel tiles" in err.message
    assert "128.0 MiB available" in err.message


def test_vae_encode_falls_back_to_tiles(tiny_vae):
    from nodes.vae import VAEEncode

    pixels = torch.rand(1, 512, 512, 3, generator=torch.Generator().manual_seed(2))
    whole = tiny_vae.encode(pixels)
    memory.set_memory_budget(48 * MiB)
    ctx = _ctx("10", "VAEEncode")
    (latent,) = VAEEncode().run(ctx, pixels, tiny_vae)
    assert ctx.warnings and "tiles instead" in ctx.warnings[0]
    assert latent["samples"].shape == whole.shape
    assert (latent["samples"] - whole).abs().mean() < 0.1 * whole.abs().mean() + 0.05


def test_latent_and_image_creators_refuse_before_allocating():
    from nodes.image import ImageScale
    from nodes.latent import EmptyLatentImage
    from nodes.mask import SolidMask

    memory.set_memory_budget(256 * MiB)
    with pytest.raises(NodeError) as info:
        EmptyLatentImage().run(_ctx("5", "EmptyLatentImage"), 16384, 16384, 4096)
    assert info.value.input_name == "batch_size" and "GiB" in info.value.message
    assert EmptyLatentImage().run(_ctx(), 512, 512, 1)[0]["samples"].shape == (1, 4, 64, 64)
    with pytest.raises(NodeError, match="resizing the image to 16384×16384"):
        ImageScale().run(_ctx("7", "ImageScale"), torch.zeros(1, 64, 64, 3), "bilinear", 16384, 16384,
                         "disabled")
    with pytest.raises(NodeError, match="a solid mask"):
        SolidMask().run(_ctx("9", "SolidMask"), 1.0, 16384, 16384)


def test_upscale_with_model_picks_a_tile_that_fits_or_refuses():
    import spandrel
    from spandrel.architectures.ESRGAN import ESRGAN

    from nodes.upscale import ImageUpscaleWithModel

    net = ESRGAN(num_filters=8, num_blocks=1, scale=2)
    desc = spandrel.ModelLoader().load_from_state_dict(net.state_dict()).eval()
    image = torch.rand(1, 300, 300, 3, generator=torch.Generator().manual_seed(3))
    memory.set_memory_budget(110 * MiB)
    ctx = _ctx("12", "ImageUpscaleWithModel")
    (out,) = ImageUpscaleWithModel().run(ctx, desc, image)
    assert out.shape == (1, 600, 600, 3)
    assert ctx.warnings and "128-pixel tiles" in ctx.warnings[0]
    memory.set_memory_budget(64 * MiB)
    with pytest.raises(NodeError) as info:
        ImageUpscaleWithModel().run(_ctx("12", "ImageUpscaleWithModel"), desc, image)
    assert info.value.input_name == "image" and "to 600×600" in info.value.message


# ------------------------------------------------------------------------------------ CLI + server
def _run_cli(args: list[str], cwd: Path) -> tuple[int, dict, int]:
    """(exit code, --json summary, peak RSS of that process in bytes) of `python main.py run`."""
    out = cwd / "stdout.json"
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "run", *args, "--json"],
                                stdout=fh, stderr=subprocess.DEVNULL, cwd=cwd,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, json.loads(out.read_text()), usage.ru_maxrss * 1024


def _dirs(tmp_path: Path, models: Path) -> list[str]:
    return ["--models-dir", str(models), "--output-dir", str(tmp_path / "out"), "--user-dir", str(tmp_path / "u"),
            "--temp-dir", str(tmp_path / "t")]


def _huge_graph() -> dict:
    g = tiny_sd_graph()
    g["5"]["inputs"].update(width=16384, height=16384)
    return g


def test_cli_refuses_a_16384_latent_without_growing(tmp_path, tiny_dir):
    wf = tmp_path / "huge.json"
    wf.write_text(json.dumps(_huge_graph()))
    code, summary, peak = _run_cli([str(wf), *_dirs(tmp_path, tiny_dir)], tmp_path)
    assert code == 1 and summary["status"] == "error"
    err = summary["error"]
    assert err["node_id"] == "3" and err["node_type"] == "KSampler" and err["exception_type"] == "NodeError"
    message = err["exception_message"]
    assert "input 'latent_image'" in message and "2048×2048 latent" in message
    assert "GiB, " in message and "available" in message
    assert peak < 2 * GiB, f"peak RSS {peak / GiB:.2f} GiB"


def test_cli_max_memory_tiles_a_decode_and_refuses_a_bigger_one(tmp_path, tiny_dir):
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
             "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
             "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}
    wf = tmp_path / "decode.json"
    wf.write_text(json.dumps(graph))
    code, summary, _ = _run_cli([str(wf), "--max-memory", "128M", *_dirs(tmp_path, tiny_dir)], tmp_path)
    assert code == 0, summary.get("error")
    assert any("256-pixel tiles instead" in w for w in summary["warnings"]), summary["warnings"]
    graph["5"]["inputs"].update(width=2048, height=2048)
    wf.write_text(json.dumps(graph))
    code, summary, _ = _run_cli([str(wf), "--max-memory", "128M", *_dirs(tmp_path, tiny_dir)], tmp_path)
    assert code == 1 and summary["error"]["node_id"] == "8"
    assert "even in 64-pixel tiles" in summary["error"]["exception_message"]


def test_server_reports_the_refusal_and_keeps_serving(tmp_path, tiny_dir):
    with ServerProcess(tmp_path / "srv", models_dir=tiny_dir, stubs=False) as srv, \
            httpx.Client(base_url=srv.url, timeout=60.0) as c:
        r = c.post("/prompt", json={"prompt": _huge_graph()})
        assert r.status_code == 200, r.text
        hist = wait_history(c, r.json()["prompt_id"], timeout=240)
        assert hist["status"]["status_str"] == "error"
        errors = [d for name, d in hist["status"]["messages"] if name == "execution_error"]
        assert len(errors) == 1 and errors[0]["node_id"] == "3" and errors[0]["node_type"] == "KSampler"
        assert "GiB" in errors[0]["exception_message"] and "available" in errors[0]["exception_message"]
        r = c.post("/prompt", json={"prompt": tiny_sd_graph(seed=2)})
        assert wait_history(c, r.json()["prompt_id"], timeout=240)["status"]["status_str"] == "success"
        assert srv.alive()
