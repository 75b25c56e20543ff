"""Where files live: model folders, input/output/temp/user directories, and `safe_join`.

`safe_join` is a security boundary: every file name that comes from a workflow or an HTTP request
goes through it, so it refuses anything that could leave its root folder.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from engine.errors import ModelNotFound, PathRefused

MODEL_FOLDERS = ("checkpoints", "vae", "loras", "upscale_models", "embeddings", "vae_approx", "configs",
                 "diffusion_models", "text_encoders")
# ComfyUI's older folder names: their models/ directories are searched too, after the new one.
LEGACY_SUBDIRS = {"diffusion_models": ("unet",), "text_encoders": ("clip",)}
MODEL_EXTENSIONS = frozenset({".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".pt2"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
FOLDER_EXTENSIONS = {"configs": frozenset({".yaml", ".yml", ".json"}), "input_images": IMAGE_EXTENSIONS}
# Names other tools use in extra_model_paths.yaml for our folders.
FOLDER_ALIASES = {"lora": "loras", "upscale": "upscale_models", "embedding": "embeddings",
                  "checkpoint": "checkpoints", "Stable-diffusion": "checkpoints",
                  "unet": "diffusion_models", "clip": "text_encoders"}
_DRIVE = re.compile(r"^[A-Za-z]:")
log = logging.getLogger(__name__)
# The OS limits (Linux/macOS): NAME_MAX per component, PATH_MAX (less its NUL) for a whole path.
# Checked before any system call so an over-long name is a refusal, not an OSError mid-request.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095


def length_problem(path: str | Path) -> str | None:
    """Why the OS would refuse `path` for its length or encoding, or None when it is acceptable."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:
        return "contains characters the file system cannot encode"
    if len(raw) > MAX_PATH_BYTES:
        return f"path is longer than {MAX_PATH_BYTES} bytes"
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > MAX_NAME_BYTES:
        name = os.fsdecode(longest)
        return f"name {name[:40]!r}... is longer than {MAX_NAME_BYTES} bytes"
    return None


def safe_join(root: str | Path, *parts: str) -> Path:
    """Joins untrusted relative parts under `root`, refusing any way out of it (raises PathRefused).

    Refused: `..` components, absolute parts, NUL bytes, backslashes, drive letters, names longer
    than the OS allows (`length_problem`), symlink loops, and paths that resolve (through symlinks)
    outside the resolved root.
    """
    pieces: list[str] = []
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, str):
            raise PathRefused(f"path part must be a string, got {type(part).__name__}")
        if "\x00" in part or "\\" in part:
            raise PathRefused(f"refused path {part!r}: NUL or backslash")
        if part.startswith("/") or _DRIVE.match(part) or part.startswith("~"):
            raise PathRefused(f"refused path {part!r}: absolute")
        for comp in part.split("/"):
            if comp == "..":
                raise PathRefused(f"refused path {part!r}: '..'")
            if comp and comp != ".":
                pieces.append(comp)
    base = Path(root).resolve()
    target = base.joinpath(*pieces)
    problem = length_problem(target)
    if problem:
        raise PathRefused(f"refused path: {problem}")
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (pathlib, Python 3.11)
        raise PathRefused(f"refused path {'/'.join(pieces)[:200]!r}: {exc.__class__.__name__}") from None
    if resolved != base and base not in resolved.parents:
        raise PathRefused(f"refused path {'/'.join(pieces)!r}: leaves its folder")
    return target


