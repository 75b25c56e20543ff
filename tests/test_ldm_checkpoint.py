"""Checkpoint reading refusals, family/size detection (tiny and real layouts), loading."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from ldm.checkpoint import (CheckpointError, detect, load_checkpoint, load_state_dict,
                            read_metadata)
from ldm.configs import (SD2_UNET, SD15_UNET, SD_VAE, SDXL_REFINER_UNET, SDXL_UNET, UNetConfig,
                         VAEConfig)
from ldm.tiny import TINY_SPECS, TINY_VAE, tiny_state_dict, write_tiny_checkpoint
from ldm.unet import UNetModel
from ldm.vae import AutoencoderKL


@pytest.fixture(scope="module")
def sd1_path(tmp_path_factory):
    return write_tiny_checkpoint("tiny_sd1", tmp_path_factory.mktemp("ck") / "tiny_sd1.safetensors")


@pytest.fixture(scope="module")
def sd1(sd1_path):
    return load_state_dict(sd1_path)


class Evil:
    """Unpickling this would create a file (if the loader ran pickle code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------------------------ refusals
def test_pickle_needing_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned.txt"
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "payload": Evil(marker)}, bad)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_state_dict(bad)
    assert not marker.exists()


def test_truncated_safetensors_is_a_clear_error(sd1_path, tmp_path):
    data = sd1_path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state_dict(cut)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state_dict(tiny)


@pytest.mark.parametrize("name", ["model.onnx", "model.gguf", "model.safetensors.txt", "model"])
def test_unknown_extensions_are_refused(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError, match="unsupported extension"):
        load_state_dict(p)


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_state_dict(tmp_path / "nope.safetensors")


def test_extensions_are_case_insensitive(sd1_path, sd1, tmp_path):
    upper = tmp_path / "TINY.SafeTensors"
    shutil.copy(sd1_path, upper)
    assert load_state_dict(upper).keys() == sd1.keys()


@pytest.mark.parametrize("ext", [".ckpt", ".PT", ".pth", ".bin"])
def test_pickled_weights_load_through_weights_only(sd1, tmp_path, ext):
    p = tmp_path / f"tiny{ext}"
    torch.save({"state_dict": sd1, "global_step": 1234, "epoch": 3}, p)
    loaded = load_state_dict(p)
    assert loaded.keys() == sd1.keys()  # non-tensor entries dropped, wrapper unwrapped
    for k in ("model.diffusion_model.out.2.weight", "first_stage_model.quant_conv.weight"):
        assert torch.equal(loaded[k], sd1[k])
    assert detect(loaded) == detect(sd1)


def test_unknown_layout_lists_the_prefixes_found():
    sd = {"foo.bar.weight": torch.zeros(2), "foo.bar.bias": torch.zeros(2),
          "lora_unet_down.alpha": torch.zeros(())}
    with pytest.raises(CheckpointError) as e:
        detect(sd)
    assert "foo.bar" in str(e.value) and "lora_unet_down.alpha" in str(e.value)


def test_unet_without_known_text_encoder_or_size_needs_a_family(sd1):
    unet_only = {k: v for k, v in sd1.items() if k.startswith("model.diffusion_model.")}
    with pytest.raises(CheckpointError, match="unknown checkpoint layout"):
        detect(unet_only)
    assert detect(unet_only, family="sd1").unet == TINY_SPECS["tiny_sd1"].unet


# ------------------------------------------------------------------------------ detection
@pytest.mark.parametrize("name", list(TINY_SPECS))
def test_tiny_families_and_sizes_are_detected(name):
    spec = TINY_SPECS[name]
    cfg = detect(tiny_state_dict(name))
    assert cfg.family == spec.family
    assert cfg.unet == spec.unet
    assert cfg.vae == TINY_VAE
    assert cfg.prediction == ("v" if spec.v_pred else "eps")
    assert cfg.inpaint == (name == "tiny_sd1_inpaint")
    assert cfg.scale_factor == (0.13025 if spec.family.startswith("sdxl") else 0.18215)


def test_sd2_eps_when_norm_bias_small_and_overrides():
    sd = tiny_state_dict("tiny_sd2v")
    assert detect(sd).prediction == "v"
    assert detect(sd, prediction="eps").prediction == "eps"
    flat = {k: (v * 0.1 if k.endswith("norm1.bias") else v) for k, v in sd.items()}
    assert detect(flat).prediction == "eps"
    xl = tiny_state_dict("tiny_sdxl")
    assert detect(xl).prediction == "eps"
    assert detect({**xl, "v_pred": torch.tensor([])}).prediction == "v"
    assert detect(xl, prediction="x0").prediction == "x0"  # LDM configs' parameterization: "x0"
    with pytest.raises(CheckpointError, match="eps, v, x0"):
        detect(xl, prediction="flow")


def _meta_state_dict(unet_cfg: UNetConfig, vae_cfg: VAEConfig, text_key: str) -> dict:
    """Shapes of a full-size checkpoint without allocating it (meta tensors)."""
    with torch.device("meta"):
        unet, vae = UNetModel(unet_cfg), AutoencoderKL(vae_cfg)
    sd = {"model.diffusion_model." + k: v for k, v in unet.state_dict().items()}
    sd.update({"first_stage_model." + k: v for k, v in vae.state_dict().items()})
    sd[text_key] = torch.empty(1, device="meta")
    return sd


