"""Whole job ads: ad-level skills, occupations inferred from the title and the skills, expected skills.

- Skills: one entry per skill for the whole ad (best score, how many sentences carry it, evidence per
  sentence), with its type, ESCO groups and pillar.
- Occupations: two rankings joined. From the title: the job-title index (best title per occupation). From
  the skills: ESCO's occupation-skill relations, each extracted skill voting for the occupations that list
  it, weighted by its score, by the relation (essential 1.0, optional 0.5) and by how specific the skill is
  (idf = log(number of occupations / occupations listing it)), normalised by the square root of the
  occupation's number of essential skills so that large profiles do not win by size. Each ranking is scaled
  to its best candidate (= 1) and the two are averaged (only one when there is no title).
- Expected, not mentioned: the essential skills of the top occupation that the ad does not carry.
  ESCO's relations describe an occupation in general; a gap is a prompt to check the ad, not a verdict.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from jobskills.errors import InputError
from jobskills.esco import ESCO_TAXONOMY
from retriever.contract import EVIDENCE_WORDS

if TYPE_CHECKING:
    from jobskills.esco import Esco
    from retriever.pipeline import Retriever

__all__ = ["AdSkill", "AdOccupation", "AdAnalysis", "analyse_ad", "RELATION_WEIGHT"]

RELATION_WEIGHT = {"essential": 1.0, "optional": 0.5}

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class AdSkill:
    uri: str
    label: str
    skill_type: str
    score: float
    sentences: int
    pillar: str
    groups: list[str]
    evidence: list[dict[str, Any]] = field(default_factory=list)  # per sentence: index, text, words


@dataclass
class AdOccupation:
    uri: str
    label: str
    isco_group: str
    score: float
    title_score: float | None
    skills_score: float | None
    matched_title: str | None
    shared_essential: list[str]
    matched_origin: str | None = None  # "esco" or "example" (an example vacancy title), as in TitleMatch


@dataclass
class AdAnalysis:
    title: str | None
    sentences: int
    skills: list[AdSkill]
    occupations: list[AdOccupation]
    expected_missing: list[dict[str, str]]
    provenance: dict[str, Any]
    sentence_spans: list[dict[str, Any]] = field(default_factory=list)  # text, start, end of each sentence

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        by_pillar: dict[str, list[str]] = {}
        for s in self.skills:
            by_pillar.setdefault(s.pillar, []).append(s.uri)
        out["skills_by_pillar"] = by_pillar
        return out


def _pillar(esco: "Esco", uri: str, skill_type: str) -> str:
    """ESCO's pillar for display: language, transversal (reuse level), knowledge, or skills/competences."""
    if "language skills and knowledge" in esco.pillars.get(uri, ()):
        return "language skills and knowledge"
    skill = esco.skills.get(uri)
    if skill is not None and skill.reuse_level == "transversal":
        return "transversal skills and competences"
    return "knowledge" if skill_type == "knowledge" else "skills/competences"


def _skill_idf(esco: "Esco") -> dict[str, float]:
    n = max(1, len(esco.occupation_skills))
    df: dict[str, int] = {}
    for skills in esco.occupation_skills.values():
        for u in skills:
            df[u] = df.get(u, 0) + 1
    return {u: math.log(n / c) for u, c in df.items()}


#: sentences per extraction call when progress is reported: small enough for a steady bar, large enough to
#: fill the encoder's batches
PROGRESS_CHUNK = 256


def analyse_ad(
    r: "Retriever", text: str, title: str | None = None, k: int = 5, threshold: float | None = None,
    title_method: str = "maxsim", esco: "Esco | None" = None, progress: Progress | None = None,
) -> AdAnalysis:
    """Analyse one ad (``text``) with an optional job ``title``; ``progress("sentences", done, total)`` is
    called as the sentences go through (a 1 MB ad has thousands: minutes on a CPU)."""
    return analyse_many(r, [text], [title], k, threshold, title_method, esco, progress=progress)[0]


def analyse_many(
    r: "Retriever", texts: list[str], titles: list[str | None], k: int = 5, threshold: float | None = None,
    title_method: str = "maxsim", esco: "Esco | None" = None, spans: Any = None, progress: Progress | None = None,
) -> list[AdAnalysis]:
    """Several ads at once: their sentences share encoder batches (``spans`` as in ``extract_many``)."""
    from jobskills.esco import load_esco

    if r.taxonomy != ESCO_TAXONOMY:
        raise InputError(f"ad analysis needs ESCO's occupation-skill relations: use the built-in {ESCO_TAXONOMY} taxonomy")
    esco = esco or load_esco()
    if progress is None:
        per_ad = r.extract_many(texts, threshold=threshold, evidence_words=EVIDENCE_WORDS, spans=spans)
    else:
        per_ad = _extract_reporting(r, texts, threshold, spans, progress)
    return [_analyse(r, esco, sentences, title, k, title_method) for sentences, title in zip(per_ad, titles)]


