"""The LDM zoo's first stages: KL at f4/f16/f32 with attention inside levels, VQ at f4/f8/f16 (with
and without attention), detected from their real key layouts, loaded by the VAE loader and by a
whole checkpoint, and latents of 3…16 channels at any factor flowing through the latent nodes."""
from __future__ import annotations

import pytest
import torch

from engine.cache import ModelCache
from engine.context import NodeContext
from engine.paths import Paths
from ldm.checkpoint import detect_vae, load_checkpoint, load_state_dict
from ldm.tiny_first_stage import TINY_FIRST_STAGES, tiny_first_stage, write_first_stage, write_vq_ldm
from ldm.vae_loader import load_vae
from ldm.vq import VQModel
from nodes import conditioning as cn
from nodes import latent as la
from nodes import sampling as sa
from nodes import vae as va
from nodes.latent_space import FACTOR_KEY, with_factor

# What CompVis' configs give for each (ch_mult length → factor; attn_resolutions → levels).
EXPECTED = {  # name: (factor, latent channels, kind, attention levels, mid attention)
    "tiny_kl_f4": (4, 3, "kl", (), True),
    "tiny_kl_f16": (16, 8, "kl", (4,), True),
    "tiny_kl_f32": (32, 16, "kl", (4, 5), True),
    "tiny_vq_f4": (4, 3, "vq", (), True),
    "tiny_vq_f4_noattn": (4, 3, "vq", (), False),
    "tiny_vq_f8": (8, 4, "vq", (3,), True),
    "tiny_vq_f16": (16, 8, "vq", (4,), True),
}


def _layout_keys(name: str) -> set[str]:
    """Key names the real files carry for these traits, spelled out independently of our modules."""
    factor, _, kind, levels, mid = EXPECTED[name]
    keys = {"encoder.conv_in.weight", "decoder.conv_out.weight", "quant_conv.weight", "post_quant_conv.weight"}
    for lv in levels:
        keys |= {f"encoder.down.{lv}.attn.0.q.weight", f"decoder.up.{lv}.attn.1.proj_out.weight"}
    if mid:
        keys |= {"encoder.mid.attn_1.k.weight", "decoder.mid.attn_1.v.weight"}
    if kind == "vq":
        keys.add("quantize.embedding.weight")
    return keys


@pytest.mark.parametrize("name", sorted(TINY_FIRST_STAGES))
def test_first_stage_files_are_detected_from_their_keys(name, tmp_path):
    path = write_first_stage(name, tmp_path / f"{name}.safetensors")
    sd = load_state_dict(path)
    assert _layout_keys(name) <= set(sd)
    factor, channels, kind, levels, mid = EXPECTED[name]
    if not mid:
        assert not any(".mid.attn_1." in k for k in sd)
    cfg = detect_vae(sd, prefix="")
    assert (cfg.downscale_ratio, cfg.embed_dim, cfg.kind, cfg.attn_levels, cfg.mid_attn) == \
        (factor, channels, kind, levels, mid)
    assert cfg == TINY_FIRST_STAGES[name]


@pytest.mark.parametrize("name", sorted(TINY_FIRST_STAGES))
def test_vae_loader_encodes_and_decodes_at_the_files_factor(name, tmp_path):
    vae = load_vae(write_first_stage(name, tmp_path / f"{name}.safetensors"))
    factor, channels = EXPECTED[name][:2]
    pixels = torch.rand(2, 64, 96, 3, generator=torch.Generator().manual_seed(1))
    latent = vae.encode(pixels)
    assert latent.shape == (2, channels, 64 // factor, 96 // factor)
    image = vae.decode(latent)
    assert image.shape == (2, 64, 96, 3) and torch.isfinite(image).all()


def test_vq_quantiser_picks_the_nearest_codebook_entry():
    model = tiny_first_stage("tiny_vq_f8")
    z = torch.randn(2, 4, 5, 7, generator=torch.Generator().manual_seed(3))
    book = model.quantize.embedding.weight
    brute = torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, 4), book).argmin(1).reshape(2, 5, 7)
    assert torch.equal(model.quantize.indices(z), brute)
    assert torch.equal(model.quantize(z), book[brute].permute(0, 3, 1, 2))


