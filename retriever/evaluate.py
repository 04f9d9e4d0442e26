"""``jobskills eval`` and ``calibrate`` over a live index: the glue between a :class:`Retriever` and
:mod:`jobskills.evaluation`, where the loaders, metrics, sweeps and report layouts live (and are re-exported
here for older imports).

A Retriever ranks through :class:`RetrieverRanker`; what only a live index can measure stays here: the real
``extract`` path (P/R/F1, candidate recall, speed) and ``titles()`` rankings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from jobskills import evaluation as _core
from jobskills.evaluation import (
    TITLE_RANK_DEPTH, ExtractionExample, Ranker, ScoredBatch, TitleExample, bench_kind, best_threshold,
    exact_batches, load_extraction_bench, load_title_bench, micro_prf, reciprocal_rank, redundant, rp_at_k,
    skill_ancestors,
)
from jobskills.fileio import file_sha256

if TYPE_CHECKING:
    from retriever.pipeline import Retriever

__all__ = [
    "ExtractionExample", "TitleExample", "bench_kind", "file_sha256", "load_extraction_bench", "load_title_bench",
    "rp_at_k", "reciprocal_rank", "micro_prf", "redundant", "skill_ancestors", "ranking_metrics", "threshold_sweep",
    "evaluate_extraction", "evaluate_titles", "example_titles", "best_threshold", "RetrieverRanker", "as_ranker", "TITLE_RANK_DEPTH",
]


class RetrieverRanker:
    """A live index as a :class:`jobskills.evaluation.Ranker`: its skill vectors (every label point, grouped
    into skills) scored exactly against sentences its encoder encodes, ``settings.batch_size`` at a time."""

    def __init__(self, r: "Retriever") -> None:
        self.r = r

    @property
    def uris(self) -> Sequence[str]:
        return self.r.skills.uris

    def score_batches(self, texts: Sequence[str]) -> Iterator[ScoredBatch]:
        r = self.r
        return exact_batches(r.encoder, texts, r.skills.matrix, r.score_config, r.settings.batch_size, r.skills.by_skill,
                             r.lexicon)


def as_ranker(r: "Retriever | Ranker") -> Ranker:
    """A Ranker as is; a Retriever through :class:`RetrieverRanker`."""
    return r if isinstance(r, Ranker) else RetrieverRanker(r)  # type: ignore[arg-type]


def ranking_metrics(r: "Retriever | Ranker", examples: Sequence[ExtractionExample], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """:func:`jobskills.evaluation.ranking_metrics` of a live index (or any ranker)."""
    return _core.ranking_metrics(as_ranker(r), examples, ks)


def threshold_sweep(r: "Retriever | Ranker", examples: Sequence[ExtractionExample], thresholds: Sequence[float],
                    redundancy: bool = True) -> list[dict[str, Any]]:
    """:func:`jobskills.evaluation.threshold_sweep` of a live index (or any ranker)."""
    return _core.threshold_sweep(as_ranker(r), examples, thresholds, redundancy)


def evaluate_extraction(
    r: "Retriever", examples: Sequence[ExtractionExample], dump: Path | None = None, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, Any]:
    """Ranking metrics (exact, all skills), extraction P/R/F1 through the real ``extract`` path, redundancy
    rate, candidate recall against exhaustive scoring, and speed."""
    from jobskills.esco import load_esco
    from jobskills.fileio import atomic_write_text

    t = r.threshold
    ranking, top10, above = _core.ranking_pass(RetrieverRanker(r), examples, ks, threshold=t)
    texts = [e.text for e in examples]
    started = time.perf_counter()
    results = r.extract_sentences(texts, threshold=t, redundancy=True)
    seconds = time.perf_counter() - started
    # what the candidate stage saw, and what it would have returned with the filter off
    unfiltered = r.extract_sentences(texts, threshold=t, redundancy=False, evidence_words=0)
    labels = {p["uri"]: p.get("label", "") for p in r.skills.payloads}
    report = _core.extraction_report(
        examples, ranking, above,
        predicted=[[m.uri for m in res.skills] for res in results],
        unfiltered=[{m.uri for m in res.skills} for res in unfiltered],
        candidates=sum(res.candidates for res in unfiltered),
        labels=labels, ancestors=skill_ancestors(load_esco().broader), threshold=t, seconds=seconds,
        ranking_method=f"exact ConTeXT over all {len(r.skills)} indexed skills"
                       + (f" (best of {r.skills.n_rows} label points)" if r.skills.expanded else "")
                       + (f" plus {r.score_config.lexical:g} x label-word coverage" if r.score_config.lexical else ""),
    )
    if dump is not None:
        predicted = [[{"uri": m.uri, "label": m.label, "score": m.score} for m in res.skills] for res in results]
        atomic_write_text(dump, _core.dump_lines(examples, predicted, top10))
    return report


def example_titles(r: "Retriever", examples: Sequence[TitleExample]) -> list[bool]:
    """Per benchmark title: is it, case-insensitively, an example title of the titles index
    (:mod:`jobskills.title_examples`)? Such a title's figure is not held out, and ``eval`` says so."""
    from jobskills.schema import Manifest
    from jobskills.title_examples import normalise_title

    version, manifest = r.title_search.version()
    if not Manifest.from_dict(manifest).title_examples:
        return [False] * len(examples)
    texts = {str(p.get("text", "")).casefold() for _, p, _ in r.store.scroll("titles", version, with_mean=False)
             if "example" in (p.get("origins") or ())}
    return [normalise_title(e.title).casefold() in texts for e in examples]


def evaluate_titles(r: "Retriever", examples: Sequence[TitleExample], method: str | None = None) -> dict[str, Any]:
    """Accuracy@1/5/10 and MRR of the gold occupation in ``titles()``'s ranking (``method``: the default one
    when None)."""
    from dataclasses import asdict

    from retriever.pipeline import DEFAULT_TITLE_METHOD, HYBRID
    from retriever.titles import OCCUPATION_FUSION

    method = method or DEFAULT_TITLE_METHOD
    started = time.perf_counter()
    ranked = [[m.occupation_uri for m in r.titles(e.title, k=TITLE_RANK_DEPTH, method=method)] for e in examples]
    seconds = time.perf_counter() - started
    n = len(examples)
    known = example_titles(r, examples)
    held = [i for i, k in enumerate(known) if not k]
    # figures over the titles that are not example titles of the index, when some are
    apart = ({"without_example_titles": {"titles": len(held), **_core.title_metrics(
        [examples[i] for i in held], [ranked[i] for i in held])}} if len(held) < n else {})
    return {
        "kind": "titles",
        "titles": n,
        "method": method,
        "fusion": ({"sources": list(HYBRID.sources), "fusion": HYBRID.fusion.method, "k": HYBRID.fusion.k,
                    "weights": list(HYBRID.fusion.weights) if HYBRID.fusion.weights else None, "prefetch": max(HYBRID.prefetch, max(50, 10 * TITLE_RANK_DEPTH) // 5)}
                   if method == "rrf" else
                   {"sources": ["lexical", "mean"], "fusion": "occupation", **asdict(OCCUPATION_FUSION),
                    "prefetch": max(OCCUPATION_FUSION.prefetch, 2 * TITLE_RANK_DEPTH)}
                   if method == "hybrid" else None),
        **_core.title_metrics(examples, ranked),
        "titles_per_s": n / seconds if seconds else 0.0,
        "example_titles": n - len(held),
        **apart,
    }
