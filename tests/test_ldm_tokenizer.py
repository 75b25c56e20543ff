"""The CLIP BPE tokenizer built from open_clip's vocabulary file gives CLIP's real ids."""
from __future__ import annotations

import pytest

from ldm.tokenizer import END_TOKEN, START_TOKEN, build_vocab, get_tokenizer, tokenize_words


def test_known_ids():
    assert get_tokenizer()("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenize_words("A person riding a motorcycle") == [320, 2533, 6765, 320, 10297]


def test_vocabulary_size_and_special_tokens():
    vocab, merges = build_vocab()
    assert len(vocab) == 49408
    assert len(merges) == 48894
    assert vocab["<|startoftext|>"] == START_TOKEN == 49406
    assert vocab["<|endoftext|>"] == END_TOKEN == 49407
    assert vocab["a</w>"] == 320


def test_tokenizer_is_cached():
    assert get_tokenizer() is get_tokenizer()


@pytest.mark.parametrize("text", [
    "a photo of a cat", "Hello, World!!  masterpiece", "café 日本 naïve", "1girl, 8k uhd, 42.5",
    "don't stop-believing", "<lora:x:1>",
])
def test_matches_open_clip_reference_tokenizer(text):
    """open_clip's SimpleTokenizer is an independent implementation of the same BPE."""
    import open_clip

    ref = open_clip.tokenize([text])[0].tolist()
    ref = ref[: ref.index(END_TOKEN) + 1]
    assert get_tokenizer()(text)["input_ids"] == ref


def test_warm_up_and_a_first_checkpoint_load_in_two_threads(tiny_dir):
    """The server's background warm-up and a first prompt's checkpoint load import transformers'
    CLIP together in a fresh process; unlocked, the loader got "ImportError: cannot import name
    'CLIPTextConfig' from 'transformers'"."""
    import subprocess
    import sys
    from pathlib import Path

    code = f"""
import threading
from ldm.checkpoint import load_checkpoint
from ldm.clip import preload_text_model_code
errors = []
def guard(fn):
    try:
        fn()
    except Exception as exc:
        errors.append(repr(exc))
jobs = [preload_text_model_code, lambda: load_checkpoint({str(tiny_dir / "checkpoints" / "tiny_sd1.safetensors")!r})]
threads = [threading.Thread(target=guard, args=(job,)) for job in jobs]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors)
"""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
