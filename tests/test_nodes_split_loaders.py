"""UNETLoader / CLIPLoader / DualCLIPLoader / VAELoader on checkpoints split into separate files:
the same seed gives the bit-identical image as CheckpointLoaderSimple on the whole file."""
from __future__ import annotations

from pathlib import Path

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.cache import ModelCache
from engine.context import NodeContext
from engine.paths import Paths
from ldm.checkpoint import CheckpointError
from ldm.clip_keys import openclip_to_hf
from nodes import conditioning as cn
from nodes import latent as la
from nodes import loaders as lo
from nodes import sampling as sa
from nodes import vae as va

UNET, VAE = "model.diffusion_model.", "first_stage_model."
SD1_TE = "cond_stage_model.transformer."
XL_L, XL_G = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."


def _take(sd: dict, prefix: str, new_prefix: str = "") -> dict:
    return {new_prefix + k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _bigg_transformers_layout(sd: dict) -> dict:
    """The bigG encoder as ComfyUI's clip_g.safetensors stores it: transformers names."""
    tensors, proj = openclip_to_hf(sd, XL_G)
    out = {"text_model." + k: v.contiguous() for k, v in tensors.items()}
    out["text_projection.weight"] = proj.contiguous()
    return out


@pytest.fixture(scope="module")
def ctx(tiny_dir, tmp_path_factory) -> NodeContext:
    """models/ with the tiny checkpoints plus their parts in diffusion_models/, unet/ (legacy name),
    text_encoders/, clip/ (legacy name) and vae/, in the layouts published files use."""
    base = tmp_path_factory.mktemp("split")
    m = base / "models"
    shutil.copytree(tiny_dir, m)  # the session's tiny_dir is shared: add nothing to it
    paths = Paths(m, base / "in", base / "out", base / "tmp", base / "user")
    paths.ensure_dirs()
    for d in ("unet", "clip"):
        (m / d).mkdir(exist_ok=True)
    sd1 = load_file(str(m / "checkpoints" / "tiny_sd1.safetensors"))
    save_file(_take(sd1, UNET), str(m / "unet" / "sd1_unet_bare.safetensors"),
              metadata={"latentgraph.family": "sd1"})
    save_file(_take(sd1, SD1_TE), str(m / "clip" / "sd1_clip_l.safetensors"))
    save_file(_take(sd1, VAE), str(m / "vae" / "sd1_vae.safetensors"))
    xl = load_file(str(m / "checkpoints" / "tiny_sdxl.safetensors"))
    save_file(_take(xl, UNET, UNET), str(m / "diffusion_models" / "sdxl_unet.safetensors"),
              metadata={"latentgraph.family": "sdxl"})
    save_file(_take(xl, XL_L), str(m / "text_encoders" / "sdxl_clip_l.safetensors"))
    save_file(_take(xl, XL_G, "model."), str(m / "text_encoders" / "sdxl_clip_g_openclip.safetensors"))
    save_file(_bigg_transformers_layout(xl), str(m / "text_encoders" / "sdxl_clip_g.safetensors"))
    save_file(_take(xl, VAE, VAE), str(m / "vae" / "sdxl_vae.safetensors"))
    sd2 = load_file(str(m / "checkpoints" / "tiny_sd2v.safetensors"))
    save_file(_take(sd2, "cond_stage_model.model."), str(m / "clip" / "sd2_vit_h_bare.safetensors"))
    ref = load_file(str(m / "checkpoints" / "tiny_sdxl_refiner.safetensors"))
    # a 2-layer bigG cannot show what it is: the metadata says it (ARCHITECTURE.md §2 rules)
    save_file(_take(ref, "conditioner.embedders.0.model.", "model."),
              str(m / "text_encoders" / "refiner_g.safetensors"), metadata={"latentgraph.text_encoder": "clip_g"})
    for wrong in (m / "text_encoders" / "a_vae.safetensors", m / "diffusion_models" / "a_vae.safetensors"):
        shutil.copy(m / "vae" / "sd1_vae.safetensors", wrong)
    shutil.copy(m / "checkpoints" / "tiny_sdxl.safetensors", m / "text_encoders" / "whole.safetensors")
    return NodeContext(node_id="1", prompt_id="p", prompt={}, paths=paths, models=ModelCache(max_items=16))


def _image(ctx, model, clip, vae, sdxl=False) -> torch.Tensor:
    if sdxl:
        enc = cn.CLIPTextEncodeSDXL()
        pos = enc.run(ctx, clip, 256, 256, 0, 0, 256, 256, "a red fox", "a fox")[0]
        neg = enc.run(ctx, clip, 256, 256, 0, 0, 256, 256, "", "")[0]
    else:
        pos = cn.CLIPTextEncode().run(ctx, "a red circle", clip)[0]
        neg = cn.CLIPTextEncode().run(ctx, "", clip)[0]
    latent = la.EmptyLatentImage().run(ctx, 64, 64, 1)[0]
    out = sa.KSampler().run(ctx, model, 42, 3, 6.0, "euler", "normal", pos, neg, latent, 1.0)[0]
    return va.VAEDecode().run(ctx, out, vae)[0]


def test_sd1_split_files_give_the_checkpoint_image(ctx):
    whole = _image(ctx, *lo.CheckpointLoaderSimple().run(ctx, "tiny_sd1.safetensors"))
    model = lo.UNETLoader().run(ctx, "sd1_unet_bare.safetensors", "default")[0]
    clip = lo.CLIPLoader().run(ctx, "sd1_clip_l.safetensors", "stable_diffusion")[0]
    vae = lo.VAELoader().run(ctx, "sd1_vae.safetensors")[0]
    assert model.config.family == "sd1" and clip.family == "sd1"
    assert torch.equal(_image(ctx, model, clip, vae), whole)


def test_sdxl_split_files_give_the_checkpoint_image(ctx):
    clip_g = "sdxl_clip_g_openclip.safetensors"
    whole = _image(ctx, *lo.CheckpointLoaderSimple().run(ctx, "tiny_sdxl.safetensors"), sdxl=True)
    model = lo.UNETLoader().run(ctx, "sdxl_unet.safetensors", "fp8_e4m3fn")[0]
    # bigG first: the order of the two files does not matter
    clip = lo.DualCLIPLoader().run(ctx, clip_g, "sdxl_clip_l.safetensors", "sdxl")[0]
    vae = lo.VAELoader().run(ctx, "sdxl_vae.safetensors")[0]
    assert clip.family == "sdxl" and model.config.unet.adm_in_channels == 48 + 6 * 256
    assert torch.equal(_image(ctx, model, clip, vae, sdxl=True), whole)


def test_other_clip_types_are_refused_by_name(ctx):
    with pytest.raises(ValueError, match="type 'sd3' is not supported - only 'stable_diffusion'"):
        lo.CLIPLoader().run(ctx, "sd1_clip_l.safetensors", "sd3")
    with pytest.raises(ValueError, match="type 'flux' is not supported - only 'sdxl'"):
        lo.DualCLIPLoader().run(ctx, "sdxl_clip_l.safetensors", "sdxl_clip_g.safetensors", "flux")


def test_wrong_files_in_the_separate_loaders_are_clear_errors(ctx):
    with pytest.raises(CheckpointError, match="not a CLIP text encoder"):
        lo.CLIPLoader().run(ctx, "a_vae.safetensors", "stable_diffusion")
    with pytest.raises(CheckpointError, match="holds 2 text encoders"):
        lo.CLIPLoader().run(ctx, "whole.safetensors", "stable_diffusion")
    with pytest.raises(CheckpointError, match="no UNet"):
        lo.UNETLoader().run(ctx, "a_vae.safetensors", "default")


def test_separate_loaders_declare_comfyui_inputs():
    from nodes.plugins import load_all
    from nodes.registry import REGISTRY

    load_all()
    unet = REGISTRY.get("UNETLoader").object_info(None)
    assert unet["input"]["required"]["weight_dtype"][0] == ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast",
                                                            "fp8_e5m2"]
    clip = REGISTRY.get("CLIPLoader").object_info(None)
    assert clip["input"]["required"]["type"][0][0] == "stable_diffusion"
    assert list(clip["input"]["optional"]) == ["device"] and clip["output"] == ["CLIP"]
    dual = REGISTRY.get("DualCLIPLoader").object_info(None)
    assert list(dual["input"]["required"]) == ["clip_name1", "clip_name2", "type"]


