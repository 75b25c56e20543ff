"""CheckpointLoader honours its config YAML (models/configs) and refuses one that describes
another model."""
from __future__ import annotations

import shutil
import textwrap

import pytest
import torch

from engine.cache import ModelCache
from engine.context import NodeContext
from engine.paths import Paths
from ldm.model_sampling import ModelSampling
from ldm.yaml_config import ConfigError
from nodes import loaders as lo

TINY_SD1_V = """
model:
  base_learning_rate: 1.0e-04
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    linear_start: 0.001
    linear_end: 0.02
    timesteps: 1000
    scale_factor: 0.3
    conditioning_key: crossattn
    unet_config:
      params: {in_channels: 4, out_channels: 4, model_channels: 32, channel_mult: [1, 2],
               num_res_blocks: 1, num_heads: 4, context_dim: 32}
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
      params:
        layer_idx: -2
"""
# The published v1-inference.yaml's model section (the values that matter here).
V1_INFERENCE = """
model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    timesteps: 1000
    scale_factor: 0.18215
    conditioning_key: crossattn
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        in_channels: 4
        out_channels: 4
        model_channels: 320
        channel_mult: [1, 2, 4, 4]
        num_res_blocks: 2
        num_heads: 8
        context_dim: 768
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
"""
HYBRID = """
model:
  params:
    conditioning_key: hybrid
    unet_config: {params: {in_channels: 9, model_channels: 32}}
"""
EPS_ONLY = """
model:
  params:
    parameterization: eps
"""
UNCLIP = """
model:
  params:
    noise_aug_config: {target: ldm.modules.encoders.modules.CLIPEmbeddingNoiseAugmentation}
"""
SDXL_V = """
model:
  target: sgm.models.diffusion.DiffusionEngine
  params:
    scale_factor: 0.13025
    denoiser_config:
      target: sgm.modules.diffusionmodules.denoiser.DiscreteDenoiser
      params:
        scaling_config: {target: sgm.modules.diffusionmodules.denoiser_scaling.VScaling}
    network_config: {params: {adm_in_channels: 1584, model_channels: 32}}
    conditioner_config: {target: sgm.modules.GeneralConditioner}
"""
CONFIGS = {"tiny_sd1_v.yaml": TINY_SD1_V, "v1-inference.yaml": V1_INFERENCE, "hybrid.yaml": HYBRID,
           "eps.yaml": EPS_ONLY, "unclip.yaml": UNCLIP, "sdxl_v.yaml": SDXL_V}


@pytest.fixture(scope="module")
def ctx(tiny_dir, tmp_path_factory) -> NodeContext:
    base = tmp_path_factory.mktemp("cfg")
    shutil.copytree(tiny_dir, base / "models")
    paths = Paths(base / "models", base / "in", base / "out", base / "tmp", base / "user")
    paths.ensure_dirs()
    for name, text in CONFIGS.items():
        (paths.models_dir / "configs" / name).write_text(textwrap.dedent(text))
    return NodeContext(node_id="1", prompt_id="p", prompt={}, paths=paths, models=ModelCache(max_items=16))


def _eps_of(model, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 8, 8, generator=gen)
    return model.apply_model(x, torch.tensor([3.0]), context=torch.randn(1, 77, 32, generator=gen))


def test_yaml_sets_prediction_scale_schedule_heads_and_clip_layer(ctx):
    plain, plain_clip, _ = lo.CheckpointLoaderSimple().run(ctx, "tiny_sd1.safetensors")
    model, clip, vae = lo.CheckpointLoader().run(ctx, "tiny_sd1_v.yaml", "tiny_sd1.safetensors")
    assert plain.sampling.prediction == "eps" and model.sampling.prediction == "v"
    assert model.latent_format.scale_factor == pytest.approx(0.3)
    assert torch.equal(model.sampling.sigmas, ModelSampling("v", 0.001, 0.02).sigmas)
    assert not torch.equal(model.sampling.sigmas, plain.sampling.sigmas)
    assert (plain.config.unet.num_heads, model.config.unet.num_heads) == (2, 4)
    assert not torch.allclose(_eps_of(plain), _eps_of(model))
    assert clip.settings.clip_skip == -2 and plain_clip.settings.clip_skip is None
    assert vae is not None


def test_yaml_of_another_model_is_refused(ctx):
    with pytest.raises(ConfigError, match=r"v1-inference.yaml does not describe this checkpoint: "
                                          r"model_channels 320 in the config, 32 in the weights"):
        lo.CheckpointLoader().run(ctx, "v1-inference.yaml", "tiny_sd1.safetensors")
    with pytest.raises(ConfigError, match="conditioning_key hybrid .inpainting. but the UNet takes 4"):
        lo.CheckpointLoader().run(ctx, "hybrid.yaml", "tiny_sd1.safetensors")
    with pytest.raises(ConfigError, match="SD unCLIP config .noise_aug_config.; not supported yet"):
        lo.CheckpointLoader().run(ctx, "unclip.yaml", "tiny_sd1.safetensors")


def test_yaml_that_fits_keeps_what_it_does_not_say(ctx):
    model = lo.CheckpointLoader().run(ctx, "hybrid.yaml", "tiny_sd1_inpaint.safetensors")[0]
    assert model.config.inpaint and model.sampling.prediction == "eps"
    assert model.latent_format.scale_factor == pytest.approx(0.18215)
    # an explicit eps overrides the v detected from the SD2 file's weights
    assert lo.CheckpointLoaderSimple().run(ctx, "tiny_sd2v.safetensors")[0].sampling.prediction == "v"
    assert lo.CheckpointLoader().run(ctx, "eps.yaml", "tiny_sd2v.safetensors")[0].sampling.prediction == "eps"


def test_sgm_yaml_of_sdxl_is_read(ctx):
    model = lo.CheckpointLoader().run(ctx, "sdxl_v.yaml", "tiny_sdxl.safetensors")[0]
    assert model.sampling.prediction == "v" and model.config.family == "sdxl"
