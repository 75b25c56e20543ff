"""Scoring tools for the demo model: colour by pixel statistics, shape/position/size by a small CNN.

bench/eval_demo.py needs to tell, for a generated 64×64 image, which background colour, object
colour, shape and position it shows. Colours are measured directly (border pixels → background;
pixels far from the background → object). Shape, position and size come from a small classifier
trained here on clean procedural images from tools.demo_data. It looks only at a colour-independent
foreground map (distance of each pixel from the background colour), so it cannot cheat on colour
and transfers to generated images whose colours are slightly off. Blur and noise augmentation
make it tolerant of the autoencoder's soft edges.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tools.demo_data import POSITIONS, SHAPES, SIZES, nearest_colour, render, single_object_scene

HEADS = {"shape": SHAPES, "position": POSITIONS, "size": SIZES}
CACHE_VERSION = 1
_FG_SCALE = 120.0  # RGB distance (0..255 units) that counts as fully "object"


# ------------------------------------------------------------------------------ pixel statistics
def background_rgb(image: np.ndarray, border: int = 3) -> np.ndarray:
    """Median colour of the outer `border` pixels of a uint8 [H,W,3] image."""
    ring = np.concatenate([image[:border].reshape(-1, 3), image[-border:].reshape(-1, 3),
                           image[:, :border].reshape(-1, 3), image[:, -border:].reshape(-1, 3)])
    return np.median(ring.astype(np.float32), axis=0)


def border_colour(image: np.ndarray) -> str:
    """Named colour nearest to the border median: the scene's background."""
    return nearest_colour(background_rgb(image))


def object_colour(image: np.ndarray, threshold: float = 60.0, min_pixels: int = 12) -> str | None:
    """Named colour of the pixels that differ clearly from the background (None: no object found).

    Only the pixels farthest from the background (top half of the object mask by distance) are
    used, so anti-aliased and blurred edges, which are mixtures, do not pull the median.
    """
    img = image.astype(np.float32)
    dist = np.linalg.norm(img - background_rgb(image)[None, None], axis=-1)
    mask = dist > threshold
    if int(mask.sum()) < min_pixels:
        return None
    core = dist >= np.median(dist[mask])
    return nearest_colour(np.median(img[core], axis=0))


def foreground_map(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] → float [N,1,H,W] in 0..1: distance of each pixel from its border colour."""
    out = np.empty(images.shape[:3], dtype=np.float32)
    for i, img in enumerate(images):
        d = np.linalg.norm(img.astype(np.float32) - background_rgb(img)[None, None], axis=-1)
        out[i] = np.clip(d / _FG_SCALE, 0.0, 1.0)
    return torch.from_numpy(out)[:, None]


# ------------------------------------------------------------------------------ the classifier
class ShapeClassifier(nn.Module):
    """Four conv/pool stages (64 → 4 px) and one linear head per attribute."""

    def __init__(self) -> None:
        super().__init__()
        chans = (1, 16, 32, 64, 64)
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU())
        self.heads = nn.ModuleDict({k: nn.Linear(128, len(v)) for k, v in HEADS.items()})

    def forward(self, fg: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(fg)
        return {k: head(h) for k, head in self.heads.items()}


def make_labelled(seed: int, count: int) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """`count` clean single-object images (held-out triples included) and their label indices."""
    images, labels = [], {k: [] for k in HEADS}
    for i in range(count):
        rng = np.random.default_rng([seed, 7, i])
        scene = single_object_scene(rng)
        images.append(render(scene, rng))
        obj = scene.objects[0]
        for key, names in HEADS.items():
            labels[key].append(names.index(getattr(obj, key)))
    return np.stack(images), {k: torch.tensor(v) for k, v in labels.items()}


def _augment(fg: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random Gaussian blur (σ up to 1.5 px, like a soft decoder) and pixel noise."""
    n = fg.shape[0]
    sigma = torch.rand(n, generator=gen) * 1.5 + 1e-3
    x = torch.arange(-3, 4, dtype=torch.float32)
    k1 = torch.exp(-x[None] ** 2 / (2 * sigma[:, None] ** 2))
    k1 = k1 / k1.sum(dim=1, keepdim=True)
    kernels = (k1[:, :, None] * k1[:, None, :])[:, None]  # [N,1,7,7]
    blurred = F.conv2d(fg.transpose(0, 1), kernels, padding=3, groups=n).transpose(0, 1)
    noise = torch.randn(fg.shape, generator=gen) * torch.rand(n, 1, 1, 1, generator=gen) * 0.1
    return (blurred + noise).clamp(0.0, 1.0)


def train_classifier(seed: int = 0, count: int = 4000, steps: int = 400,
                     batch: int = 64) -> ShapeClassifier:
    """Train on clean procedural images with augmentation; deterministic for a seed."""
    torch.manual_seed(seed)
    images, labels = make_labelled(seed, count)
    fg = foreground_map(images)
    model = ShapeClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, count, (batch,), generator=gen)
        out = model(_augment(fg[idx], gen))
        loss = sum(F.cross_entropy(out[k], labels[k][idx]) for k in HEADS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: ShapeClassifier, images: np.ndarray) -> list[dict[str, str]]:
    """Attribute names predicted for uint8 images [N,64,64,3]."""
    out = model(foreground_map(images))
    picks = {k: out[k].argmax(dim=1).tolist() for k in HEADS}
    return [{k: HEADS[k][picks[k][i]] for k in HEADS} for i in range(len(images))]


def clean_accuracy(model: ShapeClassifier, seed: int = 12345, count: int = 1000) -> dict[str, float]:
    """Accuracy per attribute on fresh clean images (a seed stream never used for training)."""
    images, labels = make_labelled(seed, count)
    preds = predict(model, images)
    return {k: float(np.mean([HEADS[k].index(p[k]) == int(labels[k][i]) for i, p in enumerate(preds)]))
            for k in HEADS}


def load_or_train(cache: Path | None = None, seed: int = 0) -> ShapeClassifier:
    """The classifier from `cache` when it holds this version's weights, else trained (and cached)."""
    if cache is not None and cache.exists():
        state = torch.load(cache, weights_only=True)
        if int(state.pop("_version", torch.tensor(-1))) == CACHE_VERSION:
            model = ShapeClassifier()
            model.load_state_dict(state)
            return model.eval()
    model = train_classifier(seed)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**model.state_dict(), "_version": torch.tensor(CACHE_VERSION)}, cache)
    return model
