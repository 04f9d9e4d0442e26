"""Benchmarks: metrics, evaluation of a live index, and threshold calibration.

Definitions (WorkRB's, so figures compare):

- RP@K = hits in the top K / min(K, number of gold skills); MRR = mean of 1 / rank of the first gold skill.
  Both over sentences that have gold skills, ranking *every* indexed skill by the exact ConTeXT score.
- Precision / recall / F1: micro averages over all sentences of what ``extract`` returns (candidate stage,
  threshold, redundancy filter); a sentence with no gold skill contributes its false positives.
- Redundancy rate: the share of predicted skills that are redundant with another prediction for the same
  sentence. Prediction p is redundant when another prediction q of that sentence (1) is a narrower ESCO skill
  of p (p is an ancestor of q through skill-to-skill ``broader`` relations, transitively), or (2) has the same
  label after normalisation (case-folded, punctuation removed, a final "s" dropped from each word), or
  (3) has a near-identical label: word-set Jaccard similarity >= 0.75 after that normalisation.
- Candidate recall: of the skills that exhaustive exact scoring puts at or above the threshold, the share
  that the candidate stage handed to the reranker (1.0 for the default lossless stage).
- Titles: accuracy@K = gold occupation among the top K occupations; MRR over the top 100 (0 beyond).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable, Iterator, Mapping, Sequence

from jobskills.errors import InputError
from jobskills.fileio import file_sha256
from retriever.skills import SkillVectors

if TYPE_CHECKING:
    from retriever.pipeline import Retriever

__all__ = [
    "ExtractionExample", "TitleExample", "bench_kind", "file_sha256", "load_extraction_bench", "load_title_bench",
    "rp_at_k", "reciprocal_rank", "micro_prf", "redundant", "ranking_metrics", "threshold_sweep",
    "evaluate_extraction", "evaluate_titles", "best_threshold", "OfflineRanker", "SkillVectors",
]

logger = logging.getLogger(__name__)

TITLE_RANK_DEPTH = 100


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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 (byte {exc.start})") from None
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
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


# ------------------------------------------------------------------------------------- evaluation
class OfflineRanker:
    """What the ranking metrics and the threshold sweep read from a :class:`Retriever`, built straight from an
    encoder and the taxonomy's skill labels, with no index: the trainer scores checkpoints with it, and the
    threshold of a new model is calibrated before its index exists. Same vectors as the indexer stores."""

    def __init__(self, encoder: Any, skills: Sequence[tuple[str, Mapping[str, Any]]], score_config: Any, batch_size: int = 128) -> None:
        import torch

        from jobskills.config import Settings

        self.encoder = encoder
        self.score_config = score_config
        self.settings = Settings(batch_size=batch_size)
        texts = [t for t, _ in skills]
        matrix = torch.empty(len(texts), encoder.dim)
        for idx, enc in encoder.iter_encode(texts, batch_size=batch_size):
            matrix[torch.tensor(idx)] = enc.pooled.cpu()
        self.skills = SkillVectors(matrix, [dict(p) for _, p in skills])


def _score_batches(r: "Retriever", texts: Sequence[str]):
    from jobskills.scoring import score_all

    bs = r.settings.batch_size
    for start in range(0, len(texts), bs):
        enc = r.encoder.encode(list(texts[start : start + bs]))
        yield start, enc, score_all(enc.tokens, enc.mask, r.skills.matrix, r.score_config)


def ranking_metrics(r: "Retriever", examples: Sequence[ExtractionExample], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """RP@K and MRR over the sentences that have gold skills, ranking every indexed skill exactly."""
    return _exhaustive_pass(r, examples, ks, threshold=None)[0]


def _exhaustive_pass(
    r: "Retriever", examples: Sequence[ExtractionExample], ks: Sequence[int], threshold: float | None
) -> tuple[dict[str, float], list[list[str]], list[set[str]]]:
    """One exact pass over all skills: ranking metrics, each sentence's top-10, its above-threshold set."""
    import torch

    uris = r.skills.uris
    sums = {f"rp@{k}": 0.0 for k in ks} | {"mrr": 0.0}
    n = 0
    top10: list[list[str]] = []
    above: list[set[str]] = []
    for start, _, row_scores in _score_batches(r, [e.text for e in examples]):
        scores = r.skills.by_skill(row_scores)[0]
        top = torch.topk(scores, min(max(max(ks), 10), scores.shape[1]), dim=1).indices
        for i in range(scores.shape[0]):
            e = examples[start + i]
            ranked = [uris[int(j)] for j in top[i]]
            top10.append(ranked[:10])
            if threshold is not None:
                above.append({uris[int(j)] for j in torch.nonzero(scores[i] >= threshold).flatten()})
            if not e.skills:
                continue
            for k in ks:
                sums[f"rp@{k}"] += rp_at_k(ranked, e.skills, k)
            gold_rows = torch.tensor([r.skills.skill_of_uri[u] for u in e.skills if u in r.skills.skill_of_uri])
            if len(gold_rows):  # rank of the best gold skill = 1 + skills scoring strictly higher
                sums["mrr"] += 1.0 / (1 + int((scores[i] > scores[i][gold_rows].max()).sum()))
            n += 1
    metrics = {k: v / n for k, v in sums.items()} if n else {k: 0.0 for k in sums}
    metrics["n_ranked"] = n
    return metrics, top10, above


