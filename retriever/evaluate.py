"""Metrics on JSONL benchmarks and the threshold sweep.

Definitions (WorkRB's): RP@K = hits in the top K / min(K, number of gold skills), averaged over sentences
that have gold skills; MRR = mean of 1 / rank of the first gold skill. Precision / recall / F1 are micro
averages of the thresholded, redundancy-filtered predictions over all sentences (a sentence with no gold
skill contributes its false positives). Ranking uses the exact scorer over every indexed skill.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable, Sequence

from jobskills.errors import InputError

if TYPE_CHECKING:
    from retriever.pipeline import Retriever

__all__ = ["ExtractionExample", "load_extraction_bench", "rp_at_k", "reciprocal_rank", "micro_prf", "ranking_metrics", "threshold_sweep"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractionExample:
    text: str
    skills: tuple[str, ...]
    line: int


def load_extraction_bench(path: str | Path, known_uris: Collection[str] | None = None) -> list[ExtractionExample]:
    """Read ``{"text": ..., "skills": [URI, ...]}`` lines; any problem is an error naming the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8") from exc
    out = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{no}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get("skills"), list):
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
    if not out:
        raise InputError(f"{path} holds no examples")
    return out


def rp_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """>>> rp_at_k(["a", "b", "c"], {"b", "z"}, 1), rp_at_k(["a", "b", "c"], {"b", "z"}, 5)
    (0.0, 0.5)
    """
    return sum(1 for u in ranked[:k] if u in gold) / min(k, len(gold))


def reciprocal_rank(ranked: Sequence[str], gold: Collection[str]) -> float:
    """>>> reciprocal_rank(["a", "b", "c"], {"c"})
    0.3333333333333333
    """
    for i, u in enumerate(ranked, 1):
        if u in gold:
            return 1.0 / i
    return 0.0


def micro_prf(pred: Iterable[Collection[str]], gold: Iterable[Collection[str]]) -> dict[str, float]:
    """>>> micro_prf([{"a", "b"}, set()], [{"a"}, {"c"}])
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


def _score_batches(r: "Retriever", examples: Sequence[ExtractionExample]):
    from jobskills.scoring import score_all

    bs = r.settings.batch_size
    for start in range(0, len(examples), bs):
        batch = examples[start : start + bs]
        enc = r.encoder.encode([e.text for e in batch])
        yield batch, enc, score_all(enc.tokens, enc.mask, r.skills.matrix, r.score_config)


def ranking_metrics(r: "Retriever", examples: Sequence[ExtractionExample], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """RP@K and MRR over the sentences that have gold skills, ranking every indexed skill exactly."""
    import torch

    uris = [p["uri"] for p in r.skills.payloads]
    sums = {f"rp@{k}": 0.0 for k in ks}
    sums["mrr"] = 0.0
    n = 0
    gold_ex = [e for e in examples if e.skills]
    for batch, _, scores in _score_batches(r, gold_ex):
        order = torch.argsort(scores, dim=1, descending=True)
        for e, row in zip(batch, order):
            ranked = [uris[int(j)] for j in row]
            for k in ks:
                sums[f"rp@{k}"] += rp_at_k(ranked, e.skills, k)
            sums["mrr"] += reciprocal_rank(ranked, e.skills)
            n += 1
    return {k: v / n for k, v in sums.items()} | {"n_sentences": n} if n else {"n_sentences": 0}


def threshold_sweep(
    r: "Retriever", examples: Sequence[ExtractionExample], thresholds: Sequence[float], redundancy: bool = True
) -> list[dict[str, Any]]:
    """Micro P/R/F1 at each threshold, with the redundancy filter applied as ``extract`` applies it."""
    import torch

    from jobskills.scoring import redundancy_keep

    uris = [p["uri"] for p in r.skills.payloads]
    lo = min(thresholds)
    preds: list[list[set[str]]] = [[] for _ in thresholds]
    golds: list[tuple[str, ...]] = []
    for batch, enc, scores in _score_batches(r, examples):
        for i, e in enumerate(batch):
            golds.append(e.skills)
            row = scores[i]
            cand = torch.nonzero(row >= lo).flatten()
            cand_scores = row[cand]
            toks = enc.token_rows(i)
            real = torch.ones(toks.shape[0], dtype=torch.bool)
            for ti, t in enumerate(thresholds):
                sel = cand[cand_scores >= t]
                if redundancy and len(sel) > 1:
                    sel = sel[redundancy_keep(toks, real, r.skills.matrix[sel])]
                preds[ti].append({uris[int(j)] for j in sel})
    return [{"threshold": round(float(t), 4), **micro_prf(p, golds)} for t, p in zip(thresholds, preds)]
