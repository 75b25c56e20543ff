"""Procedural training data for the embedded demo model: coloured shapes with compositional captions.

The demo checkpoint (models/checkpoints/latentgraph-demo.safetensors) is trained here, offline, on
these images, so that a fresh install can draw something real without downloading weights. The
data is simple enough to learn in minutes on a CPU yet compositional enough that prompts matter:
shape × colour × size × position × background colour (plain or gradient), one or two objects.

Everything is deterministic per seed (numpy's PCG64 generator), and a fixed set of
(colour, shape, position) combinations is never drawn for training: `HELD_OUT_TRIPLES`, from which
`held_out_scenes()` builds the evaluation prompts. Rendering uses 2× supersampling so edges are
anti-aliased like real images.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

IMAGE_SIZE = 64
_SUPERSAMPLE = 2

# Named colours (RGB, 0..255). Far apart so that "nearest named colour" is unambiguous.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 215, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "center")
POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top",
                    "bottom": "at the bottom", "center": "in the center"}
# Object centre (x, y) as a fraction of the image side, and radius range in pixels per size.
_CENTRES = {"left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75),
            "center": (0.5, 0.5)}
_RADII = {"small": (7.0, 9.0), "large": (13.5, 15.5)}
_CENTRE_JITTER = 2.5
_COLOUR_JITTER = 12
# Two-object scenes put the objects on opposite sides so they never overlap.
_PAIRS = (("left", "right"), ("top", "bottom"))


def _held_out() -> frozenset[tuple[str, str, str]]:
    """Every shape × position pair once, with colours cycling: 20 of the 160 triples, balanced."""
    triples = []
    for i, (shape, position) in enumerate(product(SHAPES, POSITIONS)):
        triples.append((COLOUR_NAMES[(3 * i) % len(COLOUR_NAMES)], shape, position))
    return frozenset(triples)


HELD_OUT_TRIPLES: frozenset[tuple[str, str, str]] = _held_out()


def _article(word: str) -> str:
    """'an' before a vowel ("an orange star"), else 'a' — prompts should read like English."""
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class DemoObject:
    """One shape in a scene; `triple` is what the held-out split is defined on."""

    shape: str
    colour: str
    size: str
    position: str

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.colour, self.shape, self.position)

    def phrase(self, with_size: bool = True, with_position: bool = True) -> str:
        """'a small red circle on the left' (size and position words optional)."""
        words = ([self.size] if with_size else []) + [self.colour, self.shape]
        words.insert(0, _article(words[0]))
        if with_position:
            words.append(POSITION_PHRASES[self.position])
        return " ".join(words)


@dataclass(frozen=True)
class DemoScene:
    """A full image description: objects (1 or 2) over a plain or gradient background."""

    objects: tuple[DemoObject, ...]
    background: str
    gradient: bool = False

    def caption(self, with_size: bool = True, with_position: bool = True) -> str:
        """The compositional caption, e.g. 'a small red circle on the left, on a blue background'.

        Size and position words may be left out (training does so at random) so that shorter
        prompts such as 'a red circle on a blue background' are in-distribution too.
        """
        things = " and ".join(o.phrase(with_size, with_position) for o in self.objects)
        kind = f"{self.background} gradient" if self.gradient else self.background
        sep = "," if with_position else ""
        return f"{things}{sep} on {_article(kind)} {kind} background"


def _jitter_colour(rng: np.random.Generator, name: str) -> np.ndarray:
    base = np.array(COLOURS[name], dtype=np.float32)
    return np.clip(base + rng.uniform(-_COLOUR_JITTER, _COLOUR_JITTER, 3), 0, 255)


def _shape_vertices(shape: str, r: float) -> np.ndarray:
    """Polygon vertices (x, y) around the origin for the polygonal shapes, y pointing down."""
    if shape == "square":
        h = 0.85 * r
        return np.array([[-h, -h], [h, -h], [h, h], [-h, h]], dtype=np.float32)
    if shape == "triangle":
        angles = np.deg2rad([-90.0, 30.0, 150.0])
        rr = 1.25 * r
        pts = np.stack([np.cos(angles) * rr, np.sin(angles) * rr], axis=1)
        return (pts + np.array([0.0, 0.15 * r])).astype(np.float32)
    if shape == "star":
        angles = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, 1.2 * r, 0.5 * r)
        return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1).astype(np.float32)
    raise ValueError(f"no polygon for shape {shape!r}")


def _polygon_mask(xs: np.ndarray, ys: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon test over a grid of sample points."""
    inside = np.zeros(xs.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(verts, np.roll(verts, -1, axis=0)):
        crosses = (y1 > ys) != (y2 > ys)
        x_at = x1 + (ys - y1) * (x2 - x1) / ((y2 - y1) if y2 != y1 else 1e-9)
        inside ^= crosses & (xs < x_at)
    return inside


def shape_mask(shape: str, cx: float, cy: float, r: float, size: int = IMAGE_SIZE) -> np.ndarray:
    """Anti-aliased coverage [size, size] in 0..1 of one shape centred at (cx, cy) in pixels."""
    n = size * _SUPERSAMPLE
    coords = (np.arange(n, dtype=np.float32) + 0.5) / _SUPERSAMPLE
    xs, ys = np.meshgrid(coords - cx, coords - cy)
    if shape == "circle":
        hard = xs * xs + ys * ys <= r * r
    else:
        hard = _polygon_mask(xs, ys, _shape_vertices(shape, r))
    cover = hard.astype(np.float32).reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE)
    return cover.mean(axis=(1, 3))


