"""Textual-inversion embedding files: finding them by name and reading their vectors.

Formats read (ComfyUI reads the same ones):
* A1111 ``.pt``: ``{"string_to_param": {"*": [n, W]}, ...}`` (loaded with ``weights_only=True``);
* ``.safetensors`` with ``emb_params`` [n, W];
* SDXL files with one tensor per encoder: ``clip_l`` [n, 768], ``clip_g`` [n, 1280];
* a file holding a single tensor (any key), or a bare tensor in a ``.pt``.

A file that is not used — missing, outside the embedding folders, a pickle that would run code,
unreadable, the wrong width, no tensors, NaN/inf values — never fails the prompt (as in ComfyUI)
but always comes back as a one-line warning for the node to pass on (``ctx.warn``).
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor

EXTENSIONS = (".safetensors", ".pt", ".bin", ".pth")

# Search path used by every TextEncoder that has no folders of its own (set_embedding_dirs).
_DEFAULT_DIRS: list[Path] = []


def set_embedding_dirs(dirs: list[str | Path]) -> None:
    """Sets the process-wide embedding folders (a TextEncoder may override them per instance)."""
    _DEFAULT_DIRS[:] = [Path(d) for d in dirs]


def default_dirs() -> list[Path]:
    """The process-wide embedding folders."""
    return list(_DEFAULT_DIRS)


def find_embedding(name: str, dirs: list[Path]) -> Path | None:
    """The file for ``embedding:name`` (extension optional, subfolders allowed), or None.

    Names that would leave the folder (``..``, absolute paths) are never resolved outside it.
    """
    if not name or "\0" in name:
        return None
    for root in dirs:
        root = Path(root).resolve()
        base = (root / name).resolve()
        if root not in base.parents:
            continue
        candidates = [base] if base.suffix.lower() in EXTENSIONS else []
        candidates += [base.with_name(base.name + ext) for ext in EXTENSIONS]
        for path in candidates:
            if path.is_file():
                return path
    return None


def read_embedding_file(path: Path) -> dict[str, Tensor]:
    """All tensors of an embedding file, flattened to {key: tensor} (no code is unpickled)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, Tensor):
        return {"*": data}
    if "string_to_param" in data:
        return {f"string_to_param.{k}": v for k, v in data["string_to_param"].items()}
    return {k: v for k, v in data.items() if isinstance(v, Tensor)}


def select_vectors(tensors: dict[str, Tensor], key: str | None) -> Tensor | None:
    """The [n, W] vectors meant for one encoder.

    ``key`` is ``clip_l``/``clip_g`` for SDXL encoders (None for SD1/SD2). Order of preference:
    the encoder's own key, A1111's ``string_to_param``, ``emb_params``, the file's first tensor.
    """
    if key is not None and key in tensors:
        vec = tensors[key]
    else:
        a1111 = [k for k in tensors if k.startswith("string_to_param.")]
        if a1111:
            vec = tensors[a1111[0]]
        elif "emb_params" in tensors:
            vec = tensors["emb_params"]
        elif tensors:
            vec = next(iter(tensors.values()))
        else:
            return None
    vec = vec.float()
    return vec.unsqueeze(0) if vec.dim() == 1 else vec.reshape(-1, vec.shape[-1])


def _leaves_folder(name: str) -> bool:
    return name.startswith(("/", "\\", "~")) or ".." in name.replace("\\", "/").split("/") or (
        len(name) > 1 and name[1] == ":")


def _read_failure(exc: Exception) -> str:
    """One line for why a file could not be read (torch's unpickling errors run to paragraphs)."""
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc).lower():
        return "refused: it is a pickle that needs code to load (only plain tensors are accepted)"
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"could not be read ({exc.__class__.__name__}{': ' + first if first else ''})"


def load_embedding(name: str, dirs: list[Path], key: str | None, width: int
                   ) -> tuple[Tensor | None, str | None]:
    """(vectors [n, width] or None, warning or None) for ``embedding:name``."""
    path = find_embedding(name, dirs)
    if path is None:
        if _leaves_folder(name):
            return None, f"embedding:{name} is outside the embedding folders; refused"
        return None, f"embedding:{name} does not exist, ignoring"
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notice is noise next to ours
            warnings.simplefilter("ignore", UserWarning)
            vectors = select_vectors(read_embedding_file(path), key)
    except Exception as exc:  # a broken or pickled-code file is reported, not fatal
        return None, f"embedding:{name} ({path.name}) {_read_failure(exc)}; ignoring"
    if vectors is None or vectors.numel() == 0:
        return None, f"embedding:{name} ({path.name}) holds no vectors; ignoring"
    if vectors.shape[-1] != width:
        return None, (f"embedding:{name} ({path.name}) has width {vectors.shape[-1]}, the text encoder "
                      f"needs {width}; ignoring")
    if not torch.isfinite(vectors).all():
        return None, f"embedding:{name} ({path.name}) contains NaN or infinite values; ignoring"
    return vectors, None