@pytest.mark.parametrize("family, unet_cfg, text_keys", [
    ("sd1", SD15_UNET, ["cond_stage_model.transformer.text_model.final_layer_norm.weight"]),
    ("sd2", SD2_UNET, ["cond_stage_model.model.ln_final.weight"]),
    ("sdxl", SDXL_UNET, ["conditioner.embedders.0.transformer.text_model.final_layer_norm.weight",
                         "conditioner.embedders.1.model.ln_final.weight"]),
    ("sdxl_refiner", SDXL_REFINER_UNET, ["conditioner.embedders.0.model.ln_final.weight"]),
])
def test_real_architectures_are_detected_from_shapes(family, unet_cfg, text_keys):
    sd = _meta_state_dict(unet_cfg, SD_VAE, text_keys[0])
    for k in text_keys[1:]:
        sd[k] = torch.empty(1, device="meta")
    cfg = detect(sd, prediction="eps")
    assert (cfg.family, cfg.unet, cfg.vae) == (family, unet_cfg, SD_VAE)
    inpaint = detect(_meta_state_dict(SD15_UNET.replace(in_channels=9), SD_VAE, text_keys[0]),
                     prediction="eps") if family == "sd1" else None
    assert inpaint is None or (inpaint.inpaint and inpaint.unet.in_channels == 9)


def test_metadata_overrides_norm_groups_and_heads(tmp_path):
    sd = tiny_state_dict("tiny_sd1")
    cfg = detect(sd, metadata={"latentgraph.norm_groups": "4", "latentgraph.vae_norm_groups": "2",
                               "latentgraph.num_heads": "4"})
    assert (cfg.unet.norm_groups, cfg.vae.norm_groups, cfg.unet.num_heads) == (4, 2, 4)
    p = tmp_path / "meta.safetensors"
    save_file({"x": torch.zeros(1)}, str(p), metadata={"latentgraph.norm_groups": "4"})
    assert read_metadata(p)["latentgraph.norm_groups"] == "4"
    assert read_metadata(tmp_path / "x.ckpt") == {}


def test_metadata_preview_factors_reach_the_latent_format():
    """A file may carry latent_rgb_factors fitted for its own VAE (the demo model does); a
    malformed value is ignored rather than failing the load."""
    from ldm.model import SD15_RGB_FACTORS, latent_format_for

    sd = tiny_state_dict("tiny_sd1")
    rows = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [-0.1, 0.0, 0.1], [0.3, -0.3, 0.0]]
    cfg = detect(sd, metadata={"latentgraph.latent_rgb_factors": json.dumps(rows),
                               "latentgraph.latent_rgb_factors_bias": "[0.1, -0.2, 0.05]"})
    fmt = latent_format_for(cfg)
    assert [list(r) for r in fmt.latent_rgb_factors] == rows
    assert fmt.latent_rgb_factors_bias == (0.1, -0.2, 0.05)
    for bad in ("[[1, 2]]", "not json", json.dumps(rows[:3])):
        fmt = latent_format_for(detect(sd, metadata={"latentgraph.latent_rgb_factors": bad}))
        assert fmt.latent_rgb_factors == SD15_RGB_FACTORS and fmt.latent_rgb_factors_bias is None


# ------------------------------------------------------------------------------ loading
def test_load_checkpoint_builds_fp32_modules_with_the_file_weights(sd1_path, sd1):
    model, clip, vae = load_checkpoint(sd1_path, output_clip=False)
    assert clip is None
    params = dict(model.unet.named_parameters())
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params.values())
    assert torch.equal(params["out.2.weight"], sd1["model.diffusion_model.out.2.weight"].float())
    assert torch.equal(vae.model.decoder.conv_out.weight,
                       sd1["first_stage_model.decoder.conv_out.weight"].float())
    assert model.config.family == "sd1" and model.latent_format.scale_factor == 0.18215
    assert vae.downscale_ratio == 8 and vae.latent_channels == 4


def test_load_checkpoint_family_and_prediction_overrides(tmp_path):
    p = write_tiny_checkpoint("tiny_sd2v", tmp_path / "m.safetensors")
    model, _, _ = load_checkpoint(p, prediction="eps", output_clip=False, output_vae=False)
    assert model.config.prediction == "eps" and model.sampling.prediction == "eps"
    model, _, _ = load_checkpoint(p, output_clip=False, output_vae=False)
    assert model.sampling.prediction == "v"
    model, _, _ = load_checkpoint(p, prediction="x0", output_clip=False, output_vae=False)
    assert model.config.prediction == "x0" and model.sampling.prediction == "x0"


def test_missing_vae_and_mismatched_weights_are_reported(sd1, tmp_path):
    no_vae = {k: v for k, v in sd1.items() if not k.startswith("first_stage_model.")}
    p = tmp_path / "novae.safetensors"
    save_file(no_vae, str(p))
    with pytest.raises(CheckpointError, match="no VAE"):
        load_checkpoint(p, output_clip=False)
    model, _, vae = load_checkpoint(p, output_clip=False, output_vae=False)
    assert vae is None and model.unet is not None
    broken = dict(sd1)
    del broken["model.diffusion_model.middle_block.1.proj_out.weight"]
    q = tmp_path / "broken.safetensors"
    save_file(broken, str(q))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(q, output_clip=False)


def test_load_checkpoint_with_text_encoder(sd1_path):
    pytest.importorskip("ldm.clip")
    model, clip, vae = load_checkpoint(sd1_path)
    assert clip is not None and vae is not None

