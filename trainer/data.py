"""Training data for the ConTeXT objective: (sentence, skills) pairs, from ESCO itself and from JSONL.

Out of the box, with no LLM, ESCO gives two kinds of pairs:

- ``alt``: an alternative label -> its skill, alone or inside a short job-ad frame ("Experience with ...");
- ``desc``: each sentence of a skill's description -> that skill.

``synth`` output (and any ``{"text"|"sentence", "skills": [...]}`` JSONL, benchmarks included) adds pairs
with one skill, several skills, or none (a negative sentence). A sentence with several skills becomes one
training row per skill; the other skills of that sentence are masked in the loss, never negatives.

Augmentation (Decorte et al. 2023, arXiv 2307.10778, section 3): a row's sentence is concatenated with
random other sentences, so the model learns to find a skill inside longer text; the skills those other
sentences carry are added to the row's mask.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from jobskills.errors import InputError
from jobskills.esco import Esco

__all__ = [
    "Pair", "Row", "esco_pairs", "load_pairs", "expand", "augment", "data_fingerprint", "mix_report", "MAX_LABELS",
    "TitlePair", "title_pairs", "TitleTriple", "occupation_titles", "title_triples",
]

logger = logging.getLogger(__name__)

#: Labels per row in the loss: the target skill plus up to MAX_LABELS - 1 other skills present in the text.
MAX_LABELS = 8

# Frames that read naturally around both verb-phrase skills ("manage budgets") and noun skills ("Python").
_FRAMES = (
    "{}",
    "{}.",
    "Requirements: {}.",
    "Experience with {} is a plus.",
    "You will be responsible for the following: {}.",
    "Solid background in {}.",
    "Key competences: {}.",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


@dataclass(frozen=True)
class Pair:
    """One sentence and the skill URIs it expresses (empty: a negative sentence)."""

    text: str
    skills: tuple[str, ...]
    source: str


@dataclass
class Row:
    """One loss row: a sentence, its target skill (None for a negative) and every skill present in it."""

    text: str
    target: str | None
    present: set[str] = field(default_factory=set)
    source: str = ""


def _description_sentences(description: str) -> list[str]:
    parts = [p.strip() for p in _SENTENCE_END.split(description.replace("\n", " ")) if p.strip()]
    return [p for p in parts if len(p.split()) >= 4]


def esco_pairs(esco: Esco, kinds: Sequence[str] = ("alt", "desc"), seed: int = 0, frames: bool = True) -> list[Pair]:
    """Pairs derived from the taxonomy: alternative labels (half of them framed) and description sentences."""
    rng = random.Random(seed)
    pairs: list[Pair] = []
    for uri, skill in esco.skills.items():
        if "alt" in kinds:
            for alt in skill.alt_labels:
                alt = alt.strip()
                if not alt or alt.lower() == skill.label.strip().lower():
                    continue
                text = rng.choice(_FRAMES).format(alt) if frames and rng.random() < 0.5 else alt
                pairs.append(Pair(text, (uri,), "esco-alt"))
        if "desc" in kinds:
            sentences = _description_sentences(skill.description)
            if not sentences and skill.description.strip() and skill.description.strip() != skill.label.strip():
                sentences = [skill.description.strip()]  # a short definition is still better than no pair
            for sentence in sentences:
                pairs.append(Pair(sentence, (uri,), "esco-desc"))
    unknown = set(kinds) - {"alt", "desc"}
    if unknown:
        raise InputError(f"unknown ESCO pair kind(s) {sorted(unknown)}; use alt and/or desc")
    return pairs


def _row_skills(row: Mapping[str, object], where: str, known: Mapping[str, str]) -> tuple[str, ...]:
    raw = row.get("skills", row.get("skill"))
    if raw is None:
        raise InputError(f"{where}: needs a 'skills' list (or 'skill')")
    items = raw if isinstance(raw, list) else [raw]
    uris: list[str] = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("uri")
        if not isinstance(item, str) or not item:
            raise InputError(f"{where}: each skill must be a URI string or an object with 'uri'")
        if item not in known:
            # a preferred label is accepted too, for hand-written files
            by_label = known.get(f"label:{item.strip().lower()}")
            if by_label is None:
                raise InputError(f"{where}: unknown skill {item!r} (not in the taxonomy)")
            item = by_label
        if item not in uris:
            uris.append(item)
    return tuple(uris)


def load_pairs(path: str | Path, esco: Esco) -> list[Pair]:
    """Read ``synth`` output or any ``{"sentence"|"text", "skills": [...]}`` JSONL; errors name the line.

    A torn last line (an interrupted writer) is skipped with a warning rather than failing the run."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"training data {str(path)!r} does not exist")
    known: dict[str, str] = {u: u for u in esco.skills}
    known.update({f"label:{s.label.strip().lower()}": u for u, s in esco.skills.items()})
    pairs: list[Pair] = []
    lines = path.read_bytes().split(b"\n")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(raw)
        except ValueError as exc:
            if n == len(lines) or (n == len(lines) - 1 and not lines[-1].strip()):
                logger.warning("%s: skipping a torn last line", where)
                continue
            raise InputError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise InputError(f"{where}: expected a JSON object")
        text = row.get("sentence", row.get("text"))
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: needs a non-empty 'sentence' (or 'text')")
        kind = str(row.get("kind") or ("negative" if not row.get("skills") else "file"))
        pairs.append(Pair(text.strip(), _row_skills(row, where, known), f"{path.stem}:{kind}"))
    if not pairs:
        raise InputError(f"{path} holds no training pairs")
    return pairs