def write_bytes_atomic(path: str | Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write through a temp file in the same folder, fsync it, then put it in place: readers (and a
    crash mid-write) see the old file or the new one, never half of one. With ``overwrite=False``
    an existing file is left alone and FileExistsError raised (a hard link claims the name
    atomically). Raises OSError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".lg-write-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """`write_bytes_atomic` of ``data`` as indented JSON. Raises OSError."""
    write_bytes_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))


_UNLISTABLE: set[str] = set()  # folders already reported (listings run on every /object_info)


def _report_unlistable(exc: OSError) -> None:
    """os.walk skips a folder it cannot read; say so once instead of its files silently missing."""
    where = str(exc.filename or exc)
    if where not in _UNLISTABLE:
        _UNLISTABLE.add(where)
        log.warning("cannot list %s (%s): its files are not offered", where, exc.strerror or exc)


def _split_values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [line.strip() for line in str(value).splitlines() if line.strip()]


def parse_extra_model_paths(path: str | Path) -> dict[str, list[str]]:
    """Reads ComfyUI's extra_model_paths.yaml: sections with `base_path` and folder keys.

    Values may hold several lines (one folder each); relative folders are taken from base_path,
    and a relative base_path from the yaml file's own directory, as ComfyUI does.
    """
    path = Path(path).absolute()  # a relative yaml path: its folder is still the base of its entries
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    result: dict[str, list[str]] = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected sections of folder keys, got {type(data).__name__}")
    for section in data.values():
        if not isinstance(section, dict):
            continue
        base = section.get("base_path")
        base_dir = Path(os.path.expanduser(str(base))) if base else path.parent
        if not base_dir.is_absolute():
            base_dir = path.parent / base_dir
        for key, value in section.items():
            if key in ("base_path", "is_default"):
                continue
            folder = FOLDER_ALIASES.get(key, key)
            for item in _split_values(value):
                p = Path(os.path.expanduser(item))
                result.setdefault(folder, []).append(str(p if p.is_absolute() else base_dir / p))
    return result


@dataclass
class Paths:
    """The configured folders; model folders are `models_dir/<folder>` plus extra paths."""

    models_dir: Path
    input_dir: Path
    output_dir: Path
    temp_dir: Path
    user_dir: Path
    extra_model_paths: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("models_dir", "input_dir", "output_dir", "temp_dir", "user_dir"):
            setattr(self, name, Path(getattr(self, name)).expanduser().absolute())

    @classmethod
    def from_args(cls, models_dir: str | Path, input_dir: str | Path, output_dir: str | Path,
                  temp_dir: str | Path, user_dir: str | Path,
                  extra_model_paths_yaml: str | Path | Iterable[str | Path] | None = None) -> "Paths":
        """Builds Paths from CLI arguments; several yaml files may be given."""
        extra: dict[str, list[str]] = {}
        if extra_model_paths_yaml:
            ymls = [extra_model_paths_yaml] if isinstance(extra_model_paths_yaml, (str, Path)) \
                else list(extra_model_paths_yaml)
            for yml in ymls:
                for folder, dirs in parse_extra_model_paths(yml).items():
                    extra.setdefault(folder, []).extend(dirs)
        return cls(Path(models_dir), Path(input_dir), Path(output_dir), Path(temp_dir), Path(user_dir), extra)

    def folder_dirs(self, folder: str) -> list[Path]:
        """The directories searched for `folder`, the models_dir one first."""
        if folder == "input_images":
            return [self.input_dir]
        folder = FOLDER_ALIASES.get(folder, folder)
        dirs = [self.models_dir / folder] + [self.models_dir / d for d in LEGACY_SUBDIRS.get(folder, ())]
        dirs += [Path(d) for d in self.extra_model_paths.get(folder, [])]
        unique: list[Path] = []
        for d in dirs:
            if d not in unique:
                unique.append(d)
        return unique

    def type_dir(self, kind: str) -> Path:
        """The folder behind ComfyUI's `type` field: output | input | temp."""
        dirs = {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}
        if kind not in dirs:
            raise PathRefused(f"unknown folder type {kind!r}")
        return dirs[kind]

    def walk_files(self, folder: str) -> Iterator[tuple[int, str, Path]]:
        """(index of the folder's directory, relative name with '/', path) of every file of a known
        extension, hidden names skipped, directory by directory in sorted walk order."""
        exts = FOLDER_EXTENSIONS.get(folder, MODEL_EXTENSIONS)
        for index, d in enumerate(self.folder_dirs(folder)):
            if not d.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(d, followlinks=True, onerror=_report_unlistable):
                dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
                for fn in sorted(filenames):
                    if fn.startswith(".") or Path(fn).suffix.lower() not in exts:
                        continue
                    path = Path(dirpath) / fn
                    yield index, path.relative_to(d).as_posix(), path

    def list_files(self, folder: str) -> list[str]:
        """Relative file names (with '/') under the folder's directories, known extensions, sorted."""
        return sorted({name for _, name, _ in self.walk_files(folder)}, key=str.lower)

    def model_path(self, folder: str, name: str) -> Path:
        """The file `name` in the first directory of `folder` that has it (ModelNotFound otherwise)."""
        for d in self.folder_dirs(folder):
            candidate = safe_join(d, name)
            if candidate.is_file():
                return candidate
        raise ModelNotFound(f"{folder}/{name} not found in " + ", ".join(str(d) for d in self.folder_dirs(folder)))

    def ensure_dirs(self) -> None:
        """Creates the writable folders (and models/<folder>) so a fresh checkout just works."""
        for d in (self.input_dir, self.output_dir, self.temp_dir, self.user_dir):
            d.mkdir(parents=True, exist_ok=True)
        for folder in MODEL_FOLDERS:
            (self.models_dir / folder).mkdir(parents=True, exist_ok=True)
