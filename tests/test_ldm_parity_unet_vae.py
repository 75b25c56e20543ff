"""Numerical parity of our UNet / AutoencoderKL with diffusers (test-only reference) on the same
single-file weights: the tiny checkpoints are converted with diffusers' own LDM → diffusers key
conversion (diffusers.loaders.single_file_utils), never with our code."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
from diffusers import AutoencoderKL as DAutoencoderKL  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402
from diffusers.loaders.single_file_utils import (  # noqa: E402
    convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint)

from ldm.checkpoint import load_checkpoint, load_state_dict  # noqa: E402
from ldm.configs import UNetConfig, VAEConfig  # noqa: E402
from ldm.tiny import write_tiny_checkpoint  # noqa: E402

FAMILIES = ["tiny_sd1", "tiny_sd2v", "tiny_sdxl", "tiny_sdxl_refiner", "tiny_sd1_inpaint"]


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("parity")
    return {n: write_tiny_checkpoint(n, d / f"{n}.safetensors") for n in FAMILIES}


def diffusers_unet_config(cfg: UNetConfig) -> dict:
    """UNet2DConditionModel config for our UNetConfig (diffusers' `attention_head_dim` is the
    head count per level when `num_attention_heads` is unset)."""
    chans = [cfg.model_channels * m for m in cfg.channel_mult]
    attn = [d > 0 for d in cfg.transformer_depth]
    conf = dict(
        sample_size=8, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        block_out_channels=chans, layers_per_block=cfg.num_res_blocks,
        cross_attention_dim=cfg.context_dim,
        attention_head_dim=[cfg.heads_for(c)[0] for c in chans],
        transformer_layers_per_block=[max(d, 1) for d in cfg.transformer_depth],
        use_linear_projection=cfg.use_linear_in_transformer, norm_num_groups=cfg.norm_groups)
    assert cfg.transformer_depth_middle == max(cfg.transformer_depth[-1], 1)
    if cfg.adm_in_channels:
        conf.update(addition_embed_type="text_time", addition_time_embed_dim=256,
                    projection_class_embeddings_input_dim=cfg.adm_in_channels)
    return conf


def diffusers_vae_config(cfg: VAEConfig) -> dict:
    """diffusers AutoencoderKL config for our VAEConfig."""
    n = len(cfg.ch_mult)
    return dict(in_channels=cfg.in_channels, out_channels=cfg.out_ch,
                down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
                block_out_channels=[cfg.ch * m for m in cfg.ch_mult],
                layers_per_block=cfg.num_res_blocks, latent_channels=cfg.embed_dim,
                norm_num_groups=cfg.norm_groups, sample_size=64)


def reference_unet(path, cfg: UNetConfig) -> UNet2DConditionModel:
    sd = {k: v.float() for k, v in load_state_dict(path).items()}
    conf = diffusers_unet_config(cfg)
    ref = UNet2DConditionModel(**conf)
    missing, unexpected = ref.load_state_dict(convert_ldm_unet_checkpoint(sd, conf), strict=False)
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    return ref.eval()


def reference_vae(path, cfg: VAEConfig) -> DAutoencoderKL:
    sd = {k: v.float() for k, v in load_state_dict(path).items()}
    conf = diffusers_vae_config(cfg)
    ref = DAutoencoderKL(**conf)
    missing, unexpected = ref.load_state_dict(convert_ldm_vae_checkpoint(sd, conf), strict=False)
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    return ref.eval()


@pytest.mark.parametrize("name", FAMILIES)
@torch.no_grad()
def test_unet_forward_matches_diffusers(ckpt_dir, name):
    model, _, _ = load_checkpoint(ckpt_dir[name], output_clip=False, output_vae=False)
    cfg = model.config.unet
    ref = reference_unet(ckpt_dir[name], cfg)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, cfg.in_channels, 8, 12, generator=gen)
    t = torch.tensor([999.0, 37.0])
    ctx = torch.randn(2, 7, cfg.context_dim, generator=gen)
    kwargs, y = {}, None
    if cfg.adm_in_channels:
        pooled = torch.randn(2, 48, generator=gen)
        opts = dict(pooled_output=pooled, width=1024, height=768, crop_w=16, crop_h=8,
                    target_width=896, target_height=640, aesthetic_score=5.5)
        y = model.encode_adm(opts, 2)
        if model.config.family == "sdxl":
            ids = [768, 1024, 8, 16, 640, 896]
        else:
            ids = [768, 1024, 8, 16, 5.5]
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled,
                                       "time_ids": torch.tensor([ids] * 2, dtype=torch.float32)}
    ours = model.unet(x, t, ctx, y)
    theirs = ref(x, t, encoder_hidden_states=ctx, **kwargs).sample
    assert ours.shape == theirs.shape == (2, cfg.out_channels, 8, 12)
    assert ours.abs().mean() > 1e-3  # a meaningful output, not all zeros
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["tiny_sd1", "tiny_sd2v", "tiny_sdxl"])
@torch.no_grad()
def test_vae_encode_decode_match_diffusers(ckpt_dir, name):
    _, _, vae = load_checkpoint(ckpt_dir[name], output_clip=False)
    ref = reference_vae(ckpt_dir[name], vae.config)
    pixels = torch.rand(2, 40, 48, 3, generator=torch.Generator().manual_seed(1))
    ours_z = vae.encode(pixels)
    theirs_z = ref.encode(pixels.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mode()
    torch.testing.assert_close(ours_z, theirs_z, atol=1e-4, rtol=1e-4)
    ours_img = vae.decode(ours_z)
    theirs_img = ((ref.decode(theirs_z).sample + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    assert ours_img.shape == (2, 40, 48, 3)
    torch.testing.assert_close(ours_img, theirs_img, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["tiny_sd1", "tiny_sd2v", "tiny_sdxl", "tiny_sdxl_refiner"])
@torch.no_grad()
def test_diffusers_from_single_file_reads_our_files_the_same(ckpt_dir, tmp_path, name):
    """diffusers' own single-file loader (offline, local config folder) on the tiny files."""
    model, _, vae = load_checkpoint(ckpt_dir[name], output_clip=False)
    cfg = model.config.unet
    UNet2DConditionModel(**diffusers_unet_config(cfg)).save_config(tmp_path / "unet")
    DAutoencoderKL(**diffusers_vae_config(vae.config)).save_config(tmp_path / "vae")
    common = dict(config=str(tmp_path), local_files_only=True, torch_dtype=torch.float32)
    ref = UNet2DConditionModel.from_single_file(str(ckpt_dir[name]), subfolder="unet", **common)
    gen = torch.Generator().manual_seed(3)
    x, t = torch.randn(1, 4, 8, 8, generator=gen), torch.tensor([421.0])
    ctx = torch.randn(1, 6, cfg.context_dim, generator=gen)
    kwargs, y = {}, None
    if cfg.adm_in_channels:
        y = model.encode_adm({"width": 512, "height": 512}, 1)
        n_ids = 6 if model.config.family == "sdxl" else 5
        ids = [512.0, 512.0, 0.0, 0.0] + ([512.0, 512.0] if n_ids == 6 else [6.0])
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.zeros(1, 48),
                                       "time_ids": torch.tensor([ids])}
    torch.testing.assert_close(model.unet(x, t, ctx, y),
                               ref(x, t, encoder_hidden_states=ctx, **kwargs).sample,
                               atol=1e-4, rtol=1e-4)
    ref_vae = DAutoencoderKL.from_single_file(str(ckpt_dir[name]), subfolder="vae", **common)
    z = torch.randn(1, 4, 8, 8, generator=gen)
    torch.testing.assert_close(vae.model.decode(z), ref_vae.decode(z).sample, atol=1e-4, rtol=1e-4)