def _background(rng: np.random.Generator, scene: DemoScene, size: int) -> np.ndarray:
    """Plain colour, or a linear ramp between a darker and a lighter shade of the same colour."""
    base = _jitter_colour(rng, scene.background)
    if not scene.gradient:
        return np.broadcast_to(base, (size, size, 3)).copy()
    dark, light = base * 0.85, base + (255.0 - base) * 0.15
    angle = rng.uniform(0, 2 * np.pi)
    coords = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    xs, ys = np.meshgrid(coords, coords)
    t = (xs * np.cos(angle) + ys * np.sin(angle)) / np.sqrt(2.0) * 0.5 + 0.5
    return dark + (light - dark) * t[..., None]


def render(scene: DemoScene, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """Draw a scene as uint8 RGB [size, size, 3]; `rng` jitters colours, centres and radii."""
    img = _background(rng, scene, size)
    scale = size / IMAGE_SIZE
    for obj in scene.objects:
        fx, fy = _CENTRES[obj.position]
        cx = fx * size + rng.uniform(-_CENTRE_JITTER, _CENTRE_JITTER) * scale
        cy = fy * size + rng.uniform(-_CENTRE_JITTER, _CENTRE_JITTER) * scale
        r = rng.uniform(*_RADII[obj.size]) * scale
        alpha = shape_mask(obj.shape, cx, cy, r, size)[..., None]
        img = img * (1.0 - alpha) + _jitter_colour(rng, obj.colour) * alpha
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _random_object(rng: np.random.Generator, position: str, exclude_colours: set[str],
                   size: str | None = None) -> DemoObject:
    """An object at `position` whose (colour, shape, position) is not held out."""
    while True:
        colour = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        shape = SHAPES[rng.integers(len(SHAPES))]
        if colour in exclude_colours or (colour, shape, position) in HELD_OUT_TRIPLES:
            continue
        return DemoObject(shape, colour, size or SIZES[rng.integers(len(SIZES))], position)


def random_scene(rng: np.random.Generator, two_object_prob: float = 0.3,
                 gradient_prob: float = 0.3) -> DemoScene:
    """A training scene: never uses a held-out triple; background differs from every object."""
    background = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
    gradient = bool(rng.random() < gradient_prob)
    if rng.random() < two_object_prob:
        pair = _PAIRS[rng.integers(len(_PAIRS))]
        if rng.random() < 0.5:
            pair = pair[::-1]
        first = _random_object(rng, pair[0], {background})
        second = _random_object(rng, pair[1], {background, first.colour})
        return DemoScene((first, second), background, gradient)
    position = POSITIONS[rng.integers(len(POSITIONS))]
    return DemoScene((_random_object(rng, position, {background}),), background, gradient)


def random_caption(scene: DemoScene, rng: np.random.Generator) -> str:
    """Caption with size words dropped 20 % and (single objects) position words dropped 15 %."""
    with_size = bool(rng.random() >= 0.2)
    with_position = len(scene.objects) > 1 or bool(rng.random() >= 0.15)
    return scene.caption(with_size, with_position)


def make_example(seed: int, index: int, size: int = IMAGE_SIZE) -> tuple[np.ndarray, str, DemoScene]:
    """Training example number `index` of stream `seed`: (uint8 image, caption, scene).

    `size` only changes the pixel resolution: the scene (and its layout, scaled) is the same.
    """
    rng = np.random.default_rng([seed, index])
    scene = random_scene(rng)
    caption = random_caption(scene, rng)
    return render(scene, rng, size), caption, scene


def make_batch(seed: int, start: int, count: int,
               size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[str], list[DemoScene]]:
    """`count` consecutive examples as a uint8 array [N, size, size, 3] plus captions and scenes."""
    images, captions, scenes = [], [], []
    for i in range(start, start + count):
        img, cap, scene = make_example(seed, i, size)
        images.append(img)
        captions.append(cap)
        scenes.append(scene)
    return np.stack(images), captions, scenes


def single_object_scene(rng: np.random.Generator) -> DemoScene:
    """Any single-object scene (held-out triples included): what the classifier is trained on."""
    obj = DemoObject(SHAPES[rng.integers(len(SHAPES))], COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))],
                     SIZES[rng.integers(len(SIZES))], POSITIONS[rng.integers(len(POSITIONS))])
    while True:
        background = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        if background != obj.colour:
            return DemoScene((obj,), background, bool(rng.random() < 0.3))


def held_out_scenes() -> list[DemoScene]:
    """The evaluation set: each held-out triple, small and large, each on its own plain background.

    Backgrounds are chosen deterministically (a fixed offset through the colour list, skipping
    the object's colour) so the set is the same on every machine.
    """
    scenes = []
    for k, (colour, shape, position) in enumerate(sorted(HELD_OUT_TRIPLES)):
        for j, size in enumerate(SIZES):
            offset = 1 + (k + 3 * j) % (len(COLOUR_NAMES) - 1)
            background = COLOUR_NAMES[(COLOUR_NAMES.index(colour) + offset) % len(COLOUR_NAMES)]
            scenes.append(DemoScene((DemoObject(shape, colour, size, position),), background))
    return scenes


def nearest_colour(rgb: np.ndarray) -> str:
    """Name of the named colour closest (Euclidean RGB, 0..255) to one pixel value."""
    table = np.array([COLOURS[n] for n in COLOUR_NAMES], dtype=np.float32)
    d = ((table - np.asarray(rgb, dtype=np.float32)[None]) ** 2).sum(axis=1)
    return COLOUR_NAMES[int(d.argmin())]