def expand(pairs: Iterable[Pair]) -> list[Row]:
    """One row per (sentence, skill); a negative sentence is one row without a target."""
    rows: list[Row] = []
    for p in pairs:
        if not p.skills:
            rows.append(Row(p.text, None, set(), p.source))
        for uri in p.skills:
            rows.append(Row(p.text, uri, set(p.skills), p.source))
    return rows


def augment(rows: Sequence[Row], rate: float, max_extra: int = 2, seed: int = 0, max_chars: int = 240) -> list[Row]:
    """Concatenate a share ``rate`` of the rows with 1..``max_extra`` random other sentences, in random order,
    keeping the result within ``max_chars`` (so truncation to the training length never cuts the target out)."""
    if not 0.0 <= rate <= 1.0:
        raise InputError("augmentation rate must be between 0 and 1")
    if rate == 0 or len(rows) < 2:
        return list(rows)
    rng = random.Random(seed)
    out: list[Row] = []
    for row in rows:
        if rng.random() >= rate:
            out.append(row)
            continue
        others, size = [], len(row.text)
        for _ in range(rng.randint(1, max_extra)):
            other = rows[rng.randrange(len(rows))]
            if size + 1 + len(other.text) <= max_chars:
                others.append(other)
                size += 1 + len(other.text)
        if not others:
            out.append(row)
            continue
        parts = [row.text] + [o.text for o in others]
        rng.shuffle(parts)
        present = set(row.present)
        for o in others:
            present |= o.present
        out.append(Row(" ".join(_as_sentence(p) for p in parts), row.target, present, row.source + "+aug"))
    return out


def _as_sentence(text: str) -> str:
    return text if text[-1:] in ".!?;:" else text + "."


def data_fingerprint(pairs: Sequence[Pair]) -> str:
    """Order-independent digest of the pairs, recorded with the model trained on them."""
    h = hashlib.sha256()
    for line in sorted(f"{p.text}\t{','.join(p.skills)}" for p in pairs):
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def mix_report(pairs: Sequence[Pair], rows: Sequence[Row]) -> dict[str, object]:
    """Dataset size and mix: pairs per source, rows, skills covered, negatives, augmented rows."""
    by_source = Counter(p.source for p in pairs)
    targets = {r.target for r in rows if r.target}
    return {
        "pairs": len(pairs),
        "rows": len(rows),
        "by_source": dict(sorted(by_source.items())),
        "skills_covered": len(targets),
        "negative_rows": sum(r.target is None for r in rows),
        "multi_skill_rows": sum(len(r.present) > 1 for r in rows),
        "augmented_rows": sum(r.source.endswith("+aug") for r in rows),
    }


