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
