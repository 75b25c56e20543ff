"""LoRA: key mapping onto the LDM UNet / text encoders, exact deltas, bit-identical restore."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ldm.configs import UNetConfig
from ldm.lora import (LoraError, LoraPatch, load_lora, lora_patches, lora_patches_for,
                      make_random_lora, patched_weights)
from ldm.lora_keys import ldm_to_diffusers, split_lora_key, unet_layout
from ldm.tiny_text import text_encoder_state_dict
from ldm.unet import UNetModel

SD1_CFG = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                     transformer_depth=(1, 1), num_heads=2, context_dim=32, norm_groups=8)
XL_CFG = UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2,
                    transformer_depth=(0, 1, 2), transformer_depth_middle=2, num_heads=-1,
                    num_head_channels=16, context_dim=80, use_linear_in_transformer=True,
                    adm_in_channels=64, norm_groups=8)
PREFIX = "model.diffusion_model."


@pytest.fixture(scope="module")
def sd1_unet():
    torch.manual_seed(0)
    return UNetModel(SD1_CFG)


@pytest.fixture(scope="module")
def xl_unet():
    torch.manual_seed(1)
    return UNetModel(XL_CFG)


def diffusers_reference(unet: UNetModel, cfg: UNetConfig) -> dict[str, torch.Tensor]:
    """diffusers' own LDM → diffusers UNet conversion of the same tensors (test-only reference)."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = {"layers_per_block": cfg.num_res_blocks, "class_embed_type": None,
              "num_class_embeds": None,
              "addition_embed_type": "text_time" if cfg.adm_in_channels else None}
    ckpt = {PREFIX + k: v for k, v in unet.state_dict().items()}
    return convert_ldm_unet_checkpoint(ckpt, config)


@pytest.mark.parametrize("which", ["sd1", "xl"])
def test_ldm_to_diffusers_agrees_with_diffusers_conversion(which, sd1_unet, xl_unet):
    unet, cfg = (sd1_unet, SD1_CFG) if which == "sd1" else (xl_unet, XL_CFG)
    ours = ldm_to_diffusers(dict(unet.named_parameters()))
    ref = diffusers_reference(unet, cfg)
    params = dict(unet.named_parameters())
    modules = {n[:-7] for n in params if n.endswith(".weight")}
    assert set(ours) == modules  # every weight-owning module is mapped
    for ldm_name, diff_name in ours.items():
        expected = ref[diff_name + ".weight"]
        assert torch.equal(expected.flatten(), params[ldm_name + ".weight"].detach().flatten()), \
            (ldm_name, diff_name)


def test_unet_layout_from_names(sd1_unet, xl_unet):
    assert unet_layout(dict(sd1_unet.named_parameters())) == (2, 1)
    assert unet_layout(dict(xl_unet.named_parameters())) == (3, 2)


def test_kohya_names_map_onto_ldm_tensors(xl_unet):
    params = dict(xl_unet.named_parameters())
    rank = 2
    cases = {
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q":
            "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight",
        "lora_unet_down_blocks_2_attentions_1_transformer_blocks_1_attn2_to_out_0":
            "input_blocks.8.1.transformer_blocks.1.attn2.to_out.0.weight",
        "lora_unet_mid_block_attentions_0_proj_in": "middle_block.1.proj_in.weight",
        "lora_unet_up_blocks_0_attentions_2_transformer_blocks_1_ff_net_0_proj":
            "output_blocks.2.1.transformer_blocks.1.ff.net.0.proj.weight",
        "lora_unet_up_blocks_1_resnets_2_conv_shortcut": "output_blocks.5.0.skip_connection.weight",
        "lora_unet_down_blocks_0_resnets_1_time_emb_proj": "input_blocks.2.0.emb_layers.1.weight",
        "lora_unet_down_blocks_0_downsamplers_0_conv": "input_blocks.3.0.op.weight",
        "lora_unet_up_blocks_1_upsamplers_0_conv": "output_blocks.5.2.conv.weight",
        "lora_unet_up_blocks_2_resnets_0_conv2": "output_blocks.6.0.out_layers.3.weight",
        "lora_unet_time_embedding_linear_1": "time_embed.0.weight",
        "lora_unet_add_embedding_linear_2": "label_emb.0.2.weight",
        "lora_unet_conv_in": "input_blocks.0.0.weight",
        "lora_unet_input_blocks_4_1_proj_out": "input_blocks.4.1.proj_out.weight",  # LDM-style
    }
    lora = {}
    for key, target in cases.items():
        shape = params[target].shape
        lora[key + ".lora_down.weight"] = torch.randn(rank, *shape[1:])
        lora[key + ".lora_up.weight"] = torch.randn(shape[0], rank, *([1, 1] if len(shape) == 4 else []))
    match = lora_patches(lora, unet_params=params, unet_config=XL_CFG)
    assert match.unmatched == []
    assert set(match.unet) == set(cases.values())
    for key, target in cases.items():
        assert match.unet[target].up is lora[key + ".lora_up.weight"]