def threshold_sweep(
    r: "Retriever", examples: Sequence[ExtractionExample], thresholds: Sequence[float], redundancy: bool = True
) -> list[dict[str, Any]]:
    """Micro P/R/F1 at each threshold, with the redundancy filter applied exactly as ``extract`` applies it."""
    import torch

    from jobskills.scoring import redundancy_keep

    uris = r.skills.uris
    lo = min(thresholds)
    preds: list[list[set[str]]] = [[] for _ in thresholds]
    for _, enc, row_scores in _score_batches(r, [e.text for e in examples]):
        scores, best_row = r.skills.by_skill(row_scores)
        for i in range(len(enc)):
            cand = torch.nonzero(scores[i] >= lo).flatten()
            cand_scores = scores[i][cand]
            toks = enc.token_rows(i)
            real = torch.ones(toks.shape[0], dtype=torch.bool)
            for ti, t in enumerate(thresholds):
                sel = cand[cand_scores >= t]
                if redundancy and len(sel) > 1:
                    sel = sel[redundancy_keep(toks, real, r.skills.matrix[best_row[i][sel]])]
                preds[ti].append({uris[int(j)] for j in sel})
    golds = [e.skills for e in examples]
    return [{"threshold": round(float(t), 4), **micro_prf(p, golds)} for t, p in zip(thresholds, preds)]


def best_threshold(curve: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Highest F1; among equal F1 the highest threshold (fewer false positives for the same F1)."""
    return max(curve, key=lambda d: (round(d["f1"], 9), d["threshold"]))


def evaluate_extraction(
    r: "Retriever", examples: Sequence[ExtractionExample], dump: Path | None = None, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, Any]:
    """Ranking metrics (exact, all skills), extraction P/R/F1 through the real ``extract`` path, redundancy
    rate, candidate recall against exhaustive scoring, and speed."""
    from jobskills.esco import load_esco

    t = r.threshold
    ranking, top10, above = _exhaustive_pass(r, examples, ks, threshold=t)
    started = time.perf_counter()
    results = r.extract_sentences([e.text for e in examples], threshold=t, redundancy=True)
    seconds = time.perf_counter() - started
    # what the candidate stage saw, and what it would have returned with the filter off
    unfiltered = r.extract_sentences([e.text for e in examples], threshold=t, redundancy=False, evidence_words=0)
    found = sum(len({m.uri for m in res.skills} & a) for res, a in zip(unfiltered, above))
    total_above = sum(map(len, above))
    preds = [[m.uri for m in res.skills] for res in results]
    esco = load_esco()
    labels = {p["uri"]: p.get("label", "") for p in r.skills.payloads}
    ancestors = skill_ancestors(esco.broader)
    n_pred = sum(map(len, preds))
    n_redundant = sum(len(redundant(p, labels, ancestors)) for p in preds)
    report: dict[str, Any] = {
        "kind": "extraction",
        "sentences": len(examples),
        "sentences_with_gold": ranking["n_ranked"],
        "gold_links": sum(len(e.skills) for e in examples),
        "ranking": {k: v for k, v in ranking.items() if k != "n_ranked"},
        "ranking_method": f"exact ConTeXT over all {len(r.skills)} indexed skills"
                          + (f" (best of {r.skills.n_rows} label points)" if r.skills.expanded else ""),
        "threshold": t,
        "extraction": micro_prf(preds, [e.skills for e in examples]),
        "predicted": n_pred,
        "redundancy_rate": n_redundant / n_pred if n_pred else 0.0,
        "candidate_recall": found / total_above if total_above else 1.0,
        "candidates_per_sentence": sum(res.candidates for res in unfiltered) / len(examples),
        "sentences_per_s": len(examples) / seconds if seconds else 0.0,
    }
    if dump is not None:
        lines = []
        for e, res, top in zip(examples, results, top10):
            lines.append(json.dumps({
                "line": e.line, "text": e.text, "gold": list(e.skills),
                "predicted": [{"uri": m.uri, "label": m.label, "score": m.score} for m in res.skills],
                "top10": top, "hits": [m.uri for m in res.skills if m.uri in e.skills],
                "missed": [u for u in e.skills if u not in {m.uri for m in res.skills}],
            }, ensure_ascii=False))
        _write_atomic(dump, "\n".join(lines) + "\n")
    return report


def evaluate_titles(r: "Retriever", examples: Sequence[TitleExample], method: str | None = None) -> dict[str, Any]:
    """Accuracy@1/5/10 and MRR of the gold occupation in ``titles()``'s ranking (``method``: the default one
    when None)."""
    from retriever.pipeline import DEFAULT_TITLE_METHOD, HYBRID

    method = method or DEFAULT_TITLE_METHOD
    hits = {1: 0, 5: 0, 10: 0}
    rr = 0.0
    started = time.perf_counter()
    for e in examples:
        ranked = [m.occupation_uri for m in r.titles(e.title, k=TITLE_RANK_DEPTH, method=method)]
        rr += reciprocal_rank(ranked, {e.occupation})
        for k in hits:
            hits[k] += e.occupation in ranked[:k]
    seconds = time.perf_counter() - started
    n = len(examples)
    return {
        "kind": "titles",
        "titles": n,
        "method": method,
        "fusion": ({"sources": list(HYBRID.sources), "fusion": HYBRID.fusion.method, "k": HYBRID.fusion.k,
                    "weights": list(HYBRID.fusion.weights) if HYBRID.fusion.weights else None, "prefetch": max(HYBRID.prefetch, max(50, 10 * TITLE_RANK_DEPTH) // 5)}
                   if method == "hybrid" else None),
        "mrr": rr / n,
        **{f"acc@{k}": v / n for k, v in hits.items()},
        "titles_per_s": n / seconds if seconds else 0.0,
    }


def _write_atomic(path: Path, text: str) -> None:
    from jobskills.fileio import atomic_write_text

    atomic_write_text(path, text)
