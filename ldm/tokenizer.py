"""The CLIP BPE tokenizer, built offline from the vocabulary file that open-clip-torch installs.

No hub access is possible, so the 49,408-entry vocabulary is reconstructed the way CLIP defines it:
the 256 byte-unicode symbols, the same with ``</w>``, the first 48,894 merges joined, then
``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407). transformers' CLIPTokenizer then does the
same text normalisation as ComfyUI (NFC, whitespace clean-up, lower case; no ftfy).
"""
from __future__ import annotations

import gzip
import importlib
import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

START_TOKEN = 49406
END_TOKEN = 49407
N_MERGES = 49152 - 256 - 2  # CLIP uses the first 48,894 merges of the file


def _bytes_to_unicode() -> list[str]:
    """CLIP's reversible byte → printable unicode map, in byte-value order of the vocabulary."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = list(printable)
    extra = 0
    codes = list(printable)
    for b in range(256):
        if b not in printable:
            codes.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def vocab_path() -> Path:
    """Where open-clip-torch installed the BPE file, found without importing open_clip (that
    import pulls in timm and takes seconds)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open-clip-torch is not installed; it provides the CLIP vocabulary")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise RuntimeError("open_clip/bpe_simple_vocab_16e6.txt.gz not found")


def vocab_file_lines() -> list[str]:
    """The merge lines of open_clip's ``bpe_simple_vocab_16e6.txt.gz`` (header skipped)."""
    text = gzip.decompress(vocab_path().read_bytes()).decode("utf-8")
    return text.split("\n")[1:N_MERGES + 1]


def build_vocab() -> tuple[dict[str, int], list[str]]:
    """(token → id, merges) exactly as CLIP's SimpleTokenizer constructs them."""
    merges = vocab_file_lines()
    symbols = _bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


_TRANSFORMERS_IMPORT = threading.Lock()


def import_transformers(*names: str) -> tuple:
    """`from transformers import names...` under one process-wide lock: transformers' lazy module
    is not safe to import from two threads at once (the server warms it up in the background while
    a prompt may already be loading a checkpoint; the loser got an ImportError)."""
    with _TRANSFORMERS_IMPORT:
        module = importlib.import_module("transformers")
        return tuple(getattr(module, name) for name in names)


@lru_cache(maxsize=1)
def get_tokenizer():
    """The shared CLIP tokenizer (built once per process, ~0.25 s).

    Returns a transformers ``CLIPTokenizer``; ``tok(text)["input_ids"]`` includes start and end.
    """
    (CLIPTokenizer,) = import_transformers("CLIPTokenizer")
    vocab, merges = build_vocab()
    tok = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges],
                        model_max_length=77)
    return tok


def tokenize_words(text: str) -> list[int]:
    """Token ids of ``text`` without start/end tokens."""
    return get_tokenizer()(text)["input_ids"][1:-1]