def test_strength_changes_weight_by_exact_scaled_product():
    lin = nn.Linear(6, 5)
    original = lin.weight.detach().clone()
    up, down = torch.randn(5, 3), torch.randn(3, 6)
    patch = LoraPatch(up, down, alpha=1.5)
    with patched_weights(lin, {"weight": [(0.7, patch)]}):
        expected = original + 0.7 * (up @ down) * (1.5 / 3)
        torch.testing.assert_close(lin.weight.detach(), expected, atol=1e-6, rtol=0)
    assert torch.equal(lin.weight, original)


def test_restore_is_bit_identical_for_fp16_and_several_patches():
    conv = nn.Conv2d(4, 8, 3).half()
    before = {n: p.detach().clone() for n, p in conv.named_parameters()}
    before_ptr = conv.weight.data_ptr()
    patch = LoraPatch(torch.randn(8, 2, 1, 1), torch.randn(2, 4, 3, 3), alpha=None)
    with patched_weights(conv, {"weight": [(1.0, patch), (-0.3, patch)], "missing": [(1.0, patch)]}):
        assert not torch.equal(conv.weight, before["weight"])
        assert conv.weight.dtype == torch.float16
    for name, p in conv.named_parameters():
        assert torch.equal(p, before[name])
    assert conv.weight.data_ptr() == before_ptr


def test_restore_after_exception():
    lin = nn.Linear(3, 3)
    before = lin.weight.detach().clone()
    with pytest.raises(RuntimeError):
        with patched_weights(lin, {"weight": [(1.0, LoraPatch(torch.ones(3, 1), torch.ones(1, 3)))]}):
            raise RuntimeError("interrupted")
    assert torch.equal(lin.weight, before)


def test_locon_conv_delta(sd1_unet):
    params = dict(sd1_unet.named_parameters())
    target = "input_blocks.1.0.in_layers.2.weight"
    shape = params[target].shape  # [32, 32, 3, 3]
    down, up = torch.randn(4, shape[1], 3, 3), torch.randn(shape[0], 4, 1, 1)
    lora = {"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": down,
            "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight": up,
            "lora_unet_down_blocks_0_resnets_0_conv1.alpha": torch.tensor(2.0)}
    match = lora_patches(lora, unet_params=params)
    delta = match.unet[target].delta(shape)
    # The composition of the two convs is a single 3×3 conv with this kernel:
    expected = torch.einsum("or,rikl->oikl", up[:, :, 0, 0], down) * (2.0 / 4)
    torch.testing.assert_close(delta, expected, atol=1e-5, rtol=0)


def test_diffusers_and_peft_names(sd1_unet):
    params = dict(sd1_unet.named_parameters())
    base = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    w = params["input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"]
    lora = {
        f"unet.{base}.to_k.lora_A.weight": torch.randn(2, w.shape[1]),
        f"unet.{base}.to_k.lora_B.weight": torch.randn(w.shape[0], 2),
        f"{base}.processor.to_out_lora.down.weight": torch.randn(2, 32),
        f"{base}.processor.to_out_lora.up.weight": torch.randn(32, 2),
        f"base_model.model.unet.{base}.to_v.lora.down.weight": torch.randn(2, w.shape[1]),
        f"base_model.model.unet.{base}.to_v.lora.up.weight": torch.randn(32, 2),
    }
    match = lora_patches(lora, unet_params=params)
    assert match.unmatched == []
    assert set(match.unet) == {"input_blocks.1.1.transformer_blocks.0.attn2." + n for n in
                               ("to_k.weight", "to_out.0.weight", "to_v.weight")}
    assert match.unet["input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"].alpha is None


