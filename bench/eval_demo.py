"""Does the embedded demo model draw what it is told? Accuracy on prompts it never saw in training.

Every held-out prompt of tools.demo_data (colour/shape/position combinations excluded from training)
is sampled through the normal inference path — ldm.checkpoint.load_checkpoint, TextEncoder.encode,
ldm.sample.sample (20 euler steps, cfg 5, normal schedule, seed = prompt index), VAE.decode — then
scored: background colour from the border pixels, object colour from the pixels that differ from
the background, shape / position / size with tools.demo_classifier (whose own accuracy on clean
procedural images is printed too). Writes a labelled grid (docs/demo_grid.png by default).

With `--training-scenes N` it also scores N single-object scenes drawn as in training (same
combinations as the training data), to compare seen with unseen combinations.

    python -m bench.eval_demo [--checkpoint FILE] [--grid PNG] [--limit N] [--training-scenes N]
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.demo_data import IMAGE_SIZE, DemoScene, held_out_scenes, random_scene  # noqa: E402
from tools import demo_classifier as dc  # noqa: E402

_SHORT = {"background": "bg", "colour": "col", "shape": "shape", "position": "pos", "size": "size"}
DEFAULT_CKPT = ROOT / "models" / "checkpoints" / "latentgraph-demo.safetensors"


def generate(model, clip, vae, prompts: list[str], *, steps: int = 20, cfg: float = 5.0,
             seed0: int = 0, size: int = 64) -> np.ndarray:
    """uint8 images [N,size,size,3], one txt2img run per prompt exactly as a KSampler graph does."""
    from ldm.sample import sample

    negative = [[clip.encode("")[0], {}]]
    f = vae.downscale_ratio
    images = []
    for i, prompt in enumerate(prompts):
        cond, pooled = clip.encode(prompt)
        opts = {} if pooled is None else {"pooled_output": pooled}
        latent = torch.zeros(1, model.config.latent_channels, size // f, size // f)
        out = sample(model, noise=None, latent=latent, positive=[[cond, opts]], negative=negative,
                     cfg=cfg, sampler_name="euler", scheduler="normal", steps=steps, seed=seed0 + i)
        pixels = vae.decode(out)[0].numpy()
        images.append(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
    return np.stack(images)


def to_scoring_size(images: np.ndarray) -> np.ndarray:
    """Area-average uint8 images down to the classifier's 64×64 (the scene layout is scale-free)."""
    from PIL import Image

    if images.shape[1] == IMAGE_SIZE:
        return images
    return np.stack([np.asarray(Image.fromarray(img).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX))
                     for img in images])


def score(images: np.ndarray, scenes: list[DemoScene], classifier) -> list[dict]:
    """Per image: what was asked, what was measured, and which attributes match."""
    images = to_scoring_size(images)
    preds = dc.predict(classifier, images)
    rows = []
    for img, scene, pred in zip(images, scenes, preds):
        obj = scene.objects[0]
        got = {"background": dc.border_colour(img), "colour": dc.object_colour(img), **pred}
        want = {"background": scene.background, "colour": obj.colour, "shape": obj.shape,
                "position": obj.position, "size": obj.size}
        rows.append({"prompt": scene.caption(), "want": want, "got": got,
                     "ok": {k: got[k] == want[k] for k in want}})
    return rows


def labelled_grid(images: np.ndarray, rows: list[dict], path: Path, cols: int = 8,
                  tile: int | None = None) -> None:
    """Tiles with the prompt under each image and the measured attributes (✗ marks misses)."""
    from PIL import Image, ImageDraw

    tile = tile or images.shape[1] * max(1, 192 // images.shape[1])
    text_h, cols = 72, min(cols, len(images))
    n_rows = -(-len(images) // cols)
    canvas = Image.new("RGB", (cols * tile, n_rows * (tile + text_h)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (img, row) in enumerate(zip(images, rows)):
        x, y = (i % cols) * tile, (i // cols) * (tile + text_h)
        canvas.paste(Image.fromarray(img).resize((tile, tile), Image.NEAREST), (x, y))
        lines = textwrap.wrap(row["prompt"], width=tile // 6)[:3]
        misses = [f"{_SHORT[k]}:{row['got'][k]}" for k, ok in row["ok"].items() if not ok]
        verdict = textwrap.wrap("x " + " ".join(misses), width=tile // 6)[:2] if misses else ["ok"]
        draw.multiline_text((x + 2, y + tile + 1), "\n".join(lines), fill=(0, 0, 0), spacing=1)
        draw.multiline_text((x + 2, y + tile + 44), "\n".join(verdict), spacing=1,
                            fill=(190, 0, 0) if misses else (0, 120, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def summarise(rows: list[dict]) -> dict[str, float]:
    """Accuracy per attribute over all rows."""
    return {k: float(np.mean([r["ok"][k] for r in rows])) for k in rows[0]["ok"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    p.add_argument("--grid", type=Path, default=ROOT / "docs" / "demo_grid.png")
    p.add_argument("--limit", type=int, default=None, help="only the first N held-out prompts")
    p.add_argument("--classifier-cache", type=Path, default=ROOT / "temp" / "demo_classifier.pt")
    p.add_argument("--json", type=Path, default=None, help="also write per-prompt results here")
    p.add_argument("--training-scenes", type=int, default=0, metavar="N",
                   help="also score N single-object scenes from the training distribution")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from ldm.checkpoint import load_checkpoint, read_metadata

    t0 = time.monotonic()
    classifier = dc.load_or_train(args.classifier_cache)
    clean = dc.clean_accuracy(classifier)
    scenes = held_out_scenes()[:args.limit]
    model, clip, vae = load_checkpoint(args.checkpoint)
    t1 = time.monotonic()
    native = int(read_metadata(args.checkpoint).get("latentgraph.native_resolution", IMAGE_SIZE))
    images = generate(model, clip, vae, [s.caption() for s in scenes], size=native)
    t_gen = time.monotonic() - t1
    rows = score(images, scenes, classifier)
    acc = summarise(rows)
    labelled_grid(images, rows, args.grid)
    print(f"classifier on clean procedural images: "
          + ", ".join(f"{k} {v:.1%}" for k, v in clean.items()))
    print(f"held-out prompts: {len(rows)} at {native}×{native} (20 euler steps, cfg 5) — "
          f"{t_gen / len(rows):.2f} s/image")
    seen = {}
    if args.training_scenes:
        rng = np.random.default_rng(1234)
        train = [random_scene(rng, two_object_prob=0.0, gradient_prob=0.0) for _ in range(args.training_scenes)]
        train_images = generate(model, clip, vae, [s.caption() for s in train], size=native, seed0=1000)
        seen = summarise(score(train_images, train, classifier))
    print(f"{'attribute':<12}{'held-out':>9}" + (f"{'training':>10}" if seen else ""))
    for k, v in acc.items():
        print(f"{k:<12}{v:>9.1%}" + (f"{seen[k]:>10.1%}" if seen else ""))
    print(f"grid: {args.grid}   total {time.monotonic() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"accuracy": acc, "training_scenes_accuracy": seen,
                                                    "classifier_clean": clean, "rows": rows},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
