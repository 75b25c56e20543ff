"""Prompt weighting syntax, with ComfyUI's rules (so the same text gives the same conditioning).

* ``(text:1.3)`` sets the weight of ``text`` to 1.3 — it *replaces* the enclosing weight, it does not
  multiply it (``((a:2))`` is 2.0, as ComfyUI measures).
* ``(text)`` multiplies the enclosing weight by 1.1; nesting multiplies (``((a))`` = 1.21).
* ``[text]`` is literal text (ComfyUI); A1111's down-weighting (÷1.1) only with ``brackets=True``.
* ``\\(`` ``\\)`` (and ``\\[`` ``\\]``) are literal brackets.
* A group that never closes, or a stray ``)``, stays literal text like in ComfyUI.
"""
from __future__ import annotations

EMBEDDING_PREFIX = "embedding:"

# Escaped brackets are swapped for private characters before parsing and restored afterwards.
_ESCAPES = {"\\(": "\0\1", "\\)": "\0\2", "\\[": "\0\3", "\\]": "\0\4"}
_CLOSE = {"(": ")", "[": "]"}


def _escape(text: str) -> str:
    for seq, mark in _ESCAPES.items():
        text = text.replace(seq, mark)
    return text


def _unescape(text: str) -> str:
    for seq, mark in _ESCAPES.items():
        text = text.replace(mark, seq[1])
    return text


def _top_level_groups(text: str, opens: str) -> list[str]:
    """Splits text into literal runs and bracketed groups at nesting level zero.

    The depth counter is shared by all bracket kinds in ``opens`` and may go negative after a stray
    closer, in which case later brackets stay part of the literal run (ComfyUI's behaviour).
    """
    closes = "".join(_CLOSE[c] for c in opens)
    parts: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char in opens:
            if depth == 0 and current:
                parts.append(current)
                current = ""
            current += char
            depth += 1
        elif char in closes:
            depth -= 1
            current += char
            if depth == 0:
                parts.append(current)
                current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts


def _weights(text: str, weight: float, opens: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part in _top_level_groups(text, opens):
        if len(part) >= 2 and part[0] in opens and part[-1] == _CLOSE[part[0]]:
            inner = part[1:-1]
            if part[0] == "[":
                out += _weights(inner, weight / 1.1, opens)
                continue
            inner_weight = weight * 1.1
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    inner_weight = float(inner[colon + 1:])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out += _weights(inner, inner_weight, opens)
        else:
            out.append((part, weight))
    return out


def parse_weights(text: str, *, brackets: bool = False) -> list[tuple[str, float]]:
    """Splits a prompt into (text, weight) segments, brackets and weights removed, escapes resolved.

    ``brackets=True`` enables A1111's ``[text]`` = weight ÷ 1.1 (ComfyUI keeps it literal).
    """
    opens = "([" if brackets else "("
    return [(_unescape(part), w) for part, w in _weights(_escape(text), 1.0, opens)]


def split_words(segment: str) -> list[str]:
    """Words of a weighted segment as ComfyUI tokenizes them: newlines are spaces, split on ' '."""
    return segment.replace("\n", " ").split(" ")


def embedding_reference(word: str) -> str | None:
    """The embedding name of a word ``embedding:name`` (None for ordinary words)."""
    if not word.startswith(EMBEDDING_PREFIX):
        return None
    return word[len(EMBEDDING_PREFIX):].strip("\n")


def embedding_candidates(name: str) -> list[tuple[str, str]]:
    """(name to look up, leftover text) pairs to try, in order.

    ``embedding:foo,`` written before a comma first looks up ``foo,`` and then ``foo`` with ``,``
    left over to be tokenized as text (ComfyUI strips trailing commas the same way).
    """
    candidates = [(name, "")]
    stripped = name.strip(",")
    if len(stripped) < len(name):
        candidates.append((stripped, name[len(stripped):]))
    return candidates