def test_unmatched_keys_are_reported(sd1_unet):
    params = dict(sd1_unet.named_parameters())
    lora = {
        "lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight": torch.randn(2, 32),
        "lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight": torch.randn(32, 2),
        "lora_unet_conv_in.lora_down.weight": torch.randn(2, 7, 3, 3),  # wrong shape
        "lora_unet_conv_in.lora_up.weight": torch.randn(32, 2, 1, 1),
        "something_else.weight": torch.randn(3),
    }
    match = lora_patches(lora, unet_params=params)
    assert match.unet == {}
    assert match.unmatched == sorted(lora)


def test_text_encoder_keys():
    from ldm.clip import TextEncoder

    sd = text_encoder_state_dict("sdxl_l", width=32, layers=2, seed=0)
    sd.update(text_encoder_state_dict("sdxl_g", width=48, layers=2, seed=1))
    te = TextEncoder.from_checkpoint(sd)
    lora = {}
    for prefix, width in (("lora_te1_", 32), ("lora_te2_", 48)):
        key = f"{prefix}text_model_encoder_layers_1_mlp_fc1"
        lora[key + ".lora_down.weight"] = torch.randn(2, width)
        lora[key + ".lora_up.weight"] = torch.randn(4 * width, 2)
    lora["text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj.lora_A.weight"] = torch.randn(2, 48)
    lora["text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj.lora_B.weight"] = torch.randn(48, 2)
    match = lora_patches(lora, te_params=te.param_names())
    assert match.unmatched == []
    assert set(match.te) == {"l.encoder.layers.1.mlp.fc1.weight",
                             "g.text_model.encoder.layers.1.mlp.fc1.weight",
                             "g.text_model.encoder.layers.0.self_attn.k_proj.weight"}
    assert set(lora_patches_for(te, lora)) == set(match.te)
    assert len(te.clone().add_patches(match.te, 1.0)) == 3


def test_make_random_lora_matches_everything_and_changes_outputs(sd1_unet):
    from ldm.clip import TextEncoder

    ckpt = {PREFIX + k: v for k, v in sd1_unet.state_dict().items()}
    ckpt.update(text_encoder_state_dict("sd1", width=32, layers=2, seed=0))
    lora = make_random_lora(ckpt, rank=4, seed=3)
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in lora)
    assert any("down_blocks_0_attentions_0" in k for k in lora)  # diffusers-style names
    te = TextEncoder.from_checkpoint(ckpt)
    match = lora_patches(lora, unet_params=dict(sd1_unet.named_parameters()),
                         te_params=te.param_names(), unet_config=SD1_CFG)
    assert match.unmatched == []
    assert "input_blocks.1.0.in_layers.2.weight" in match.unet  # the LoCon conv
    assert len(match.te) == 4
    patched = te.clone()
    patched.add_patches(match.te, 1.0)
    assert (patched.encode("a cat")[0] - te.encode("a cat")[0]).abs().max() > 1e-3
    assert make_random_lora(ckpt, rank=4, seed=3).keys() == lora.keys()


def test_load_lora_formats(tmp_path):
    from safetensors.torch import save_file

    tensors = {"lora_unet_conv_in.alpha": torch.tensor(1.0)}
    save_file(tensors, str(tmp_path / "a.safetensors"))
    torch.save(tensors, tmp_path / "b.PT")
    assert torch.equal(load_lora(tmp_path / "a.safetensors")["lora_unet_conv_in.alpha"], torch.tensor(1.0))
    assert set(load_lora(tmp_path / "b.PT")) == set(tensors)
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(LoraError):
        load_lora(tmp_path / "c.txt")
    torch.save({"obj": nn.Linear(1, 1)}, tmp_path / "d.pt")  # needs code to unpickle
    with pytest.raises(LoraError):
        load_lora(tmp_path / "d.pt")


