"""Split job-ad text into sentences with their character spans (no model needed)."""

from __future__ import annotations

import re

from jobskills.errors import InputError

__all__ = ["split_sentences", "has_words", "require_words", "MAX_TEXT_CHARS"]

#: Longest text accepted in one call (about 250 pages); larger corpora go through the file/stream paths.
MAX_TEXT_CHARS = 2_000_000

# sentence ends: . ! ? ; followed by space; line breaks; a bullet or list number after a line break
_BULLET = r"(?:[•·▪◦●■\-–*]|\d{1,2}[.)])\s+"
_BREAK = re.compile(rf"\s*\n\s*(?:{_BULLET})?|(?<=[.!?;])\s+(?=\S)|^\s*{_BULLET}")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences / bullet items of ``text``, whitespace trimmed.

    >>> t = "We need Python. Fluent German!\\n- Docker\\n- CI/CD"
    >>> [t[a:b] for a, b in split_sentences(t)]
    ['We need Python.', 'Fluent German!', 'Docker', 'CI/CD']
    """
    spans = []
    start = 0
    for m in _BREAK.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a and has_words(text[a:b]):
            out.append((a, b))
    return out


def has_words(text: str) -> bool:
    """Whether ``text`` holds a letter or a digit: the splitter keeps only such sentences, so a text without
    one (emoji, punctuation) has nothing to match and must be refused, not answered with confident noise.

    >>> has_words("Python 🐍"), has_words("🚀🔥 !!!"), has_words("Müller")
    (True, False, True)
    """
    return any(ch.isalnum() for ch in text)


def require_words(text: str, what: str = "the text") -> str:
    """``text`` unchanged, or :class:`~jobskills.errors.InputError` ("<what> has no words to analyse"): the one
    check that extract, titles and the API share."""
    if not has_words(text):
        raise InputError(f"{what} has no words to analyse")
    return text