@dataclass(frozen=True)
class TitlePair:
    """A job title and the comma-joined labels of its occupation's skills (JobBERT's training signal)."""

    title: str
    skills: str
    occupation: str


def title_pairs(esco: Esco, max_skills: int = 12, seed: int = 0) -> list[TitlePair]:
    """(title, skills) pairs from ESCO: each preferred and alternative occupation label with a random
    sample of its essential (then optional) skills, as JobBERT-v2 pairs vacancy titles with their skills."""
    rng = random.Random(seed)
    labels = {u: s.label.strip() for u, s in esco.skills.items()}
    pairs: list[TitlePair] = []
    for occ_uri, occ in esco.occupations.items():
        rel = esco.occupation_skills.get(occ_uri, {})
        essential = [u for u, kind in rel.items() if kind == "essential" and u in labels]
        optional = [u for u, kind in rel.items() if kind != "essential" and u in labels]
        if not essential and not optional:
            continue
        for title in (occ.label, *occ.alt_labels):
            title = title.strip()
            if not title:
                continue
            picked = rng.sample(essential, min(len(essential), max_skills))
            if len(picked) < max_skills and optional:
                picked += rng.sample(optional, min(len(optional), max_skills - len(picked)))
            rng.shuffle(picked)
            pairs.append(TitlePair(title, ", ".join(labels[u] for u in picked), occ_uri))
    return pairs


@dataclass(frozen=True)
class TitleTriple:
    """One row of the title-pair objective: a title, another title of the same occupation, and a title of a
    different occupation in the same ISCO group (``negative``, None when the group has no other occupation)."""

    anchor: str
    positive: str
    negative: str | None
    occupation: str


def occupation_titles(esco: Esco) -> dict[str, list[str]]:
    """Each occupation's titles, preferred label first, stripped, without case-insensitive repeats."""
    out: dict[str, list[str]] = {}
    for uri, occ in esco.occupations.items():
        titles: list[str] = []
        seen: set[str] = set()
        for t in (occ.label, *occ.alt_labels):
            t = t.strip()
            if t and t.casefold() not in seen:
                seen.add(t.casefold())
                titles.append(t)
        out[uri] = titles
    return out


def title_triples(esco: Esco, rng: random.Random, hard_negatives: bool = True,
                  titles: Mapping[str, Sequence[str]] | None = None) -> list[TitleTriple]:
    """One pass over ESCO's titles, shuffled: every title of an occupation with two or more, paired with its
    preferred label (half the time, for an alternative label) or another of its titles, plus a hard negative
    from a sibling occupation (same 4-digit ISCO group): titles that look alike and mean another job."""
    titles = titles if titles is not None else occupation_titles(esco)
    by_group: dict[str, list[str]] = {}
    for uri, occ in esco.occupations.items():
        by_group.setdefault(occ.isco_group, []).append(uri)
    rows: list[TitleTriple] = []
    for uri, ts in titles.items():
        for i, t in enumerate(ts):
            others = [x for j, x in enumerate(ts) if j != i]
            if not others:
                continue
            positive = ts[0] if (i != 0 and rng.random() < 0.5) else rng.choice(others)
            negative = None
            if hard_negatives:
                siblings = [v for v in by_group.get(esco.occupations[uri].isco_group, []) if v != uri]
                if siblings:
                    negative = rng.choice(list(titles[rng.choice(siblings)]))
            rows.append(TitleTriple(t, positive, negative, uri))
    rng.shuffle(rows)
    return rows