def test_bigg_in_transformers_layout_matches_up_to_the_projection_layout(ctx):
    """ComfyUI's clip_g.safetensors layout: the same numbers, but the projection is stored as a
    contiguous [out, in] matrix where the checkpoint holds its transpose; the matmul then rounds
    differently in the last bit (measured: pooled differs by 6e-7), the token states not at all."""
    _, whole, _ = lo.CheckpointLoaderSimple().run(ctx, "tiny_sdxl.safetensors")
    clip = lo.DualCLIPLoader().run(ctx, "sdxl_clip_l.safetensors", "sdxl_clip_g.safetensors", "sdxl")[0]
    (cond_a, pooled_a), (cond_b, pooled_b) = whole.encode_sdxl("a red fox", "a fox"), \
        clip.encode_sdxl("a red fox", "a fox")
    assert torch.equal(cond_a, cond_b)
    assert torch.allclose(pooled_a, pooled_b, atol=1e-5, rtol=0) and pooled_a.abs().max() > 0.1


@pytest.mark.parametrize("ckpt,clip_file,family", [
    ("tiny_sd2v.safetensors", "sd2_vit_h_bare.safetensors", "sd2"),
    ("tiny_sdxl_refiner.safetensors", "refiner_g.safetensors", "sdxl_refiner")])
def test_single_openclip_files_load_as_their_family(ctx, ckpt, clip_file, family):
    """CLIPLoader stable_diffusion: an OpenCLIP file is SD2's ViT-H unless it is bigG (refiner)."""
    whole = lo.CheckpointLoaderSimple().run(ctx, ckpt)[1]
    clip = lo.CLIPLoader().run(ctx, clip_file, "stable_diffusion")[0]
    assert clip.family == whole.family == family
    (cond_a, pooled_a), (cond_b, pooled_b) = whole.encode("a castle"), clip.encode("a castle")
    assert torch.equal(cond_a, cond_b) and torch.equal(pooled_a, pooled_b)
