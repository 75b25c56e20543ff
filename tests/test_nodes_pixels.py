"""Image, mask and latent nodes against known values (no model needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.context import NodeContext
from engine.formats.png import read_png_text
from engine.paths import Paths
from nodes import image as im
from nodes import latent as la
from nodes import mask as mk


@pytest.fixture
def ctx(tmp_path):
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp", tmp_path / "user")
    paths.ensure_dirs()
    return NodeContext(node_id="9", prompt_id="p1", prompt={"9": {"class_type": "SaveImage", "inputs": {}}},
                       paths=paths, models=None, extra_pnginfo={"workflow": {"nodes": [], "x": "é"}})


def _lat(b=1, h=8, w=8):
    return {"samples": torch.randn(b, 4, h, w)}


def test_empty_latent_shape_and_zeros(ctx):
    (out,) = la.EmptyLatentImage().run(ctx, 512, 768, 2)
    assert out["samples"].shape == (2, 4, 96, 64)
    assert out["samples"].abs().sum() == 0


@pytest.mark.parametrize("method", la.UPSCALE_METHODS)
def test_latent_upscale_sizes(ctx, method):
    (out,) = la.LatentUpscale().run(ctx, _lat(1, 8, 8), method, 128, 96, "disabled")
    assert out["samples"].shape == (1, 4, 12, 16)
    (out,) = la.LatentUpscaleBy().run(ctx, _lat(1, 8, 8), method, 1.5)
    assert out["samples"].shape == (1, 4, 12, 12)


def test_latent_upscale_zero_side_keeps_aspect(ctx):
    (out,) = la.LatentUpscale().run(ctx, _lat(1, 8, 16), "nearest-exact", 0, 128, "disabled")
    assert out["samples"].shape == (1, 4, 16, 32)


def test_bislerp_identity_and_magnitude():
    from ldm.image_ops import bislerp
    x = torch.randn(2, 4, 6, 6)
    assert torch.allclose(bislerp(x, 6, 6), x, atol=1e-5)
    up = bislerp(x, 12, 12)
    # slerp keeps vector norms between the neighbours' norms
    assert up.norm(dim=1).max() <= x.norm(dim=1).max() + 1e-4


def test_latent_composite_places_source(ctx):
    dest = {"samples": torch.zeros(1, 4, 8, 8)}
    src = {"samples": torch.ones(1, 4, 2, 3)}
    (out,) = la.LatentComposite().run(ctx, dest, src, 16, 8, 0)
    s = out["samples"]
    assert s[0, 0, 1:3, 2:5].eq(1).all() and s.sum() == 4 * 6
    (masked,) = la.LatentCompositeMasked().run(ctx, dest, src, 0, 0, False, torch.zeros(1, 2, 3))
    assert masked["samples"].sum() == 0


def test_latent_batch_ops_keep_batch_index(ctx):
    lat = _lat(4)
    (one,) = la.LatentFromBatch().run(ctx, lat, 2, 2)
    assert one["batch_index"] == [2, 3] and torch.equal(one["samples"], lat["samples"][2:4])
    (rep,) = la.RepeatLatentBatch().run(ctx, one, 2)
    assert rep["samples"].shape[0] == 4 and rep["batch_index"] == [2, 3, 4, 5]
    (both,) = la.LatentBatch().run(ctx, _lat(1), _lat(2, 4, 4))
    assert both["samples"].shape == (3, 4, 8, 8) and both["batch_index"] == [0, 0, 1]  # ComfyUI: each side keeps its indices


def test_latent_flip_rotate_crop(ctx):
    lat = {"samples": torch.arange(64.0).reshape(1, 1, 8, 8)}
    (f,) = la.LatentFlip().run(ctx, lat, "y-axis: horizontally")
    assert f["samples"][0, 0, 0, 0] == 7
    (r,) = la.LatentRotate().run(ctx, lat, "90 degrees")
    assert r["samples"][0, 0, 0, 0] == 56  # clockwise: bottom-left goes to top-left
    (c,) = la.LatentCrop().run(ctx, {"samples": torch.zeros(1, 4, 32, 32)}, 64, 128, 16, 8)
    assert c["samples"].shape == (1, 4, 16, 8)


def test_set_latent_noise_mask_shape(ctx):
    (out,) = la.SetLatentNoiseMask().run(ctx, _lat(), torch.ones(64, 64))
    assert out["noise_mask"].shape == (1, 1, 64, 64)


def test_load_image_mask_is_one_minus_alpha(ctx):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0
    rgba[1, 1, 3] = 51
    Image.fromarray(rgba, "RGBA").save(ctx.paths.input_dir / "a.png")
    img, mask = im.LoadImage().run(ctx, "a.png")
    assert img.shape == (1, 4, 5, 3) and mask.shape == (1, 4, 5)
    assert mask[0, 0, 0] == 1.0 and mask[0, 2, 2] == 0.0
    assert abs(mask[0, 1, 1].item() - 0.8) < 1e-6
    assert abs(img[0, 0, 0, 0].item() - 200 / 255) < 1e-6  # RGB under transparency is kept
    Image.fromarray(rgba[..., :3]).save(ctx.paths.input_dir / "b.png")
    _, m2 = im.LoadImage().run(ctx, "b.png")
    assert m2.shape == (1, 64, 64) and m2.sum() == 0


def test_load_image_exif_orientation_and_frames(ctx):
    tall = Image.new("RGB", (4, 2), (255, 0, 0))
    exif = tall.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    tall.save(ctx.paths.input_dir / "o.jpg", exif=exif)
    img, _ = im.LoadImage().run(ctx, "o.jpg")
    assert img.shape[1:3] == (4, 2)
    frames = [Image.new("RGB", (3, 3), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(ctx.paths.input_dir / "anim.gif", save_all=True, append_images=frames[1:])
    img, mask = im.LoadImage().run(ctx, "anim.gif")
    assert img.shape[0] == 3 and mask.shape[0] == 3


def test_load_image_mask_channels(ctx):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(ctx.paths.input_dir / "m.png")
    (g,) = im.LoadImageMask().run(ctx, "m.png", "green")
    (a,) = im.LoadImageMask().run(ctx, "m.png", "alpha")
    assert g.eq(1).all() and a.eq(0).all()


def test_save_image_naming_and_metadata(ctx):
    images = torch.rand(2, 8, 8, 3)
    out = im.SaveImage().run(ctx, images, "sub/Test")
    names = [i["filename"] for i in out.ui["images"]]
    assert names == ["Test_00001_.png", "Test_00002_.png"]
    assert out.ui["images"][0]["subfolder"] == "sub" and out.ui["images"][0]["type"] == "output"
    again = im.SaveImage().run(ctx, images[:1], "sub/Test")
    assert again.ui["images"][0]["filename"] == "Test_00003_.png"
    text = read_png_text(ctx.paths.output_dir / "sub" / "Test_00001_.png")
    assert json.loads(text["prompt"]) == ctx.prompt
    assert json.loads(text["workflow"]) == ctx.extra_pnginfo["workflow"]
    saved = np.asarray(Image.open(ctx.paths.output_dir / "sub" / "Test_00001_.png"))
    assert np.abs(saved / 255.0 - images[0].numpy()).max() <= 1 / 255 + 1e-6


def test_save_image_refuses_escape(ctx):
    with pytest.raises(Exception):
        im.SaveImage().run(ctx, torch.rand(1, 4, 4, 3), "../evil")


def test_preview_goes_to_temp(ctx):
    out = im.PreviewImage().run(ctx, torch.rand(1, 4, 4, 3))
    entry = out.ui["images"][0]
    assert entry["type"] == "temp" and (ctx.paths.temp_dir / entry["filename"]).is_file()


def test_image_scale_and_crop(ctx):
    img = torch.rand(1, 10, 20, 3)
    for method in im.SCALE_METHODS:
        (o,) = im.ImageScale().run(ctx, img, method, 40, 0, "disabled")
        assert o.shape == (1, 20, 40, 3)
    (c,) = im.ImageScale().run(ctx, img, "bilinear", 10, 10, "center")
    assert c.shape == (1, 10, 10, 3)
    (t,) = im.ImageScaleToTotalPixels().run(ctx, img, "area", 800 / (1024 * 1024))
    assert t.shape[1] * t.shape[2] == pytest.approx(800, rel=0.1)
    (cr,) = im.ImageCrop().run(ctx, img, 5, 4, 18, 2)
    assert cr.shape == (1, 4, 2, 3) and torch.equal(cr, img[:, 2:6, 18:20])


def test_outpaint_pad_mask(ctx):
    img = torch.rand(1, 32, 32, 3)
    padded, mask = im.ImagePadForOutpaint().run(ctx, img, 8, 0, 0, 0, 4)
    assert padded.shape == (1, 32, 40, 3) and mask.shape == (1, 32, 40)
    assert mask[0, :, :8].eq(1).all() and padded[0, :, :8].eq(0.5).all()
    assert mask[0, 10, 8] == 1.0 and mask[0, 10, 9] == pytest.approx(0.5625) and mask[0, 10, 12:].eq(0).all()


def test_blend_blur_sharpen(ctx):
    a, b = torch.full((1, 8, 8, 3), 0.2), torch.full((1, 8, 8, 3), 0.6)
    (n,) = im.ImageBlend().run(ctx, a, b, 0.5, "normal")
    assert torch.allclose(n, torch.full_like(a, 0.4))
    (m,) = im.ImageBlend().run(ctx, a, b, 1.0, "multiply")
    assert torch.allclose(m, torch.full_like(a, 0.12))
    flat = torch.full((1, 9, 9, 3), 0.3)
    (bl,) = im.ImageBlur().run(ctx, flat, 2, 1.0)
    assert torch.allclose(bl, flat, atol=1e-6)
    (sh,) = im.ImageSharpen().run(ctx, flat, 1, 1.0, 1.0)
    assert torch.allclose(sh, flat, atol=1e-5)
    (inv,) = im.ImageInvert().run(ctx, a)
    assert torch.allclose(inv, 1 - a)


def test_mask_nodes(ctx):
    (solid,) = mk.SolidMask().run(ctx, 0.5, 6, 4)
    assert solid.shape == (1, 4, 6) and solid.eq(0.5).all()
    (inv,) = mk.InvertMask().run(ctx, solid)
    assert inv.eq(0.5).all()
    dest = torch.zeros(1, 4, 4)
    (comp,) = mk.MaskComposite().run(ctx, dest, torch.ones(1, 2, 2), 1, 1, "add")
    assert comp.sum() == 4 and comp[0, 1:3, 1:3].eq(1).all()
    (thr,) = mk.ThresholdMask().run(ctx, torch.tensor([[[0.2, 0.7]]]), 0.5)
    assert thr.tolist() == [[[0.0, 1.0]]]
    (crop,) = mk.CropMask().run(ctx, torch.arange(16.0).reshape(1, 4, 4), 1, 2, 2, 2)
    assert crop.tolist() == [[[9.0, 10.0], [13.0, 14.0]]]
    (feather,) = mk.FeatherMask().run(ctx, torch.ones(1, 4, 4), 2, 0, 0, 0)
    assert feather[0, 0].tolist() == [0.5, 1.0, 1.0, 1.0]
    (grown,) = mk.GrowMask().run(ctx, torch.zeros(1, 5, 5).index_put_(
        (torch.tensor([0]), torch.tensor([2]), torch.tensor([2])), torch.tensor(1.0)), 1, False)
    assert grown.sum() == 9
    (img,) = mk.MaskToImage().run(ctx, solid)
    assert img.shape == (1, 4, 6, 3)
    (back,) = mk.ImageToMask().run(ctx, img, "green")
    assert torch.equal(back, solid)
