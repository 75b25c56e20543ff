"""Image utility nodes (size, flips, rotations, batches, stitching, compositing, morphology,
quantisation) against hand-computed small tensors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ldm import pixel_ops
from nodes import compositing as co
from nodes import image_transform as it


def _grid(values, channels=1) -> torch.Tensor:
    """A one-image IMAGE from a 2-D list, the value repeated over `channels`."""
    t = torch.tensor(values, dtype=torch.float32)
    return t[None, :, :, None].repeat(1, 1, 1, channels)


# ------------------------------------------------------------------------ size, flips, rotations
def test_get_image_size():
    assert it.GetImageSize().run(None, torch.zeros(2, 3, 5, 3)) == (5, 3, 2)


def test_image_flip():
    img = _grid([[0, 1, 2], [3, 4, 5]])
    (x,) = it.ImageFlip().run(None, img, "x-axis: vertically")
    (y,) = it.ImageFlip().run(None, img, "y-axis: horizontally")
    assert x[0, :, :, 0].tolist() == [[3, 4, 5], [0, 1, 2]]
    assert y[0, :, :, 0].tolist() == [[2, 1, 0], [5, 4, 3]]


@pytest.mark.parametrize("rotation,expected", [
    ("none", [[0, 1, 2], [3, 4, 5]]),
    ("90 degrees", [[3, 0], [4, 1], [5, 2]]),  # clockwise
    ("180 degrees", [[5, 4, 3], [2, 1, 0]]),
    ("270 degrees", [[2, 5], [1, 4], [0, 3]]),
])
def test_image_rotate_is_clockwise(rotation, expected):
    (out,) = it.ImageRotate().run(None, _grid([[0, 1, 2], [3, 4, 5]]), rotation)
    assert out[0, :, :, 0].tolist() == expected


def test_empty_image_colour():
    (out,) = it.EmptyImage().run(None, 3, 2, 2, 0xFF8000)
    assert out.shape == (2, 2, 3, 3)
    assert torch.allclose(out[1, 1, 2], torch.tensor([1.0, 128 / 255, 0.0]))


# ----------------------------------------------------------------------------------------- batches
def test_repeat_image_batch_repeats_the_whole_batch():
    img = torch.stack([torch.full((1, 1, 3), v) for v in (0.1, 0.2)])
    (out,) = it.RepeatImageBatch().run(None, img, 3)
    assert out[:, 0, 0, 0].tolist() == pytest.approx([0.1, 0.2] * 3)


@pytest.mark.parametrize("index,length,expected", [(1, 2, [1, 2]), (2, 5, [2, 3]), (10, 1, [3])])
def test_image_from_batch_clamps(index, length, expected):
    img = torch.arange(4, dtype=torch.float32).reshape(4, 1, 1, 1).repeat(1, 1, 1, 3)
    (out,) = it.ImageFromBatch().run(None, img, index, length)
    assert out[:, 0, 0, 0].tolist() == expected


def test_rebatch_images_regroups_a_list():
    a = torch.arange(2, dtype=torch.float32).reshape(2, 1, 1, 1).repeat(1, 1, 1, 3)
    b = torch.full((1, 1, 1, 3), 2.0)
    (out,) = it.RebatchImages().run(None, [a, b], [2])
    assert [o[:, 0, 0, 0].tolist() for o in out] == [[0, 1], [2]]
    (out,) = it.RebatchImages().run(None, [a, b], [1])
    assert [o[:, 0, 0, 0].tolist() for o in out] == [[0], [1], [2]]


# ---------------------------------------------------------------------------------------- stitching
def test_stitch_right_and_left():
    one, two = torch.zeros(1, 2, 2, 3), torch.ones(1, 2, 3, 3)
    (right,) = it.ImageStitch().run(None, one, "right", False, 0, "white", two)
    (left,) = it.ImageStitch().run(None, one, "left", False, 0, "white", two)
    assert right.shape == left.shape == (1, 2, 5, 3)
    assert right[0, 0, :, 0].tolist() == [0, 0, 1, 1, 1]
    assert left[0, 0, :, 0].tolist() == [1, 1, 1, 0, 0]


def test_stitch_without_image2_returns_image1():
    one = torch.rand(1, 2, 2, 3)
    assert it.ImageStitch().run(None, one, "up", True, 4, "red")[0] is one


def test_stitch_down_unmatched_centres_the_narrower_on_the_spacing_colour():
    one, two = torch.zeros(1, 1, 2, 3), torch.full((1, 1, 4, 3), 0.5)
    (out,) = it.ImageStitch().run(None, one, "down", False, 0, "white", two)
    assert out.shape == (1, 2, 4, 3)
    assert out[0, :, :, 0].tolist() == [[1, 0, 0, 1], [0.5, 0.5, 0.5, 0.5]]


def test_stitch_spacing_is_even_and_coloured():
    one, two = torch.zeros(1, 2, 1, 3), torch.zeros(1, 2, 1, 3)
    (out,) = it.ImageStitch().run(None, one, "right", True, 1, "red", two)  # 1 rounds up to 2
    assert out.shape == (1, 2, 4, 3)
    assert out[0, 0, 1].tolist() == [1, 0, 0] and out[0, 1, 2].tolist() == [1, 0, 0]
    assert out[0, 0, 0].tolist() == [0, 0, 0] and out[0, 0, 3].tolist() == [0, 0, 0]


def test_stitch_match_size_keeps_image2_aspect():
    one, two = torch.zeros(1, 2, 2, 3), torch.full((1, 2, 4, 3), 0.6)
    (out,) = it.ImageStitch().run(None, one, "down", True, 0, "white", two)
    assert out.shape == (1, 3, 2, 3)  # image2 4×2 → 2×1 (width of image1, aspect 2:1)
    assert torch.allclose(out[0, 2], torch.full((2, 3), 0.6), atol=1 / 255)


def test_stitch_evens_batches_and_channels():
    one, two = torch.zeros(1, 1, 1, 4), torch.stack([torch.full((1, 1, 3), v) for v in (0.2, 0.4)])
    (out,) = it.ImageStitch().run(None, one, "right", False, 0, "black", two)
    assert out.shape == (2, 1, 2, 4)
    assert out[1, 0, 1].tolist() == pytest.approx([0.4, 0.4, 0.4, 1.0])  # opaque alpha added
    assert out[1, 0, 0].tolist() == [0, 0, 0, 0]  # image1's last image repeated


# -------------------------------------------------------------------------------------- compositing
def test_image_composite_masked_places_and_clips():
    dest, src = torch.zeros(1, 4, 4, 3), torch.ones(1, 2, 2, 3)
    (out,) = co.ImageCompositeMasked().run(None, dest, src, 1, 2, False)
    assert out[0, :, :, 0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0]]
    (out,) = co.ImageCompositeMasked().run(None, dest, src, 3, 3, False)
    assert out[0, :, :, 0].sum() == 1 and out[0, 3, 3, 0] == 1
    assert dest.sum() == 0  # the input is not modified


def test_image_composite_masked_through_mask_and_resize():
    dest, src = torch.zeros(1, 2, 2, 3), torch.ones(1, 2, 2, 3)
    mask = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])
    (out,) = co.ImageCompositeMasked().run(None, dest, src, 0, 0, False, mask)
    assert out[0, :, :, 1].tolist() == [[1, 0], [0.5, 0]]
    (out,) = co.ImageCompositeMasked().run(None, torch.zeros(1, 4, 4, 3), torch.ones(1, 1, 1, 3), 0, 0, True)
    assert out.sum() == 4 * 4 * 3  # the 1×1 source stretched over the destination


def test_image_composite_masked_gives_an_rgb_source_opaque_alpha():
    dest, src = torch.zeros(1, 2, 2, 4), torch.full((1, 1, 1, 3), 0.5)
    (out,) = co.ImageCompositeMasked().run(None, dest, src, 0, 0, False)
    assert out[0, 0, 0].tolist() == [0.5, 0.5, 0.5, 1.0] and out[0, 1, 1].tolist() == [0, 0, 0, 0]


def test_split_and_join_alpha():
    rgba = torch.cat([torch.full((1, 2, 2, 3), 0.3), torch.full((1, 2, 2, 1), 0.25)], -1)
    rgb, mask = co.SplitImageWithAlpha().run(None, rgba)
    assert rgb.shape == (1, 2, 2, 3) and torch.allclose(mask, torch.full((1, 2, 2), 0.75))
    _, opaque = co.SplitImageWithAlpha().run(None, rgb)
    assert opaque.abs().sum() == 0
    (joined,) = co.JoinImageWithAlpha().run(None, rgb, torch.full((1, 4, 4), 0.75))  # mask resized
    assert torch.allclose(joined, rgba)
    (two,) = co.JoinImageWithAlpha().run(None, rgb, torch.stack([torch.zeros(2, 2), torch.ones(2, 2)]))
    assert two.shape == (2, 2, 2, 4) and two[0, ..., 3].min() == 1 and two[1, ..., 3].max() == 0


# --------------------------------------------------------------------------------------- morphology
def _dot(n=5, at=2) -> torch.Tensor:
    x = torch.zeros(n, n)
    x[at, at] = 1
    return x


def _morph(x: torch.Tensor, op: str, k: int = 3) -> torch.Tensor:
    return it.Morphology().run(None, x[None, :, :, None].repeat(1, 1, 1, 3), op, k)[0][0, :, :, 0]


def test_dilate_erode_of_a_dot():
    block = torch.zeros(5, 5)
    block[1:4, 1:4] = 1
    assert torch.equal(_morph(_dot(), "dilate"), block)
    assert torch.equal(_morph(_dot(), "gradient"), block)
    assert _morph(_dot(), "erode").sum() == 0
    assert _morph(_dot(), "open").sum() == 0
    assert torch.equal(_morph(_dot(), "top_hat"), _dot())


def test_erosion_border_is_geodesic():
    # The image border does not count as background (kornia's default, used by ComfyUI).
    assert torch.equal(_morph(torch.ones(4, 4), "erode", 3), torch.ones(4, 4))
    assert torch.equal(_morph(torch.ones(4, 4), "dilate", 5), torch.ones(4, 4))


def test_close_and_bottom_hat_fill_a_hole():
    ring = torch.zeros(7, 7)
    ring[2:5, 2:5] = 1
    ring[3, 3] = 0
    filled = ring.clone()
    filled[3, 3] = 1
    assert torch.equal(_morph(ring, "close"), filled)
    assert torch.equal(_morph(ring, "bottom_hat"), _dot(7, 3))
    # Near the border, closing also fills towards the edge: outside pixels never win the erosion.
    edge = torch.zeros(5, 5)
    edge[1:4, 1:4] = 1
    assert torch.equal(_morph(edge, "close"), torch.ones(5, 5))


def test_even_kernel_origin_is_k_over_2():
    # k=4: output i takes the max over inputs i−2 … i+1, so a dot at 2 covers outputs 1…4.
    expected = torch.zeros(6, 6)
    expected[1:5, 1:5] = 1
    assert torch.equal(_morph(_dot(6, 2), "dilate", 4), expected)


def test_morphology_rejects_unknown_operation():
    with pytest.raises(ValueError, match="unknown morphology"):
        pixel_ops.morphology(torch.zeros(1, 3, 3, 3), "thin", 3)


# ------------------------------------------------------------------------------------- quantisation
def test_bayer_matrices():
    assert pixel_ops.bayer_matrix(2).tolist() == [[0, 2], [3, 1]]
    assert pixel_ops.bayer_matrix(4).tolist() == [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]
    assert sorted(pixel_ops.bayer_matrix(16).flatten().tolist()) == list(range(256))


def test_bayer_2_dithers_mid_grey_to_a_checkerboard():
    # Two colours: offsets 256·(B − 1.5)/4 + 0.5 = −95.5, 32.5, 96.5, −31.5 for B = 0, 2, 3, 1;
    # grey 127 becomes 31, 159, 223, 95 → black, white, white, black.
    palette = Image.new("P", (1, 1))
    palette.putpalette([0, 0, 0, 255, 255, 255])
    grey = Image.fromarray(np.full((4, 4, 3), 127, np.uint8))
    out = np.asarray(pixel_ops._bayer_dither(grey, palette, 2).convert("L"))
    assert out[:2, :2].tolist() == [[0, 255], [255, 0]]
    assert out.mean() == 127.5


@pytest.mark.parametrize("dither", pixel_ops.DITHERS)
def test_quantize_keeps_an_image_already_in_few_colours(dither):
    x = torch.zeros(1, 4, 4, 3)
    x[0, :2, :, 0] = 1.0
    x[0, 3, 3] = 1.0
    (out,) = it.ImageQuantize().run(None, x, 4, dither)
    assert torch.equal(out, x)


def test_quantize_limits_the_palette():
    ramp = torch.linspace(0, 1, 64).reshape(1, 8, 8, 1).repeat(1, 1, 1, 3)
    for dither in ("none", "floyd-steinberg", "bayer-4"):
        (out,) = it.ImageQuantize().run(None, ramp, 3, dither)
        assert len(torch.unique(out.reshape(-1, 3), dim=0)) <= 3, dither
