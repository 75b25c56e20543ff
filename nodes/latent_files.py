"""SaveLatent / LoadLatent: ComfyUI's `.latent` files (nodes.py).

A `.latent` file is a safetensors file holding `latent_tensor` (the raw [B,C,h,w] samples) and
an empty `latent_format_version_0` tensor, with the prompt and the workflow's extra_pnginfo as
JSON strings in its metadata. Files without the version marker predate it and stored latents
multiplied by SD1's scale factor 0.18215, so loading divides them by it. Saved files go to
output/ as `{prefix}_{counter:05}_.latent`; loaded ones come from the top of input/.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

from engine.paths import PathRefused, safe_join, write_bytes_atomic
from nodes.image import _expand_prefix
from nodes.registry import Combo, FileOptions, In, NodeOutput, Out, String, node

VERSION_KEY = "latent_format_version_0"
LEGACY_SCALE = 1.0 / 0.18215  # SD1's VAE scale factor, applied to files without VERSION_KEY


@dataclass(frozen=True)
class LatentFiles(FileOptions):
    """The `.latent` files directly in input/ (ComfyUI lists no subfolders here)."""

    folder: str = "input_latents"

    def resolve(self, paths) -> list[str]:
        folder = getattr(paths, "input_dir", None)  # schema-only use passes no (or a partial) Paths
        if folder is None or not Path(folder).is_dir():
            return []
        return sorted(p.name for p in Path(folder).iterdir() if p.is_file() and p.suffix == ".latent")


def latent_to_file_tensors(samples: torch.Tensor) -> dict[str, torch.Tensor]:
    """The tensors of a current-format `.latent` file."""
    return {"latent_tensor": samples.contiguous(), VERSION_KEY: torch.tensor([])}


def tensors_to_latent(tensors: dict[str, torch.Tensor]) -> dict:
    """A LATENT from a `.latent` file's tensors (old files are rescaled, see the module doc)."""
    if "latent_tensor" not in tensors:
        raise ValueError("not a .latent file: it has no 'latent_tensor'")
    scale = 1.0 if VERSION_KEY in tensors else LEGACY_SCALE
    return {"samples": tensors["latent_tensor"].float() * scale}


def _next_counter(folder: Path, name: str) -> int:
    """One past the highest `{name}_NNNNN_.latent` counter in folder (ComfyUI's numbering)."""
    pattern = re.compile(re.escape(name) + r"_(\d+)_?\.latent$")
    found = [int(m.group(1)) for p in folder.glob("*.latent") if (m := pattern.match(p.name))]
    return max(found, default=0) + 1


@node("_for_testing", display_name="SaveLatent", output_node=True)
class SaveLatent:
    """Saves latents to the output folder as a .latent file (safetensors) for LoadLatent."""

    INPUTS = [In("samples", "LATENT"), String("filename_prefix", "latents/ComfyUI")]
    OUTPUTS = []

    def run(self, ctx, samples, filename_prefix):
        # ComfyUI fills %width%/%height% with 0 here (no image size is known): an empty image does.
        prefix = _expand_prefix(filename_prefix or "ComfyUI", torch.empty(1, 0, 0, 3))
        rel = Path(prefix)
        root = ctx.paths.output_dir
        folder = safe_join(root, *rel.parent.parts) if rel.parent.parts else root
        folder.mkdir(parents=True, exist_ok=True)
        metadata = {"prompt": json.dumps(ctx.prompt) if ctx.prompt is not None else ""}
        metadata.update({k: json.dumps(v) for k, v in (ctx.extra_pnginfo or {}).items()})
        name = f"{rel.name}_{_next_counter(folder, rel.name):05}_.latent"
        data = safetensors.torch.save(latent_to_file_tensors(samples["samples"]), metadata=metadata)
        write_bytes_atomic(safe_join(folder, name), data)
        saved = {"filename": name, "subfolder": rel.parent.as_posix() if rel.parent.parts else "", "type": "output"}
        return NodeOutput((), {"latents": [saved]})


def _latent_path(ctx, latent: str) -> Path:
    if "/" in latent:  # only files directly in input/ are offered
        raise PathRefused(f"refused latent file {latent!r}: not a file directly in the input folder")
    return safe_join(ctx.paths.input_dir, latent)


@node("_for_testing", display_name="LoadLatent")
class LoadLatent:
    """Loads a .latent file from the input folder."""

    INPUTS = [Combo("latent", LatentFiles())]
    OUTPUTS = [Out("LATENT")]

    @classmethod
    def fingerprint(cls, ctx, latent):
        try:
            return hashlib.sha256(_latent_path(ctx, latent).read_bytes()).hexdigest()
        except (OSError, PathRefused) as exc:  # reported by run(); the signature just differs
            return f"missing:{exc}"

    def run(self, ctx, latent):
        path = _latent_path(ctx, latent)
        try:
            tensors = safetensors.torch.load_file(str(path), device="cpu")
        except (OSError, safetensors.SafetensorError) as exc:
            raise ValueError(f"input 'latent': {latent} is not a readable .latent file ({exc})") from exc
        return (tensors_to_latent(tensors),)
