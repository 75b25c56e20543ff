"""Prompt weighting syntax follows ComfyUI's measured rules (COMPAT.md)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ldm.prompt import (embedding_candidates, embedding_reference, parse_weights,
                        split_words)


def approx(segments):
    return [(t, pytest.approx(w)) for t, w in segments]


def test_plain_text_is_one_segment_of_weight_one():
    assert parse_weights("a photo of a cat") == [("a photo of a cat", 1.0)]


def test_explicit_weight():
    assert parse_weights("a (red:1.5) cat") == approx([("a ", 1.0), ("red", 1.5), (" cat", 1.0)])


def test_parentheses_multiply_by_1_1_and_nest():
    assert parse_weights("(a)") == approx([("a", 1.1)])
    assert parse_weights("((a))") == approx([("a", 1.21)])
    assert parse_weights("(((a)))") == approx([("a", 1.331)])


def test_explicit_weight_replaces_outer_weight():
    assert parse_weights("((a:2))") == approx([("a", 2.0)])
    assert parse_weights("(x (a:0.5) y)") == approx([("x ", 1.1), ("a", 0.5), (" y", 1.1)])


def test_outer_weight_multiplies_inner_plain_group():
    assert parse_weights("(x (a) y:2)") == approx([("x ", 2.0), ("a", 2.2), (" y", 2.0)])


def test_colon_without_number_is_text_and_group_gets_1_1():
    assert parse_weights("(a:b)") == approx([("a:b", 1.1)])
    assert parse_weights("(:2)") == approx([(":2", 1.1)])  # colon at position 0 is not a weight


def test_last_colon_decides():
    assert parse_weights("(a:b:0.7)") == approx([("a:b", 0.7)])


def test_square_brackets_are_literal_by_default():
    assert parse_weights("[a] b") == [("[a] b", 1.0)]


def test_a1111_square_brackets_option_divides():
    assert parse_weights("[a] b", brackets=True) == approx([("a", 1 / 1.1), (" b", 1.0)])
    assert parse_weights("[(a)]", brackets=True) == approx([("a", 1.0)])


def test_escaped_parentheses_are_literal():
    assert parse_weights(r"a \(b\) c") == [("a (b) c", 1.0)]
    assert parse_weights(r"(a \(b\):1.2)") == approx([("a (b)", 1.2)])


def test_unclosed_group_stays_literal():
    assert parse_weights("a (b c") == [("a ", 1.0), ("(b c", 1.0)]


def test_stray_closer_makes_rest_literal_like_comfyui():
    assert parse_weights("a) (b)") == [("a) (b)", 1.0)]


def test_negative_and_zero_weights():
    assert parse_weights("(a:-1)") == approx([("a", -1.0)])
    assert parse_weights("(a:0)") == approx([("a", 0.0)])


def test_split_words_like_comfyui():
    assert split_words("a  b\nc") == ["a", "", "b", "c"]


def test_embedding_reference():
    assert embedding_reference("embedding:my_style") == "my_style"
    assert embedding_reference("embeddings") is None
    assert embedding_reference("cat") is None


def test_embedding_candidates_strip_trailing_commas():
    assert embedding_candidates("foo") == [("foo", "")]
    assert embedding_candidates("foo,") == [("foo,", ""), ("foo", ",")]


_text = st.text(alphabet="ab (): 12.\\[]", max_size=30)


@given(_text)
def test_text_without_brackets_is_preserved(text):
    """Whatever the weights, concatenating segments loses only bracket/weight syntax."""
    plain = text.replace("(", "").replace(")", "").replace("\\", "")
    if plain == text:
        assert "".join(s for s, _ in parse_weights(text)) == text


@given(st.text(alphabet="ab c", max_size=20), st.floats(-5, 5, allow_nan=False))
def test_weight_round_trip(body, w):
    segs = parse_weights(f"({body}:{w!r})")
    if body:
        assert segs == [(body, w)]