def test_split_lora_key():
    assert split_lora_key("lora_unet_x.lora_up.weight") == ("lora_unet_x", "up")
    assert split_lora_key("a.attn1.processor.to_out_lora.down.weight") == ("a.attn1.to_out.0", "down")
    assert split_lora_key("lora_te_x.alpha") == ("lora_te_x", "alpha")
    assert split_lora_key("nothing") is None


def test_tiny_lora_file_applies_to_tiny_checkpoint(tiny_dir):
    from ldm.checkpoint import load_checkpoint

    model, clip, _ = load_checkpoint(tiny_dir / "checkpoints" / "tiny_sd1.safetensors",
                                     output_vae=False)
    lora = load_lora(tiny_dir / "loras" / "tiny_lora_sd1.safetensors")
    match = lora_patches(lora, unet_params=dict(model.unet.named_parameters()),
                         te_params=clip.param_names(), unet_config=model.config.unet)
    assert match.unmatched == [] and match.unet and match.te
    m2 = model.clone()
    assert set(m2.add_patches(lora_patches_for(model, lora), 0.8)) == set(match.unet)
    name = next(iter(match.unet))
    before = model.unet.get_parameter(name).detach().clone()
    with m2.patched():
        assert not torch.equal(model.unet.get_parameter(name), before)
    assert torch.equal(model.unet.get_parameter(name), before)


REAL_DIFFUSERS_CONFIGS = {
    "sd15": ("SD15_UNET", dict(cross_attention_dim=768, attention_head_dim=8)),
    "sdxl": ("SDXL_UNET", dict(
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
        attention_head_dim=(5, 10, 20), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)),
}


@pytest.mark.parametrize("which", sorted(REAL_DIFFUSERS_CONFIGS))
def test_real_size_map_covers_diffusers_unet_exactly(which):
    """On the meta device (no memory): every diffusers UNet weight has exactly one LDM source of
    the same shape — the map used for real kohya LoRAs of SD1.5 and SDXL."""
    from diffusers import UNet2DConditionModel

    import ldm.configs as configs

    cfg_name, diffusers_kwargs = REAL_DIFFUSERS_CONFIGS[which]
    with torch.device("meta"):
        ours = dict(UNetModel(getattr(configs, cfg_name)).named_parameters())
        theirs = dict(UNet2DConditionModel(**diffusers_kwargs).named_parameters())
    mapping = ldm_to_diffusers(ours)
    assert sorted(mapping.values()) == sorted(n[:-7] for n in theirs if n.endswith(".weight"))
    for ldm_name, diff_name in mapping.items():
        a, b = ours[ldm_name + ".weight"].shape, theirs[diff_name + ".weight"].shape
        assert a[0] == b[0] and a.numel() == b.numel(), (ldm_name, a, diff_name, b)


def test_loha_and_lokr_deltas(sd1_unet):
    params = dict(sd1_unet.named_parameters())
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    target = "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"  # [32, 32]
    w1a, w1b, w2a, w2b = torch.randn(32, 2), torch.randn(2, 32), torch.randn(32, 2), torch.randn(2, 32)
    loha = {f"{name}.hada_w1_a": w1a, f"{name}.hada_w1_b": w1b, f"{name}.hada_w2_a": w2a,
            f"{name}.hada_w2_b": w2b, f"{name}.alpha": torch.tensor(1.0)}
    patch = lora_patches(loha, unet_params=params).unet[target]
    torch.testing.assert_close(patch.delta(params[target].shape), (w1a @ w1b) * (w2a @ w2b) * 0.5)

    k1, k2a, k2b = torch.randn(4, 2), torch.randn(8, 3), torch.randn(3, 16)
    lokr = {f"{name}.lokr_w1": k1, f"{name}.lokr_w2_a": k2a, f"{name}.lokr_w2_b": k2b,
            f"{name}.alpha": torch.tensor(6.0)}
    patch = lora_patches(lokr, unet_params=params).unet[target]
    expected = torch.kron(k1, k2a @ k2b) * (6.0 / 3)
    torch.testing.assert_close(patch.delta(params[target].shape), expected)

    tucker = {f"{name}.lora_up.weight": torch.randn(32, 2), f"{name}.lora_down.weight": torch.randn(2, 32),
              f"{name}.lora_mid.weight": torch.randn(2, 2, 3, 3)}
    assert lora_patches(tucker, unet_params=params).unmatched == sorted(tucker)
