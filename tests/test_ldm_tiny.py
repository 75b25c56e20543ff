"""Tiny-model factory, DiffusionModel wrapper maths, VAE wrapper (plain and tiled), devices."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ldm import devices
from ldm.checkpoint import load_checkpoint
from ldm.model import SD15_RGB_FACTORS, SDXL_RGB_FACTORS
from ldm.tiny import TINY_SPECS, make_tiny_models, tiny_vae, write_tiny_checkpoint
from ldm.unet import timestep_embedding
from ldm.vae import VAE, run_tiled


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    return {n: write_tiny_checkpoint(n, d / f"{n}.safetensors") for n in TINY_SPECS}


def _model(paths, name):
    return load_checkpoint(paths[name], output_clip=False, output_vae=False)[0]


# ------------------------------------------------------------------------------ factory
def test_tiny_files_are_small_and_deterministic(paths, tmp_path):
    for name, p in paths.items():
        assert p.stat().st_size < 15_000_000, name
    again = write_tiny_checkpoint("tiny_sdxl", tmp_path / "again.safetensors")
    assert again.read_bytes() == paths["tiny_sdxl"].read_bytes()
    # the global RNG is not disturbed by the factory
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    write_tiny_checkpoint("tiny_sd1", tmp_path / "x.safetensors")
    assert torch.equal(torch.rand(3), expected)


def test_make_tiny_models_writes_every_file(tmp_path):
    pytest.importorskip("ldm.lora")
    out = make_tiny_models(tmp_path)
    for name in TINY_SPECS:
        assert (tmp_path / "checkpoints" / f"{name}.safetensors") == out[name]
    assert out["tiny_lora_sd1"].parent == tmp_path / "loras" and out["tiny_lora_sd1"].exists()
    assert out["tiny_embedding_sd1"].parent == tmp_path / "embeddings"
    from ldm.lora import load_lora, lora_patches_for

    model = load_checkpoint(out["tiny_sd1"], output_clip=False, output_vae=False)[0]
    patches = lora_patches_for(model, load_lora(out["tiny_lora_sd1"]))
    assert model.clone().add_patches(patches, 1.0)


@pytest.mark.parametrize("name", list(TINY_SPECS))
def test_unet_forward_odd_sizes_and_depends_on_sigma(paths, name):
    model = _model(paths, name)
    cfg = model.config.unet
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 9, 11, generator=gen)
    ctx = torch.randn(1, 77, cfg.context_dim, generator=gen)
    y = model.encode_adm({}, 2)
    hi = model.apply_model(x, torch.tensor([14.6, 14.6]), context=ctx, y=y)
    lo = model.apply_model(x, torch.tensor([0.03, 0.03]), context=ctx, y=y)
    assert hi.shape == lo.shape == x.shape and torch.isfinite(hi).all()
    assert (hi - lo).abs().mean() > 1e-2  # the timestep matters (TESTING.md)


# ------------------------------------------------------------------------------ wrapper maths
def _manual(model, x, sigma, ctx, y=None, concat=None):
    s = sigma.reshape(-1, 1, 1, 1)
    x_in = x / (s ** 2 + 1).sqrt()
    if concat is not None:
        x_in = torch.cat([x_in, concat], 1)
    t = model.sampling.timestep(sigma)
    with torch.no_grad():
        out = model.unet(x_in, t, ctx, y)
    if model.config.prediction == "eps":
        return x - out * s
    return x / (s ** 2 + 1) - out * s / (s ** 2 + 1).sqrt()


@pytest.mark.parametrize("name", ["tiny_sd1", "tiny_sd2v", "tiny_sdxl"])
def test_apply_model_is_cin_timestep_and_prediction_conversion(paths, name):
    model = _model(paths, name)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    sigma = torch.tensor([7.3, 0.4])
    ctx = torch.randn(2, 5, model.config.unet.context_dim, generator=gen)
    y = model.encode_adm({"width": 512, "height": 512}, 2)
    got = model.apply_model(x, sigma, context=ctx, y=y)
    torch.testing.assert_close(got, _manual(model, x, sigma, ctx, y), atol=1e-6, rtol=1e-6)
    assert model.sampling.prediction == ("v" if name == "tiny_sd2v" else "eps")


def test_inpaint_default_concat_is_ones_mask_and_zero_image(paths):
    model = _model(paths, "tiny_sd1_inpaint")
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    ctx = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(3))
    sigma = torch.tensor([2.0])
    default = model.apply_model(x, sigma, context=ctx)
    concat = torch.cat([torch.ones(1, 1, 8, 8), torch.zeros(1, 4, 8, 8)], 1)
    torch.testing.assert_close(default, _manual(model, x, sigma, ctx, concat=concat))
    other = torch.cat([torch.zeros(1, 1, 8, 8), torch.randn(1, 4, 8, 8)], 1)
    assert not torch.allclose(default, model.apply_model(x, sigma, context=ctx, concat=other))
    with pytest.raises(ValueError, match="concat channels"):
        model.apply_model(x, sigma, context=ctx, concat=torch.zeros(1, 4, 8, 8))


def test_encode_adm_layout(paths):
    xl, ref = _model(paths, "tiny_sdxl"), _model(paths, "tiny_sdxl_refiner")
    assert _model(paths, "tiny_sd1").encode_adm({}, 1) is None
    pooled = torch.randn(1, 48)
    y = xl.encode_adm({"pooled_output": pooled, "width": 1024, "height": 768, "crop_w": 4,
                       "crop_h": 2, "target_width": 1024, "target_height": 768}, 3)
    assert y.shape == (3, 48 + 6 * 256)
    assert torch.equal(y[:, :48], pooled.expand(3, -1))
    emb = timestep_embedding(torch.tensor([768.0, 1024.0, 2.0, 4.0, 768.0, 1024.0]), 256)
    torch.testing.assert_close(y[0, 48:], emb.reshape(-1))
    r = ref.encode_adm({"aesthetic_score": 2.5}, 1)
    assert r.shape == (1, 48 + 5 * 256) and torch.equal(r[0, :48], torch.zeros(48))
    torch.testing.assert_close(r[0, -256:], timestep_embedding(torch.tensor([2.5]), 256)[0])


def test_latent_formats(paths):
    sd1, xl = _model(paths, "tiny_sd1"), _model(paths, "tiny_sdxl")
    assert sd1.latent_format.latent_rgb_factors == SD15_RGB_FACTORS
    assert xl.latent_format.scale_factor == 0.13025
    assert xl.latent_format.latent_rgb_factors == SDXL_RGB_FACTORS
    x = torch.randn(1, 4, 2, 2)
    torch.testing.assert_close(sd1.latent_format.process_out(sd1.latent_format.process_in(x)), x)


def test_clone_add_patches_and_patched_restores(paths):
    model = _model(paths, "tiny_sd1")

    class Delta:
        def delta(self, shape):
            return torch.full(shape, 0.5)

    clone = model.clone()
    added = clone.add_patches({"model.diffusion_model.out.2.bias": Delta(), "nope.weight": Delta()},
                              strength=2.0)
    assert added == ["out.2.bias"] and model.patches == {}
    assert clone.unet is model.unet
    before = model.unet.out[2].bias.detach().clone()
    with clone.patched():
        torch.testing.assert_close(model.unet.out[2].bias, before + 1.0)
    assert torch.equal(model.unet.out[2].bias, before)
    with model.patched():
        assert torch.equal(model.unet.out[2].bias, before)


# ------------------------------------------------------------------------------ VAE wrapper
@pytest.fixture(scope="module")
def vae():
    return VAE(tiny_vae(7))


def test_vae_roundtrip_shapes_and_range(vae):
    pixels = torch.rand(2, 67, 50, 3)
    z = vae.encode(pixels)
    assert z.shape == (2, 4, 8, 6)  # cropped to a multiple of 8
    img = vae.decode(z * 20)
    assert img.shape == (2, 64, 48, 3) and img.min() >= 0 and img.max() <= 1


def test_run_tiled_blends_a_local_op_exactly():
    x = torch.randn(1, 3, 37, 29)

    def up(t):
        return F.interpolate(t, scale_factor=4.0, mode="nearest") * 2
    torch.testing.assert_close(run_tiled(up, x, 10, 4, 4.0, 3), up(x))


def test_tiled_vae_equals_untiled_with_one_tile_and_is_close_with_many(vae):
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    full = vae.decode(z)
    torch.testing.assert_close(vae.decode_tiled(z, tile=512, overlap=64), full)
    tiled = vae.decode_tiled(z, tile=96, overlap=48)
    assert tiled.shape == full.shape
    # Random weights exaggerate the global parts (mid attention, GroupNorm statistics).
    assert (tiled - full).abs().mean() < 0.04
    pixels = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(5))
    enc = vae.encode(pixels)
    torch.testing.assert_close(vae.encode_tiled(pixels, tile=512, overlap=64), enc)
    assert (vae.encode_tiled(pixels, tile=96, overlap=48) - enc).abs().mean() < 0.04


# ------------------------------------------------------------------------------ devices
def test_devices_cpu_defaults_and_override():
    devices.set_device("cpu")
    try:
        assert devices.get_device().type == "cpu"
        assert devices.compute_dtype() == torch.float32
        m = torch.nn.Linear(2, 2).half()
        devices.to_device(m)
        assert m.weight.dtype == torch.float32 and devices.module_device(m).type == "cpu"
        devices.offload(m)
        devices.free_memory()
    finally:
        devices.set_device(None)
    if not torch.cuda.is_available():
        assert devices.get_device().type in ("cpu", "mps")
