"""The committed demo checkpoint loads through the normal loader and draws what the prompt says."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tools.demo_classifier import border_colour, object_colour

CKPT = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "latentgraph-demo.safetensors"


def high_frequency_energy(image: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (0..1 units): ~0.33 for white noise,
    a few hundredths for flat colour with a shape on it."""
    x = image.astype(np.float32) / 255.0
    return float((np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / 2)


@pytest.fixture(scope="module")
def demo():
    from ldm.checkpoint import load_checkpoint, read_metadata

    assert CKPT.exists(), f"{CKPT} is missing: run `python main.py train-demo`"
    torch.set_num_threads(1)
    return load_checkpoint(CKPT), read_metadata(CKPT)


def _txt2img(demo, prompt: str, seed: int) -> np.ndarray:
    from ldm.sample import sample

    (model, clip, vae), _ = demo
    latent = torch.zeros(1, 4, 16, 16)  # EmptyLatentImage 128×128, the native size
    out = sample(model, noise=None, latent=latent, positive=[[clip.encode(prompt)[0], {}]],
                 negative=[[clip.encode("")[0], {}]], cfg=5.0, sampler_name="euler",
                 scheduler="normal", steps=20, seed=seed)
    pixels = vae.decode(out)
    assert pixels.shape == (1, 128, 128, 3)
    return np.rint(pixels[0].numpy() * 255).astype(np.uint8)


def test_checkpoint_is_a_small_sd1_file(demo):
    (model, clip, vae), meta = demo
    assert model.config.family == "sd1" and model.config.prediction == "eps"
    assert vae.downscale_ratio == 8 and vae.latent_channels == 4
    assert meta["latentgraph.native_resolution"] == "128"
    assert model.latent_format.latent_rgb_factors_bias is not None  # its own preview colours
    assert CKPT.stat().st_size < 20_000_000


def test_red_circle_on_blue_background(demo):
    image = _txt2img(demo, "a red circle on a blue background", seed=0)
    noise = np.random.default_rng(0).integers(0, 256, image.shape).astype(np.uint8)
    assert high_frequency_energy(noise) > 0.25  # the measure does tell noise apart
    assert high_frequency_energy(image) < 0.06
    assert border_colour(image) == "blue"
    assert object_colour(image) is not None  # something stands out from the background


def test_prompt_changes_the_background(demo):
    image = _txt2img(demo, "a white square on a green background", seed=1)
    assert border_colour(image) == "green"


def test_default_workflow_draws_headless(tmp_path):
    """`python main.py run workflows/default.json` on a fresh install: the committed demo model,
    the native size, and a picture of what the prompt says (blue border, a red object)."""
    import json
    import subprocess
    import sys

    from PIL import Image

    root = CKPT.parent.parent.parent
    doc = json.loads((root / "workflows" / "default.json").read_text())
    prompt = json.loads((root / "workflows" / "api" / "default.json").read_text())
    assert prompt["4"]["inputs"]["ckpt_name"] == CKPT.name
    assert (prompt["5"]["inputs"]["width"], prompt["5"]["inputs"]["height"]) == (128, 128)
    assert doc["title"]
    cmd = [sys.executable, str(root / "main.py"), "run", str(root / "workflows" / "default.json"),
           "--output-dir", str(tmp_path / "out"), "--user-dir", str(tmp_path / "u"), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = json.loads(proc.stdout)["files"]
    image = np.asarray(Image.open(files[0]).convert("RGB"))
    assert image.shape == (128, 128, 3)
    assert high_frequency_energy(image) < 0.06
    assert border_colour(image) == "blue"
    assert object_colour(image) == "red"