@torch.no_grad()
def test_vq_encode_is_pre_quantisation_and_decode_quantises():
    """VQModelInterface: encode returns the continuous latent; decode snaps it to the codebook, so
    two latents in the same codebook cells decode to the same image."""
    model: VQModel = tiny_first_stage("tiny_vq_f4").eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    h = model.encode(x)
    snapped = model.quantize(h)
    assert not torch.allclose(h, snapped)  # not already quantised
    assert torch.equal(model.decode(h), model.decode(snapped))
    unquantised = model.decoder(model.post_quant_conv(h))
    assert not torch.allclose(model.decode(h), unquantised)


@pytest.fixture(scope="module")
def vq_ctx(tmp_path_factory) -> NodeContext:
    base = tmp_path_factory.mktemp("vq_ldm")
    paths = Paths(base / "models", base / "in", base / "out", base / "tmp", base / "user")
    paths.ensure_dirs()
    write_vq_ldm(base / "models" / "checkpoints" / "tiny_vq_ldm.safetensors")
    write_first_stage("tiny_kl_f16", base / "models" / "vae" / "tiny_kl_f16.safetensors")
    return NodeContext(node_id="1", prompt_id="p", prompt={}, paths=paths, models=ModelCache(max_items=8))


def test_a_checkpoint_on_a_vq_first_stage_loads_with_scale_one(vq_ctx):
    model, clip, vae = load_checkpoint(vq_ctx.paths.models_dir / "checkpoints" / "tiny_vq_ldm.safetensors")
    assert isinstance(vae.model, VQModel)
    assert model.config.latent_channels == 3 and model.latent_format.scale_factor == 1.0
    assert len(model.latent_format.latent_rgb_factors) == 3


def test_empty_latent_becomes_the_models_latent_space_and_decodes_to_its_pixel_size(vq_ctx):
    model, clip, vae = la_loader(vq_ctx)
    pos = cn.CLIPTextEncode().run(vq_ctx, "a red circle", clip)[0]
    neg = cn.CLIPTextEncode().run(vq_ctx, "", clip)[0]
    empty = la.EmptyLatentImage().run(vq_ctx, 64, 48, 2)[0]
    assert empty["samples"].shape == (2, 4, 6, 8)  # ComfyUI's 4 channels at 1/8, no model known
    out = sa.KSampler().run(vq_ctx, model, 7, 2, 5.0, "euler", "normal", pos, neg, empty, 1.0)[0]
    assert out["samples"].shape == (2, 3, 12, 16) and out[FACTOR_KEY] == 4
    image = va.VAEDecode().run(vq_ctx, out, vae)[0]
    assert image.shape == (2, 48, 64, 3)
    again = va.VAEEncode().run(vq_ctx, image, vae)[0]
    assert again["samples"].shape == (2, 3, 12, 16) and again[FACTOR_KEY] == 4
    crop = la.LatentCrop().run(vq_ctx, again, 32, 32, 16, 8)[0]
    assert crop["samples"].shape[-2:] == (8, 8)  # 32 px at f4, from (x, y) = (4, 2) cells


def test_encoded_latents_carry_a_non_sd_factor_and_upscale_follows_it(vq_ctx):
    from nodes import loaders as lo

    vae = lo.VAELoader().run(vq_ctx, "tiny_kl_f16.safetensors")[0]
    latent = va.VAEEncode().run(vq_ctx, torch.rand(1, 64, 64, 3), vae)[0]
    assert latent["samples"].shape == (1, 8, 4, 4) and latent[FACTOR_KEY] == 16
    up = la.LatentUpscale().run(vq_ctx, latent, "nearest-exact", 128, 128, "disabled")[0]
    assert up["samples"].shape[-2:] == (8, 8)


def test_sd_latents_stay_unmarked_like_comfyuis():
    """SD's factor 8 stays implicit: the dicts look exactly like ComfyUI's."""
    assert with_factor({"samples": torch.zeros(1, 4, 8, 8), FACTOR_KEY: 4}, 8).keys() == {"samples"}


def la_loader(ctx):
    from nodes import loaders as lo

    return lo.CheckpointLoaderSimple().run(ctx, "tiny_vq_ldm.safetensors")