def _extract_reporting(r: "Retriever", texts: list[str], threshold: float | None, spans: Any, progress: Progress) -> list[list[Any]]:
    """``extract_many`` in chunks of sentences, reporting after each (each sentence is scored on its own, so the
    chunks give the same results)."""
    spans = [list(s) for s in spans] if spans is not None else [r.split(t) for t in texts]
    total = sum(map(len, spans))
    logger.info("analysing %d sentences in %d ad(s)", total, len(texts))
    done = 0
    progress("sentences", 0, total)
    out: list[list[Any]] = []
    for text, ad_spans in zip(texts, spans):
        sentences: list[Any] = []
        for i in range(0, len(ad_spans), PROGRESS_CHUNK):
            sentences += r.extract_many([text], threshold=threshold, evidence_words=EVIDENCE_WORDS, spans=[ad_spans[i : i + PROGRESS_CHUNK]])[0]
            done += min(PROGRESS_CHUNK, len(ad_spans) - i)
            progress("sentences", done, total)
        out.append(sentences)
    return out


_INDEX: dict[int, tuple[dict[str, float], dict[str, list[tuple[str, str]]], dict[str, int]]] = {}


def _relations_index(esco: "Esco") -> tuple[dict[str, float], dict[str, list[tuple[str, str]]], dict[str, int]]:
    """(skill idf, skill -> [(occupation, relation)], occupation -> number of essential skills), built once."""
    if id(esco) not in _INDEX:
        by_skill: dict[str, list[tuple[str, str]]] = {}
        n_essential: dict[str, int] = {}
        for occ, rel in esco.occupation_skills.items():
            for u, kind in rel.items():
                by_skill.setdefault(u, []).append((occ, kind))
            n_essential[occ] = sum(1 for v in rel.values() if v == "essential")
        _INDEX[id(esco)] = (_skill_idf(esco), by_skill, n_essential)
    return _INDEX[id(esco)]


def _analyse(r: "Retriever", esco: "Esco", sentences: list, title: str | None, k: int, title_method: str) -> AdAnalysis:
    merged: dict[str, AdSkill] = {}
    for i, sent in enumerate(sentences):
        for m in sent.skills:
            entry = merged.get(m.uri)
            if entry is None:
                skill = esco.skills.get(m.uri)
                entry = merged[m.uri] = AdSkill(
                    uri=m.uri, label=m.label, skill_type=m.skill_type, score=m.score, sentences=0,
                    pillar=_pillar(esco, m.uri, m.skill_type), groups=[g.label for g in skill.level2] if skill else [],
                )
            entry.score = max(entry.score, m.score)
            entry.sentences += 1
            entry.evidence.append({"sentence": i, "text": sent.text, "start": sent.start, "end": sent.end,
                                   "score": m.score, "words": [asdict(e) for e in m.evidence]})
    skills = sorted(merged.values(), key=lambda s: -s.score)

    # occupations from the skills: each skill votes through an inverted index of ESCO's relations
    idf, by_skill, n_essential = _relations_index(esco)
    totals: dict[str, float] = {}
    for s in skills:
        for occ, kind in by_skill.get(s.uri, ()):
            totals[occ] = totals.get(occ, 0.0) + s.score * RELATION_WEIGHT[kind] * idf.get(s.uri, 0.0)
    skill_votes = {occ: t / math.sqrt(n_essential.get(occ, 0) + 1) for occ, t in totals.items() if t > 0}
    # occupations from the title
    title_votes: dict[str, tuple[float, str, str]] = {}
    if title and title.strip():
        for m in r.titles(title, k=50, method=title_method):
            title_votes[m.occupation_uri] = (m.score, m.matched_title, m.matched_origin)

    def scaled(values: dict[str, float]) -> dict[str, float]:
        top = max(values.values(), default=0.0)
        return {u: v / top for u, v in values.items()} if top > 0 else {}

    s_scaled = scaled(skill_votes)
    t_scaled = scaled({u: v[0] for u, v in title_votes.items()})
    parts = [p for p in (s_scaled, t_scaled) if p]
    combined: dict[str, float] = {}
    for u in set(s_scaled) | set(t_scaled):
        combined[u] = sum(p.get(u, 0.0) for p in parts) / max(1, len(parts))
    ad_uris = {s.uri for s in skills}
    occupations = []
    for u, score in sorted(combined.items(), key=lambda kv: -kv[1])[:k]:
        occ = esco.occupations[u]
        rel = esco.occupation_skills.get(u, {})
        occupations.append(AdOccupation(
            uri=u, label=occ.label, isco_group=occ.isco_group, score=round(score, 6),
            title_score=round(title_votes[u][0], 6) if u in title_votes else None,
            skills_score=round(skill_votes[u], 6) if u in skill_votes else None,
            matched_title=title_votes[u][1] if u in title_votes else None,
            shared_essential=[esco.skills[s].label for s in rel if rel[s] == "essential" and s in ad_uris],
            matched_origin=title_votes[u][2] if u in title_votes else None,
        ))
    missing: list[dict[str, str]] = []
    if occupations:
        rel = esco.occupation_skills.get(occupations[0].uri, {})
        missing = [{"uri": s, "label": esco.skills[s].label, "skill_type": esco.skills[s].skill_type}
                   for s, kind in rel.items() if kind == "essential" and s not in ad_uris and s in esco.skills]
    return AdAnalysis(title=title, sentences=len(sentences), skills=skills, occupations=occupations,
                      expected_missing=missing, provenance=r.provenance(),
                      sentence_spans=[{"text": s.text, "start": s.start, "end": s.end} for s in sentences])


