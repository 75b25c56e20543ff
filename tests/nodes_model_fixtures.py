"""Fixtures and helpers shared by the model-facing node tests (test_nodes_models*.py):
the tiny checkpoints plus a tiny ESRGAN, standalone VAEs and a malicious pickle; a NodeContext
on a shared ModelCache; short calls of the loader / encode / sampler nodes."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.cache import ModelCache
from engine.context import NodeContext
from engine.paths import Paths
from ldm.model_sampling import ModelSampling
from nodes import conditioning as cn
from nodes import latent as la
from nodes import loaders as lo
from nodes import sampling as sa

CKPTS = ["tiny_sd1", "tiny_sd2v", "tiny_sdxl", "tiny_sdxl_refiner", "tiny_sd1_inpaint"]
FAMILY = {"tiny_sd1": "sd1", "tiny_sd2v": "sd2", "tiny_sdxl": "sdxl",
          "tiny_sdxl_refiner": "sdxl_refiner", "tiny_sd1_inpaint": "sd1"}


@pytest.fixture(scope="module")
def root(tiny_dir, tmp_path_factory) -> Path:
    """tiny_dir + a tiny ESRGAN, a standalone VAE and a malicious pickle, plus input/output dirs."""
    from spandrel.architectures.ESRGAN import ESRGAN

    base = tmp_path_factory.mktemp("nodes_models")
    models = base / "models"
    shutil.copytree(tiny_dir, models)
    (models / "upscale_models").mkdir(exist_ok=True)  # a server test may have created it
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(ESRGAN(num_filters=8, num_blocks=1, scale=2).state_dict(),
                   models / "upscale_models" / "tiny_esrgan_x2.pth")
    # Standalone VAE: the checkpoint's first_stage_model.* tensors and its metadata, prefix kept
    # in one file and stripped in the other (both layouts are published).
    from safetensors import safe_open

    ckpt = models / "checkpoints" / "tiny_sd1.safetensors"
    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata()
    sd = load_file(str(ckpt))
    (models / "vae").mkdir(exist_ok=True)
    vae_sd = {k: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    save_file(vae_sd, str(models / "vae" / "tiny_vae_prefixed.safetensors"), metadata=meta)
    save_file({k[len("first_stage_model."):]: v for k, v in vae_sd.items()},
              str(models / "vae" / "tiny_vae.safetensors"), metadata=meta)
    return base


@pytest.fixture(scope="module")
def paths(root) -> Paths:
    p = Paths(root / "models", root / "input", root / "output", root / "temp", root / "user")
    p.ensure_dirs()
    return p


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache(max_items=16)


@pytest.fixture
def ctx(paths, cache):
    events: list = []
    c = NodeContext(node_id="3", prompt_id="p", prompt={}, paths=paths, models=cache,
                    emit=lambda e: events.append((e.type, e.data)))
    c.events = events  # type: ignore[attr-defined]
    return c


@pytest.fixture(scope="module")
def sd1(paths, cache):
    c = NodeContext(node_id="3", prompt_id="p", prompt={}, paths=paths, models=cache)
    model, clip, vae = _load(c, "tiny_sd1")
    return model, clip, vae, _encode(c, clip, "a red circle"), _encode(c, clip, "")


def _load(ctx, name):
    return lo.CheckpointLoaderSimple().run(ctx, f"{name}.safetensors")


def _encode(ctx, clip, text):
    return cn.CLIPTextEncode().run(ctx, text, clip)[0]


def _empty(h=64, w=64, b=1):
    return la.EmptyLatentImage().run(None, w, h, b)[0]


def _sample(ctx, model, pos, neg, latent, seed=1, steps=4, cfg=7.0, denoise=1.0, sampler="euler"):
    return sa.KSampler().run(ctx, model, seed, steps, cfg, sampler, "normal", pos, neg, latent, denoise)[0]


def _adv(ctx, model, pos, neg, latent, add_noise, start, end, leftover, steps=8, seed=11):
    return sa.KSamplerAdvanced().run(ctx, model, add_noise, seed, steps, 7.0, "euler", "normal", pos, neg,
                                     latent, start, end, leftover)[0]


def _image(seed=0, h=64, w=64):
    """A smooth, structured test image (gradients + a disc) in 0..1."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = (((yy - 0.5) ** 2 + (xx - 0.4) ** 2) < 0.06).float()
    img = torch.stack([xx, yy, 0.3 + 0.5 * disc], dim=-1)
    return img.unsqueeze(0).clamp(0, 1)


class ConstModel:
    """Honest stand-in MODEL: x0 prediction = the mean of the context's first feature (per entry),
    everywhere. With euler to sigma 0 the sampler's output is the last guided prediction, so the
    result shows exactly which conditioning applied where (and with what weight)."""

    def __init__(self):
        self.sampling = ModelSampling("eps")
        from ldm.configs import ModelConfig, SD15_UNET, SD_VAE
        from ldm.model import latent_format_for

        self.config = ModelConfig(family="sd1", prediction="eps", inpaint=False, unet=SD15_UNET, vae=SD_VAE,
                                  text_encoders=("sd1",), scale_factor=0.18215)
        self.latent_format = latent_format_for(self.config)
        self.calls: list = []

    def apply_model(self, x, sigma, *, context, y=None, concat=None):
        self.calls.append((tuple(x.shape), float(sigma.reshape(-1)[0])))
        v = context[:, :, 0].mean(dim=1).reshape(-1, 1, 1, 1)
        return v.expand_as(x).clone()

    def encode_adm(self, opts, batch):
        return None

    @contextlib.contextmanager
    def patched(self):
        yield self


def _const(v, tokens=77):
    return [[torch.full((1, tokens, 8), float(v)), {}]]
