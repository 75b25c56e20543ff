"""Model-facing nodes, continued: conditioning with a known stand-in model, inpainting, VAE, SDXL,
upscale models and progress events (fixtures in tests/nodes_model_fixtures.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.executor import Executor
from nodes import conditioning as cn
from nodes import loaders as lo
from nodes import upscale as up
from nodes import vae as va
from nodes.plugins import load_all
from nodes.registry import REGISTRY

from tests.nodes_model_fixtures import (  # noqa: F401 (cache, ctx, paths, root, sd1 are fixtures)
    ConstModel, _adv, _const, _empty, _encode, _image, _load, _sample, cache, ctx, paths, root, sd1)

# ------------------------------------------------------------------ conditioning with a known model
def test_conditioning_set_area_places_prompt(ctx):
    m = ConstModel()
    base = _const(1.0)
    (area,) = cn.ConditioningSetArea().run(ctx, _const(5.0), 64, 64, 64, 0, 1.0)  # right half of 128×64
    (both,) = cn.ConditioningCombine().run(ctx, base, area)
    out = _sample(ctx, m, both, _const(0.0), _empty(64, 128), cfg=1.0, steps=3)["samples"][0, 0]
    sf = 0.18215
    assert out.shape == (8, 16)
    # left of the area: only the base prompt; the area's own cells: base and area averaged, the area's
    # weight ramped from its inner (left) edge over rr = min(8, area width // 4) cells (ComfyUI)
    torch.testing.assert_close(out[:, :8] * sf, torch.full((8, 8), 1.0))
    assert out[0, 15] * sf == pytest.approx(3.0, abs=1e-5)
    rr = min(8, 8 // 4)
    weights = [min(1.0, (t + 1) / rr) for t in range(8)]
    ramp = [(1 + 5 * wt) / (1 + wt) for wt in weights]
    torch.testing.assert_close(out[0, 8:] * sf, torch.tensor(ramp))
    assert out[0, 8] * sf < 3.0 - 0.3, "the inner edge is feathered"
    # the area entries ran on the cropped latent
    assert (1, 4, 8, 8) in {c[0] for c in m.calls}
    # Percentage: the same placement, resolved against the latent size at sampling time
    (pct,) = cn.ConditioningSetAreaPercentage().run(ctx, _const(5.0), 0.5, 1.0, 0.5, 0.0, 1.0)
    out2 = _sample(ctx, ConstModel(), base + pct, _const(0.0), _empty(64, 128), cfg=1.0, steps=3)["samples"]
    torch.testing.assert_close(out2[0, 0], out)
    # strength 0 area: the base alone everywhere... and with nothing else the area cells alone count
    (only,) = cn.ConditioningSetArea().run(ctx, _const(5.0), 64, 64, 64, 0, 1.0)
    out3 = _sample(ctx, ConstModel(), only, _const(0.0), _empty(64, 128), cfg=1.0, steps=3)["samples"][0, 0]
    assert out3[:, :8].abs().max() < 1e-6, "cells outside every area predict 0"
    assert out3[0, 15] * sf == pytest.approx(5.0, abs=1e-5)


def test_conditioning_cfg_and_timestep_range_with_known_model(ctx):
    sf = 0.18215
    out = _sample(ctx, ConstModel(), _const(2.0), _const(1.0), _empty(), cfg=8.0, steps=3)["samples"]
    torch.testing.assert_close(out * sf, torch.full_like(out, 1.0 + 8.0 * (2.0 - 1.0)))
    m = ConstModel()
    (early,) = cn.ConditioningSetTimestepRange().run(ctx, _const(3.0), 0.0, 0.5)
    (late,) = cn.ConditioningSetTimestepRange().run(ctx, _const(7.0), 0.5, 1.0)
    assert early[0][1] == {"start_percent": 0.0, "end_percent": 0.5}
    out = _sample(ctx, m, early + late, _const(0.0), _empty(), cfg=1.0, steps=4)["samples"]
    # the final (low-sigma) prediction comes from the late entry only
    torch.testing.assert_close(out * sf, torch.full_like(out, 7.0))
    (zero,) = cn.ConditioningZeroOut().run(ctx, _const(3.0))
    out = _sample(ctx, ConstModel(), zero, _const(0.0), _empty(), cfg=1.0, steps=2)["samples"]
    assert out.abs().max() < 1e-6


def test_conditioning_algebra_values(ctx):
    a = [[torch.full((1, 77, 4), 2.0), {"pooled_output": torch.full((1, 3), 2.0), "strength": 0.5}]]
    b = [[torch.full((1, 154, 4), 10.0), {"pooled_output": torch.full((1, 3), 10.0)}]]
    (comb,) = cn.ConditioningCombine().run(ctx, a, b)
    assert len(comb) == 2 and comb[0][0] is a[0][0] and comb[1][0] is b[0][0]
    (avg,) = cn.ConditioningAverage().run(ctx, a, b, 0.25)
    assert avg[0][0].shape == (1, 77, 4)
    torch.testing.assert_close(avg[0][0], torch.full((1, 77, 4), 2 * 0.25 + 10 * 0.75))
    torch.testing.assert_close(avg[0][1]["pooled_output"], torch.full((1, 3), 8.0))
    assert avg[0][1]["strength"] == 0.5
    (avg2,) = cn.ConditioningAverage().run(ctx, b, a, 0.5)  # shorter source is zero-padded
    torch.testing.assert_close(avg2[0][0][:, :77], torch.full((1, 77, 4), 6.0))
    torch.testing.assert_close(avg2[0][0][:, 77:], torch.full((1, 77, 4), 5.0))
    (cat,) = cn.ConditioningConcat().run(ctx, a, b)
    assert cat[0][0].shape == (1, 231, 4) and torch.equal(cat[0][0][:, 77:], b[0][0])
    assert cat[0][1]["pooled_output"] is a[0][1]["pooled_output"]
    (zero,) = cn.ConditioningZeroOut().run(ctx, a)
    assert zero[0][0].abs().sum() == 0 and zero[0][1]["pooled_output"].abs().sum() == 0
    assert a[0][0].min() == 2.0, "inputs are never modified"
    (rng,) = cn.ConditioningSetTimestepRange().run(ctx, a, 0.2, 0.7)
    assert rng[0][1]["start_percent"] == 0.2 and rng[0][1]["end_percent"] == 0.7 and "start_percent" not in a[0][1]
    mask = torch.zeros(8, 8)
    mask[2:4, 2:6] = 1
    (sm,) = cn.ConditioningSetMask().run(ctx, a, mask, 0.7, "mask bounds")
    o = sm[0][1]
    assert o["mask"].shape == (1, 8, 8) and o["mask_strength"] == 0.7 and o["set_area_to_bounds"] is True
    (ar,) = cn.ConditioningSetArea().run(ctx, a, 128, 64, 16, 8, 2.0)
    assert ar[0][1]["area"] == (8, 16, 1, 2) and ar[0][1]["strength"] == 2.0


# ------------------------------------------------------------------ inpainting

def test_inpaint_model_conditioning_with_9_channel_model(ctx):
    model, clip, vae = _load(ctx, "tiny_sd1_inpaint")
    pos, neg = _encode(ctx, clip, "a cat"), _encode(ctx, clip, "")
    img = _image()
    mask = torch.zeros(1, 64, 64)
    mask[:, 8:40, 16:48] = 1.0
    p2, n2, lat = cn.InpaintModelConditioning().run(ctx, pos, neg, vae, img, mask, True)
    assert lat["samples"].shape == (1, 4, 8, 8) and lat["noise_mask"].shape[-2:] == (64, 64)
    concat_img = p2[0][1]["concat_latent_image"]
    grey = img.clone()
    grey[0, 8:40, 16:48, :] = 0.5
    torch.testing.assert_close(concat_img, vae.encode(grey))
    seen = []
    real = model.apply_model

    def recording(x, sigma, **kw):
        seen.append(kw.get("concat"))
        return real(x, sigma, **kw)

    model.apply_model = recording
    try:
        out = _sample(ctx, model, p2, n2, lat, steps=3)
    finally:
        del model.apply_model
    assert out["samples"].shape == (1, 4, 8, 8) and torch.isfinite(out["samples"]).all()
    cat = seen[0]
    assert cat is not None and cat.shape[1] == 5
    expected_mask = torch.zeros(8, 8)
    expected_mask[1:5, 2:6] = 1.0
    assert torch.equal(cat[0, 0], expected_mask), "mask channel: 1 = inpaint"
    torch.testing.assert_close(cat[0, 1:], concat_img[0] * 0.18215)


# ------------------------------------------------------------------ VAE

def test_vae_encode_decode_round_trip(ctx, sd1):
    vae = sd1[2]
    img = _image(h=68, w=64)  # 68 is not a multiple of 8 → centre-cropped to rows 2..65
    (lat,) = va.VAEEncode().run(ctx, img, vae)
    assert lat["samples"].shape == (1, 4, 8, 8)
    (dec,) = va.VAEDecode().run(ctx, lat, vae)
    assert dec.shape == (1, 64, 64, 3) and dec.dtype == torch.float32
    assert dec.min() >= 0.0 and dec.max() <= 1.0 and dec.std() > 1e-3
    (z,) = va.VAEEncode().run(ctx, img[:, 2:66].contiguous(), vae)
    assert torch.equal(z["samples"], lat["samples"])


def test_vae_decode_tiled_close_to_plain(ctx, sd1):
    vae = sd1[2]
    g = torch.Generator().manual_seed(4)
    lat = {"samples": torch.nn.functional.interpolate(torch.randn(1, 4, 6, 6, generator=g), size=(24, 24),
                                                      mode="bilinear")}
    (plain,) = va.VAEDecode().run(ctx, lat, vae)
    (whole,) = va.VAEDecodeTiled().run(ctx, lat, vae, 256, 64, 64, 8)  # one tile covers everything
    torch.testing.assert_close(whole, plain, atol=1e-6, rtol=0)
    (tiled,) = va.VAEDecodeTiled().run(ctx, lat, vae, 128, 64, 64, 8)  # 16-cell tiles on a 24-cell latent
    assert tiled.shape == plain.shape == (1, 192, 192, 3)
    diff = (tiled - plain).abs()
    # Tiles cannot be exact: GroupNorm statistics and the mid-block attention see one tile, not the
    # image (ComfyUI's tiled decode has the same property). Measured on the tiny VAE: mean 0.038,
    # max 0.44, while a 10 % change of the latent moves the decode by 0.010 and another latent by 0.13.
    other = va.VAEDecode().run(ctx, {"samples": lat["samples"].flip(-1)}, vae)[0]
    assert diff.mean() < 0.06 and diff.mean() < 0.5 * (other - plain).abs().mean()
    (enc,) = va.VAEEncodeTiled().run(ctx, plain, vae, 128, 64, 64, 8)
    assert enc["samples"].shape == (1, 4, 24, 24)


def test_vae_encode_for_inpaint_greys_and_grows(ctx, sd1):
    vae = sd1[2]
    img = _image()
    mask = torch.zeros(1, 64, 64)
    mask[:, 24:32, 24:32] = 1.0
    seen = []
    real = vae.encode

    def recording(pixels):
        seen.append(pixels.clone())
        return real(pixels)

    vae.encode = recording
    try:
        (lat0,) = va.VAEEncodeForInpaint().run(ctx, img, vae, mask, 0)
        (lat6,) = va.VAEEncodeForInpaint().run(ctx, img, vae, mask, 6)
    finally:
        del vae.encode
    px = seen[0][0]
    assert torch.equal(px[24:32, 24:32], torch.full((8, 8, 3), 0.5))
    torch.testing.assert_close(px[:24], img[0, :24], atol=1e-6, rtol=0)
    torch.testing.assert_close(px[32:], img[0, 32:], atol=1e-6, rtol=0)
    m0, m6 = lat0["noise_mask"][0, 0], lat6["noise_mask"][0, 0]
    assert torch.equal(m0, mask[0])
    rows, cols = torch.nonzero(m6, as_tuple=True)
    # a 6×6 box dilation: grows by 2 above/left and 3 below/right (ComfyUI's padding)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (22, 34, 22, 34)
    assert m6.sum() == 13 * 13 and set(m6.unique().tolist()) == {0.0, 1.0}


def test_vae_loader_standalone_file(ctx, sd1):
    ckpt_vae = sd1[2]
    lat = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))}
    ref = va.VAEDecode().run(ctx, lat, ckpt_vae)[0]
    for name in ("tiny_vae.safetensors", "tiny_vae_prefixed.safetensors"):
        (vae,) = lo.VAELoader().run(ctx, name)
        assert vae is not ckpt_vae
        torch.testing.assert_close(va.VAEDecode().run(ctx, lat, vae)[0], ref, atol=0, rtol=0)


# ------------------------------------------------------------------ SDXL

def test_sdxl_and_refiner_run(ctx):
    model, clip, vae = _load(ctx, "tiny_sdxl")
    (pos,) = cn.CLIPTextEncodeSDXL().run(ctx, clip, 1024, 1024, 0, 0, 1024, 1024, "a cat", "a cat")
    (neg,) = cn.CLIPTextEncodeSDXL().run(ctx, clip, 1024, 1024, 0, 0, 1024, 1024, "", "")
    assert pos[0][0].shape == (1, 77, 80) and pos[0][1]["pooled_output"].shape == (1, 48)
    assert pos[0][1]["target_width"] == 1024
    (pos2,) = cn.CLIPTextEncodeSDXL().run(ctx, clip, 512, 1024, 0, 0, 1024, 1024, "a cat", "a cat")
    y1, y2 = model.encode_adm(pos[0][1], 1), model.encode_adm(pos2[0][1], 1)
    assert y1.shape == (1, 48 + 6 * 256) and not torch.equal(y1, y2)
    base = _adv(ctx, model, pos, neg, _empty(), "enable", 0, 3, "enable", steps=6)
    rmodel, rclip, rvae = _load(ctx, "tiny_sdxl_refiner")
    (rpos,) = cn.CLIPTextEncodeSDXLRefiner().run(ctx, 6.0, 1024, 1024, "a cat", rclip)
    (rneg,) = cn.CLIPTextEncodeSDXLRefiner().run(ctx, 2.5, 1024, 1024, "", rclip)
    assert rpos[0][0].shape == (1, 77, 48) and rmodel.encode_adm(rpos[0][1], 1).shape == (1, 48 + 5 * 256)
    refined = _adv(ctx, rmodel, rpos, rneg, base, "disable", 3, 10000, "disable", steps=6)
    assert refined["samples"].shape == (1, 4, 8, 8) and torch.isfinite(refined["samples"]).all()
    assert refined["samples"].std() < base["samples"].std()
    (img,) = va.VAEDecode().run(ctx, refined, rvae)
    assert img.shape == (1, 64, 64, 3)


# ------------------------------------------------------------------ upscale models

def test_upscale_model_2x_and_tiled_matches_untiled(ctx):
    (desc,) = lo.UpscaleModelLoader().run(ctx, "tiny_esrgan_x2.pth")
    assert desc.scale == 2
    img = _image(h=48, w=40)
    (out,) = up.ImageUpscaleWithModel().run(ctx, desc, img)
    assert out.shape == (1, 96, 80, 3) and out.min() >= 0 and out.max() <= 1
    from ldm.upscale import upscale_image

    tiled = upscale_image(desc, img, tile=24, overlap=8)
    diff = (tiled - out).abs()
    # ESRGAN's receptive field is local; 8-px overlap: measured mean 2.3e-4, max 0.006
    assert diff.mean() < 1e-3 and diff.max() < 0.05
    progress = [d for e, d in ctx.events if e == "progress"]
    assert progress and progress[-1]["value"] == progress[-1]["max"]


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_malicious_pickle_upscale_file_refused(ctx, paths, tmp_path):
    from ldm.checkpoint import CheckpointError

    marker = tmp_path / "pwned"
    bad = paths.models_dir / "upscale_models" / "evil.pth"
    torch.save({"params": _Boom(str(marker))}, bad)
    with pytest.raises(CheckpointError):
        lo.UpscaleModelLoader().run(ctx, "evil.pth")
    assert not marker.exists(), "the pickle's code ran"
    bad.unlink()


# ------------------------------------------------------------------ progress events

def test_ksampler_progress_and_previews(paths):
    load_all()
    ex = Executor(REGISTRY, paths)
    prompt = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
              "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
              "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
              "3": {"class_type": "KSampler", "inputs": {
                  "model": ["4", 0], "seed": 7, "steps": 5, "cfg": 4.0, "sampler_name": "euler",
                  "scheduler": "normal", "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0],
                  "denoise": 1.0}},
              "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
              "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}
    events = []
    result = ex.execute(prompt, prompt_id="prog", emit=events.append)
    assert result.status == "success", result.error
    progress = [e.data for e in events if e.type == "progress" and e.node == "3"]
    assert [p["value"] for p in progress] == [1, 2, 3, 4, 5] and {p["max"] for p in progress} == {5}
    assert all(p["prompt_id"] == "prog" for p in progress)
    previews = [e for e in events if e.type == "preview"]
    try:
        import ldm.preview  # noqa: F401
    except ImportError:
        assert previews == [], "no preview module, no preview events"
        pytest.skip("ldm/preview.py does not exist yet: preview JPEGs not checked")
    assert len(previews) == 5
    for p in previews:
        assert p.node == "3" and isinstance(p.image, bytes) and p.image[:2] == b"\xff\xd8"
