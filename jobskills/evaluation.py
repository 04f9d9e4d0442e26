"""Evaluation: benchmark files, metrics, threshold sweeps and reports, over anything that ranks sentences
against skills (a :class:`Ranker`).

Two rankers satisfy the protocol: the live index (``retriever.evaluate.RetrieverRanker`` wraps a
``Retriever``) and the in-memory ranker the trainer scores its checkpoints with
(:class:`indexer.ranker.SkillRanker`). Both score through :mod:`jobskills.scoring`, so a figure means the same
whichever one produced it. This module imports no torch until a ranking runs.

Definitions (WorkRB's, so figures compare):

- RP@K = hits in the top K / min(K, number of gold skills); MRR = mean of 1 / rank of the first gold skill.
  Both over sentences that have gold skills, ranking *every* skill by the exact ConTeXT score.
- Precision / recall / F1: micro averages over all sentences of what ``extract`` returns (candidate stage,
  threshold, redundancy filter); a sentence with no gold skill contributes its false positives.
- Redundancy rate: the share of predicted skills that are redundant with another prediction for the same
  sentence. Prediction p is redundant when another prediction q of that sentence (1) is a narrower ESCO skill
  of p (p is an ancestor of q through skill-to-skill ``broader`` relations, transitively), or (2) has the same
  label after normalisation (case-folded, punctuation removed, a final "s" dropped from each word), or
  (3) has a near-identical label: word-set Jaccard similarity >= 0.75 after that normalisation.
- Candidate recall: of the skills that exhaustive exact scoring puts at or above the threshold, the share
  that the candidate stage handed to the reranker (1.0 for the default lossless stage).
- Titles: accuracy@K = gold occupation among the top K occupations; MRR over the top
  :data:`TITLE_RANK_DEPTH` (0 beyond).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from jobskills.errors import InputError
from jobskills.threshold import SWEEP, sweep_values

if TYPE_CHECKING:
    import torch

    from jobskills.encoder import Encoded, Encoder
    from jobskills.lexical import LabelLexicon
    from jobskills.scoring import ScoreConfig

__all__ = [
    "ExtractionExample", "TitleExample", "bench_kind", "even_sample", "load_extraction_bench", "load_title_bench",
    "rp_at_k", "reciprocal_rank", "micro_prf", "redundant", "skill_ancestors",
    "ScoredBatch", "Ranker", "exact_batches", "ranking_pass", "ranking_metrics", "threshold_sweep", "best_threshold",
    "calibration_curve", "extraction_report", "dump_lines", "title_metrics", "TITLE_RANK_DEPTH",
]

logger = logging.getLogger(__name__)

#: How deep a title benchmark looks into each ranking (MRR counts 0 beyond).
TITLE_RANK_DEPTH = 100


# ------------------------------------------------------------------------------------ benchmark files
@dataclass(frozen=True)
class ExtractionExample:
    text: str
    skills: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class TitleExample:
    title: str
    occupation: str
    line: int


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Numbered JSON objects of a JSONL file (plain, or gzip when the name ends in ``.gz``)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 (byte {exc.start})") from None
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except (OSError, EOFError) as exc:  # a damaged .gz
        raise InputError(f"cannot read {path}: {exc}") from None
    found = False
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{no}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{no}: expected a JSON object")
        found = True
        yield no, row
    if not found:
        raise InputError(f"{path} is empty: no benchmark lines")


def bench_kind(path: str | Path) -> str:
    """``extraction`` ({"text", "skills"}) or ``titles`` ({"title", "occupation"}), from the first line."""
    for no, row in _json_lines(Path(path)):
        if "text" in row and "skills" in row:
            return "extraction"
        if "title" in row and "occupation" in row:
            return "titles"
        raise InputError(
            f'{path}:{no}: unknown benchmark format: expected {{"text", "skills"}} (skill extraction) '
            f'or {{"title", "occupation"}} (title normalisation), got keys {sorted(row)}'
        )
    raise InputError(f"{path} is empty")  # pragma: no cover - _json_lines raises first


def load_extraction_bench(path: str | Path, known_uris: Collection[str] | None = None) -> list[ExtractionExample]:
    """Read ``{"text": ..., "skills": [URI, ...]}`` lines; any problem is an error naming the line."""
    path = Path(path)
    out = []
    for no, row in _json_lines(path):
        if not isinstance(row.get("text"), str) or not isinstance(row.get("skills"), list):
            raise InputError(f'{path}:{no}: expected {{"text": str, "skills": [ESCO skill URIs]}}')
        if not row["text"].strip():
            raise InputError(f"{path}:{no}: empty text")
        if not all(isinstance(u, str) for u in row["skills"]):
            raise InputError(f"{path}:{no}: skills must be URI strings")
        if known_uris is not None:
            unknown = [u for u in row["skills"] if u not in known_uris]
            if unknown:
                raise InputError(f"{path}:{no}: unknown skill URI {unknown[0]} (not in the index)")
        out.append(ExtractionExample(row["text"], tuple(dict.fromkeys(row["skills"])), no))
    return out


def even_sample(rows: Sequence[Any], n: int | None) -> list[Any]:
    """``n`` rows spread evenly over ``rows`` (row ``int(i * len / n)`` for i < n), all of them when ``n`` is None
    or not smaller: ``eval --sample``'s rule, and the rule that kept the evaluated titles out of the packaged
    example titles (:mod:`jobskills.title_examples`)."""
    if n is None or n >= len(rows):
        return list(rows)
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def load_title_bench(path: str | Path, known_occupations: Collection[str] | None = None) -> list[TitleExample]:
    """Read ``{"title": ..., "occupation": URI}`` lines; any problem is an error naming the line."""
    path = Path(path)
    out = []
    for no, row in _json_lines(path):
        title, occ = row.get("title"), row.get("occupation")
        if not isinstance(title, str) or not isinstance(occ, str):
            raise InputError(f'{path}:{no}: expected {{"title": str, "occupation": ESCO occupation URI}}')
        if not title.strip():
            raise InputError(f"{path}:{no}: empty title")
        if known_occupations is not None and occ not in known_occupations:
            raise InputError(f"{path}:{no}: unknown occupation URI {occ}")
        out.append(TitleExample(title, occ, no))
    return out


# ------------------------------------------------------------------------------------------ metrics
def rp_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """Hits in the top ``k`` over ``min(k, len(gold))``.

    >>> rp_at_k(["a", "b", "c"], {"b", "z"}, 1), rp_at_k(["a", "b", "c"], {"b", "z"}, 5)
    (0.0, 0.5)
    """
    return sum(1 for u in ranked[:k] if u in gold) / min(k, len(gold))


def reciprocal_rank(ranked: Sequence[str], gold: Collection[str]) -> float:
    """1 / rank of the first gold item (0 when none is ranked).

    >>> reciprocal_rank(["a", "b", "c"], {"c"})
    0.3333333333333333
    """
    for i, u in enumerate(ranked, 1):
        if u in gold:
            return 1.0 / i
    return 0.0


def micro_prf(pred: Iterable[Collection[str]], gold: Iterable[Collection[str]]) -> dict[str, float]:
    """Micro precision / recall / F1 over sentences.

    >>> micro_prf([{"a", "b"}, set()], [{"a"}, {"c"}])
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'tp': 1, 'fp': 1, 'fn': 1}
    """
    tp = fp = fn = 0
    for p, g in zip(pred, gold):
        tp += len(set(p) & set(g))
        fp += len(set(p) - set(g))
        fn += len(set(g) - set(p))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def _label_words(label: str) -> frozenset[str]:
    words = re.sub(r"[^\w\s]", " ", label.casefold()).split()
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)


def redundant(predicted: Sequence[str], labels: Mapping[str, str], ancestors: Mapping[str, frozenset[str]]) -> set[str]:
    """The predictions that are redundant with another prediction of the same sentence (module docstring).

    >>> labels = {"a": "use Python", "b": "Python", "c": "uses python.", "d": "cook"}
    >>> sorted(redundant(["a", "b", "c", "d"], labels, {"a": frozenset({"b"})}))
    ['a', 'b', 'c']
    """
    out: set[str] = set()
    words = {u: _label_words(labels.get(u, "")) for u in predicted}
    for p in predicted:
        for q in predicted:
            if p == q:
                continue
            if p in ancestors.get(q, ()):  # p is broader than q
                out.add(p)
                break
            wp, wq = words[p], words[q]
            if wp and wq and (wp == wq or len(wp & wq) / len(wp | wq) >= 0.75):
                out.add(p)
                break
    return out


def skill_ancestors(broader: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    """Everything reachable upward through one or more ``broader`` steps (breadth-first; cycles tolerated)."""
    out: dict[str, frozenset[str]] = {}
    for start in broader:
        seen: set[str] = set()
        frontier = list(broader[start])
        while frontier:
            frontier = [b for b in frontier if b not in seen]
            seen.update(frontier)
            frontier = [up for b in frontier for up in broader.get(b, ())]
        out[start] = frozenset(seen)
    return out


# ------------------------------------------------------------------------------------ the ranker
@dataclass(frozen=True)
class ScoredBatch:
    """A batch of sentences scored exactly against every skill.

    Attributes:
        start: the index of the batch's first sentence in the texts handed to :meth:`Ranker.score_batches`.
        encoded: the sentences' token vectors (the redundancy filter reads them).
        scores: ``(n, n_skills)`` each skill's exact ConTeXT score (its best label's), columns in
            :attr:`Ranker.uris` order.
        best_row: ``(n, n_skills)`` the label row that gave each score.
        matrix: ``(n_rows, dim)`` the label vectors ``best_row`` indexes.
    """

    start: int
    encoded: "Encoded"
    scores: "torch.Tensor"
    best_row: "torch.Tensor"
    matrix: "torch.Tensor"

    def label_vectors(self, i: int, columns: "torch.Tensor") -> "torch.Tensor":
        """Sentence ``i``'s best label vector of each skill in ``columns`` (what ``extract``'s filter compares)."""
        return self.matrix[self.best_row[i][columns]]


@runtime_checkable
class Ranker(Protocol):
    """What evaluation needs from anything that ranks sentences against skills: which skill each score column
    is, and the exact scores of sentences, in batches."""

    @property
    def uris(self) -> Sequence[str]:
        """Per skill (score column), its URI."""
        ...

    def score_batches(self, texts: Sequence[str]) -> Iterator[ScoredBatch]:
        """Every text scored against every skill, in order, a batch at a time."""
        ...


def exact_batches(
    encoder: "Encoder", texts: Sequence[str], matrix: "torch.Tensor", score_config: "ScoreConfig", batch_size: int,
    by_skill: Callable[[Any], tuple[Any, Any]], lexicon: "LabelLexicon | None" = None,
) -> Iterator[ScoredBatch]:
    """The one way a ranker scores: encode ``batch_size`` texts, score them against every label row with
    :func:`jobskills.scoring.score_all`, group rows into skills with ``by_skill`` (best label), and add the
    lexical evidence (:func:`jobskills.scoring.fuse`) where the scorer weighs it and a ``lexicon`` is given."""
    from jobskills.scoring import fuse, score_all

    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        enc = encoder.encode(batch)
        scores, best_row = by_skill(score_all(enc.tokens, enc.mask, matrix, score_config))
        if lexicon is not None and score_config.lexical:
            scores = fuse(scores, lexicon.coverage(batch), score_config)
        yield ScoredBatch(start, enc, scores, best_row, matrix)


# ------------------------------------------------------------------------------------- evaluation
def ranking_pass(
    ranker: Ranker, examples: Sequence[ExtractionExample], ks: Sequence[int] = (1, 5, 10), threshold: float | None = None
) -> tuple[dict[str, float], list[list[str]], list[set[str]]]:
    """One exact pass over all skills: ranking metrics (RP@K, MRR, ``n_ranked``), each sentence's top-10, and
    (with ``threshold``) each sentence's set of skills at or above it."""
    import torch

    uris = list(ranker.uris)
    column = {u: i for i, u in enumerate(uris)}
    sums = {f"rp@{k}": 0.0 for k in ks} | {"mrr": 0.0}
    n = 0
    top10: list[list[str]] = []
    above: list[set[str]] = []
    for batch in ranker.score_batches([e.text for e in examples]):
        scores = batch.scores
        top = torch.topk(scores, min(max(max(ks), 10), scores.shape[1]), dim=1).indices
        for i in range(scores.shape[0]):
            e = examples[batch.start + i]
            ranked = [uris[int(j)] for j in top[i]]
            top10.append(ranked[:10])
            if threshold is not None:
                above.append({uris[int(j)] for j in torch.nonzero(scores[i] >= threshold).flatten()})
            if not e.skills:
                continue
            for k in ks:
                sums[f"rp@{k}"] += rp_at_k(ranked, e.skills, k)
            gold_cols = torch.tensor([column[u] for u in e.skills if u in column])
            if len(gold_cols):  # rank of the best gold skill = 1 + skills scoring strictly higher
                sums["mrr"] += 1.0 / (1 + int((scores[i] > scores[i][gold_cols].max()).sum()))
            n += 1
    metrics = {k: v / n for k, v in sums.items()} if n else {k: 0.0 for k in sums}
    metrics["n_ranked"] = n
    return metrics, top10, above


