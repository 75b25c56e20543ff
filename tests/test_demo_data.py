"""The demo model's procedural data: deterministic, captions agree with pixels, held-out split holds."""
from __future__ import annotations

import numpy as np
import pytest

from tools import demo_data as dd
from tools.demo_classifier import background_rgb, border_colour, object_colour


def test_same_seed_and_index_give_identical_examples():
    a_img, a_cap, a_scene = dd.make_example(3, 17)
    b_img, b_cap, b_scene = dd.make_example(3, 17)
    assert np.array_equal(a_img, b_img) and a_cap == b_cap and a_scene == b_scene


def test_different_indices_and_seeds_give_different_examples():
    imgs = [dd.make_example(s, i)[0] for s, i in ((0, 0), (0, 1), (1, 0))]
    assert not np.array_equal(imgs[0], imgs[1])
    assert not np.array_equal(imgs[0], imgs[2])


def test_batch_matches_individual_examples():
    images, captions, scenes = dd.make_batch(5, 10, 4)
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
    img, cap, scene = dd.make_example(5, 12)
    assert np.array_equal(images[2], img) and captions[2] == cap and scenes[2] == scene


def test_caption_names_every_attribute():
    scene = dd.DemoScene((dd.DemoObject("circle", "red", "small", "left"),), "blue")
    assert scene.caption() == "a small red circle on the left, on a blue background"
    assert scene.caption(with_size=False, with_position=False) == "a red circle on a blue background"
    two = dd.DemoScene((dd.DemoObject("star", "orange", "large", "top"),
                        dd.DemoObject("square", "white", "small", "bottom")), "purple", True)
    assert two.caption() == ("a large orange star at the top and a small white square at the bottom, "
                             "on a purple gradient background")
    assert two.caption(with_size=False).startswith("an orange star at the top and a white square")


@pytest.mark.parametrize("index", range(40))
def test_random_captions_describe_their_scene(index):
    _, caption, scene = dd.make_example(11, index)
    assert caption.endswith(f"{scene.background}{' gradient' if scene.gradient else ''} background")
    for obj in scene.objects:
        assert f"{obj.colour} {obj.shape}" in caption
        if len(scene.objects) == 2:
            assert dd.POSITION_PHRASES[obj.position] in caption
    colours = [o.colour for o in scene.objects]
    assert scene.background not in colours and len(set(colours)) == len(colours)


def test_training_scenes_never_use_held_out_triples():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(3000):
        for obj in dd.random_scene(rng).objects:
            seen.add(obj.triple)
    assert not seen & dd.HELD_OUT_TRIPLES
    assert len(seen) == 160 - len(dd.HELD_OUT_TRIPLES)  # everything else does occur


def test_held_out_set_is_balanced_and_fixed():
    scenes = dd.held_out_scenes()
    assert len(dd.HELD_OUT_TRIPLES) == 20 and len(scenes) == 40
    assert {s.objects[0].shape for s in scenes} == set(dd.SHAPES)
    assert {s.objects[0].position for s in scenes} == set(dd.POSITIONS)
    assert all(s.background != s.objects[0].colour for s in scenes)
    assert [s.caption() for s in scenes] == [s.caption() for s in dd.held_out_scenes()]


@pytest.mark.parametrize("gradient", [False, True])
def test_pixels_agree_with_labels(gradient):
    """Border colour = background, object pixels = object colour, coverage sits at the position."""
    for k, (colour, shape, position) in enumerate(sorted(dd.HELD_OUT_TRIPLES)):
        bg = dd.COLOUR_NAMES[(dd.COLOUR_NAMES.index(colour) + 1 + k % 7) % 8]
        scene = dd.DemoScene((dd.DemoObject(shape, colour, "large", position),), bg, gradient)
        img = dd.render(scene, np.random.default_rng(k))
        assert border_colour(img) == bg
        assert object_colour(img) == colour
        diff = np.abs(img - background_rgb(img)[None, None]).sum(-1) > 90
        ys, xs = np.nonzero(diff)
        fx, fy = dd._CENTRES[position]
        assert abs(xs.mean() - fx * 64) < 6 and abs(ys.mean() - fy * 64) < 6


def test_shapes_have_the_expected_areas():
    r = 14.0
    area = {s: dd.shape_mask(s, 32.0, 32.0, r).sum() for s in dd.SHAPES}
    assert area["circle"] == pytest.approx(np.pi * r * r, rel=0.03)
    assert area["square"] == pytest.approx((1.7 * r) ** 2, rel=0.03)
    assert area["star"] < area["circle"] and area["triangle"] < area["circle"]
    masks = [dd.shape_mask(s, 32.0, 32.0, r) > 0.5 for s in dd.SHAPES]
    for i in range(4):
        for j in range(i + 1, 4):
            assert (masks[i] != masks[j]).sum() > 40  # visibly different outlines
