"""What the query path takes and gives back: the input check every query shares, the evidence default, and
the result records (what ``extract``, ``search``, the CLI's ``--json`` and the API return).

Light on purpose (no torch): the CLI and the API read :data:`EVIDENCE_WORDS` for their defaults without
loading a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from jobskills.errors import InputError

__all__ = ["EVIDENCE_WORDS", "Evidence", "SkillMatch", "SentenceResult", "check_unicode"]

#: Evidence words reported per skill, everywhere a caller gives none: the library, ``extract --evidence``,
#: the API's ``evidence`` field, ``search`` and ``analyse``.
EVIDENCE_WORDS = 3


def check_unicode(text: str) -> None:
    """A lone surrogate (e.g. JSON "\\ud800") is not text: refuse it with its position instead of failing deep
    inside the tokenizer."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"the text holds an unpaired surrogate (U+{ord(text[exc.start]):04X}) at character {exc.start}; "
                         "send valid Unicode") from None


@dataclass
class Evidence:
    """A word of the input that carried a match: its text, character span in the input, attention weight."""

    text: str
    start: int
    end: int
    weight: float


@dataclass
class SkillMatch:
    """A skill found in a sentence (or a ``search`` hit): the taxonomy's URI, preferred label and type, the exact
    score, and the words of the input that carried it (``evidence``, heaviest first).

    ``score`` is the ConTeXT score plus the model's lexical weight times ``lexical``, the share of a label's
    words (IDF-weighted, best label) that the sentence contains; ``lexical`` is 0 when no label word occurs or
    the index gives lexical evidence no weight."""

    uri: str
    label: str
    skill_type: str
    score: float
    evidence: list[Evidence] = field(default_factory=list)
    reuse_level: str = ""
    matched_label: str = ""  # the label that scored best: the preferred one or, with label expansion, an alternative
    lexical: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SentenceResult:
    """One sentence of the input (its text and character span in the text given) and the skills at or above the
    threshold, best first; ``candidates`` is how many skill points the candidate stage let through to the
    exact score."""

    text: str
    start: int
    end: int
    skills: list[SkillMatch]
    candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end, "candidates": self.candidates,
                "skills": [s.to_dict() for s in self.skills]}