def analyse_corpus(
    r: "Retriever", src: Any, out: Any, text_field: str = "text", title_field: str | None = None,
    id_field: str | None = None, k: int = 5, threshold: float | None = None,
    progress: Any = None, summary: Any = None,
) -> dict[str, Any]:
    """Corpus mode: one analysis per JSONL line, streamed and resumable (see :mod:`retriever.corpus`)."""
    from jobskills.esco import load_esco
    from retriever.corpus import run_corpus

    esco = load_esco()

    def handler(texts: list[str], titles: list[str | None], spans: list) -> list[dict[str, Any]]:
        results = analyse_many(r, texts, titles, k, threshold, esco=esco, spans=spans)
        return [{**a.to_dict(), "_n": a.sentences} for a in results]

    stats = run_corpus(r, src, out, handler, text_field, id_field, title_field, progress=progress)
    if summary is not None:
        stats["summary"] = write_summary(out, summary)
    return stats


def write_summary(results: Any, path: Any) -> dict[str, Any]:
    """Skill x occupation counts over a results file (each ad's top occupation x each of its skills), as a
    CSV a spreadsheet opens: occupation_uri, occupation_label, skill_uri, skill_label, ads. Read from the
    results file, so it is complete after a resumed run too."""
    import csv
    import io
    import json
    from pathlib import Path

    from jobskills.fileio import atomic_write_text

    counts: dict[tuple[str, str], int] = {}
    labels: dict[str, str] = {}
    ads = 0
    with open(results, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            occs = row.get("occupations") or []
            if not occs:
                continue
            ads += 1
            top = occs[0]
            labels[top["uri"]] = top["label"]
            for s in row.get("skills", []):
                labels[s["uri"]] = s["label"]
                counts[(top["uri"], s["uri"])] = counts.get((top["uri"], s["uri"]), 0) + 1
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["occupation_uri", "occupation_label", "skill_uri", "skill_label", "ads"])
    for (o, s_), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        w.writerow([o, labels[o], s_, labels[s_], n])
    atomic_write_text(Path(path), buf.getvalue())
    return {"path": str(path), "pairs": len(counts), "ads": ads}


def analyse_extracted(
    r: "Retriever", sentences: list, title: str | None = None, k: int = 5, title_method: str = "maxsim",
    esco: "Esco | None" = None,
) -> AdAnalysis:
    """The analysis of one ad whose sentences were already extracted (the API extracts them through its fair
    batcher, so a long ad does not hold the model alone)."""
    from jobskills.esco import load_esco

    if r.taxonomy != ESCO_TAXONOMY:
        raise InputError(f"ad analysis needs ESCO's occupation-skill relations: use the built-in {ESCO_TAXONOMY} taxonomy")
    return _analyse(r, esco or load_esco(), sentences, title, k, title_method)