def ranking_metrics(ranker: Ranker, examples: Sequence[ExtractionExample], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """RP@K and MRR over the sentences that have gold skills, ranking every skill exactly."""
    return ranking_pass(ranker, examples, ks)[0]


def threshold_sweep(
    ranker: Ranker, examples: Sequence[ExtractionExample], thresholds: Sequence[float], redundancy: bool = True
) -> list[dict[str, Any]]:
    """Micro P/R/F1 at each threshold, with the redundancy filter applied exactly as ``extract`` applies it."""
    import torch

    from jobskills.scoring import redundancy_keep

    uris = list(ranker.uris)
    lo = min(thresholds)
    preds: list[list[set[str]]] = [[] for _ in thresholds]
    for batch in ranker.score_batches([e.text for e in examples]):
        enc, scores = batch.encoded, batch.scores
        for i in range(len(enc)):
            cand = torch.nonzero(scores[i] >= lo).flatten()
            cand_scores = scores[i][cand]
            toks = enc.token_rows(i)
            real = torch.ones(toks.shape[0], dtype=torch.bool)
            for ti, t in enumerate(thresholds):
                sel = cand[cand_scores >= t]
                if redundancy and len(sel) > 1:
                    sel = sel[redundancy_keep(toks, real, batch.label_vectors(i, sel))]
                preds[ti].append({uris[int(j)] for j in sel})
    golds = [e.skills for e in examples]
    return [{"threshold": round(float(t), 4), **micro_prf(p, golds)} for t, p in zip(thresholds, preds)]


def best_threshold(curve: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Highest F1; among equal F1 the highest threshold (fewer false positives for the same F1)."""
    return max(curve, key=lambda d: (round(d["f1"], 9), d["threshold"]))


def calibration_curve(
    ranker: Ranker, examples: Sequence[ExtractionExample], lo: float = SWEEP[0], hi: float = SWEEP[1], step: float = SWEEP[2]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The F1 curve (redundancy filter on) over ``lo..hi`` in ``step`` and its best point: what ``calibrate``
    stores with an index and what the trainer stores with a new model."""
    if not 0 < step <= 0.5 or lo >= hi:
        raise InputError("calibration range needs lo < hi and 0 < step <= 0.5")
    if not any(e.skills for e in examples):
        raise InputError("the calibration set has no gold skills: F1 is undefined")
    curve = threshold_sweep(ranker, examples, sweep_values(lo, hi, step), redundancy=True)
    return curve, dict(best_threshold(curve))


# ------------------------------------------------------------------------------------------ reports
def extraction_report(
    examples: Sequence[ExtractionExample],
    ranking: Mapping[str, float],
    above: Sequence[set[str]],
    predicted: Sequence[Sequence[str]],
    unfiltered: Sequence[Collection[str]],
    candidates: int,
    labels: Mapping[str, str],
    ancestors: Mapping[str, frozenset[str]],
    threshold: float,
    seconds: float,
    ranking_method: str,
) -> dict[str, Any]:
    """The ``eval`` report of a skill-extraction benchmark.

    Args:
        ranking, above: :func:`ranking_pass` at ``threshold``.
        predicted: per sentence, what ``extract`` returned (filter on); ``unfiltered``: the same with the
            redundancy filter off (what the candidate stage let through); ``candidates``: their total count.
        labels, ancestors: per skill URI, its label and its broader skills (the redundancy definition).
        seconds: how long ``predicted`` took.
    """
    found = sum(len(set(u) & a) for u, a in zip(unfiltered, above))
    total_above = sum(map(len, above))
    n_pred = sum(map(len, predicted))
    n_redundant = sum(len(redundant(p, labels, ancestors)) for p in predicted)
    return {
        "kind": "extraction",
        "sentences": len(examples),
        "sentences_with_gold": ranking["n_ranked"],
        "gold_links": sum(len(e.skills) for e in examples),
        "ranking": {k: v for k, v in ranking.items() if k != "n_ranked"},
        "ranking_method": ranking_method,
        "threshold": threshold,
        "extraction": micro_prf(predicted, [e.skills for e in examples]),
        "predicted": n_pred,
        "redundancy_rate": n_redundant / n_pred if n_pred else 0.0,
        "candidate_recall": found / total_above if total_above else 1.0,
        "candidates_per_sentence": candidates / len(examples),
        "sentences_per_s": len(examples) / seconds if seconds else 0.0,
    }


def dump_lines(examples: Sequence[ExtractionExample], predicted: Sequence[Sequence[Mapping[str, Any]]],
               top10: Sequence[Sequence[str]]) -> str:
    """``eval --dump``: one JSON line per sentence: gold, predicted (``uri``, ``label``, ``score``), the exact
    top-10, hits and misses."""
    lines = []
    for e, pred, top in zip(examples, predicted, top10):
        got = [p["uri"] for p in pred]
        lines.append(json.dumps({
            "line": e.line, "text": e.text, "gold": list(e.skills), "predicted": [dict(p) for p in pred],
            "top10": list(top), "hits": [u for u in got if u in e.skills], "missed": [u for u in e.skills if u not in got],
        }, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def title_metrics(examples: Sequence[TitleExample], ranked: Sequence[Sequence[str]], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """MRR and accuracy@K of each title's gold occupation in its ranking (occupation URIs, best first)."""
    n = len(examples)
    hits = {k: 0 for k in ks}
    rr = 0.0
    for e, r in zip(examples, ranked):
        rr += reciprocal_rank(r, {e.occupation})
        for k in hits:
            hits[k] += e.occupation in r[:k]
    return {"mrr": rr / n, **{f"acc@{k}": v / n for k, v in hits.items()}}
