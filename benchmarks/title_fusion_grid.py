"""The grid behind ``titles(method="hybrid")``'s settings: every ESCO title encoded once in memory, the
development titles ranked by the same occupation scoring the Retriever uses
(:func:`retriever.titles.occupation_scores`), for each (temperature, lexical weight).

Each query takes the top ``--prefetch`` titles by pooled cosine and the top ``--prefetch`` by BM25 (the two
prefetches of the Qdrant query; BM25 with the index's own tokenisation, ``avg_len`` and the engine's IDF,
``ln((N - n + 0.5) / (n + 0.5) + 1)``), then scores occupations over that union exactly as ``titles()`` does,
ties broken by URI. ``mean`` (best title cosine over all titles) is the reference row. No index is needed,
so a grid of many settings costs one encoding of the title points: ESCO's 31,956 titles plus, as in the
default index, the packaged example titles (``--title-examples none`` for ESCO's alone; see
:mod:`jobskills.title_examples`).

    python benchmarks/title_fusion_grid.py [--model NAME|DIR] [--title-examples SPEC] [--sample 2000]
        [--taus 0.03,0.05,0.08] [--weights 0,0.1,0.15,0.2] [--prefetch 200] [--queries dev|esco-loo]
        [--name title_fusion_grid]

``--queries esco-loo`` asks clean titles instead of the vacancy titles: ``--sample`` of ESCO's own
alternative labels that name one occupation (seeded), each ranked with its own point left out, a stand-in for
users who type ESCO-like titles, to see what example titles cost them.

Writes benchmarks/results/<NAME>.json. Development figures: the dev set made the choice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import environment, write_result  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench" / "jobnorm_jobbert_validation.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="title model: a packaged name or a folder (default: the packaged title model)")
    ap.add_argument("--home", default=None, help="where a packaged model is laid out (default: the settings' home)")
    ap.add_argument("--title-examples", default=None, help="example title sets, as `jobskills index --title-examples` (default: the packaged set)")
    ap.add_argument("--bench", default=str(DEV))
    ap.add_argument("--sample", type=int, default=2000, help="titles evenly spread over the file, as `jobskills eval --sample`")
    ap.add_argument("--taus", default="0.03,0.05,0.08")
    ap.add_argument("--weights", default="0,0.1,0.15,0.2")
    ap.add_argument("--prefetch", type=int, default=200)
    ap.add_argument("--queries", choices=("dev", "esco-loo"), default="dev")
    ap.add_argument("--name", default="title_fusion_grid")
    args = ap.parse_args()

    import numpy as np
    import torch

    from jobskills.config import load_settings
    from jobskills.encoder import Encoder
    from jobskills.esco import load_esco
    from jobskills.evaluation import TitleExample, even_sample, load_title_bench
    from jobskills.lexical import Bm25Encoder
    from jobskills.schema import title_points
    from jobskills.title_examples import load_title_examples, normalise_title
    from retriever.titles import OccupationFusion, occupation_scores

    settings = load_settings({"home": args.home, "title_model": args.model, "title_examples": args.title_examples})
    encoder = Encoder(settings.title_model_path)
    esco = load_esco()
    examples = load_title_examples(settings.title_examples, esco.occupations)
    points = title_points(esco, examples=examples)
    texts = [t for t, _ in points]
    occupations = [p.occupations for _, p in points]
    left_out: list[int | None]
    if args.queries == "dev":
        rows = even_sample(load_title_bench(args.bench, set(esco.occupations)), args.sample or None)
        left_out = [None] * len(rows)
    else:  # ESCO alternative labels of one occupation, each without its own point (the same ones with or without examples)
        rng = np.random.default_rng(0)
        pool = [(t, p.occupations[0]) for t, p in title_points(esco) if len(p.occupations) == 1 and not p.preferred[0]]
        picked = [pool[int(i)] for i in rng.choice(len(pool), size=min(args.sample, len(pool)), replace=False)]
        position = {t.casefold(): j for j, t in enumerate(texts)}
        left_out = [position[t.casefold()] for t, _ in picked]
        rows = [TitleExample(t, occ, j) for (t, occ), j in zip(picked, left_out)]
    example_texts = {t.casefold() for t, p in points if "example" in p.origins}
    overlap = sum(normalise_title(r.title).casefold() in example_texts for r in rows) if args.queries == "dev" else 0
    queries = [r.title.strip() for r in rows]

    def encode(xs: list[str]) -> np.ndarray:
        return np.concatenate([encoder.encode(xs[i : i + 256]).pooled.numpy() for i in range(0, len(xs), 256)])

    cos = encode(queries) @ encode(texts).T
    for qi, j in enumerate(left_out):
        if j is not None:
            cos[qi, j] = -np.inf

    bm25 = Bm25Encoder.fitted(texts)
    postings: dict[int, tuple[list[int], list[float]]] = {}
    for j, t in enumerate(texts):
        for term, value in zip(*bm25.document(t)):
            docs, values = postings.setdefault(term, ([], []))
            docs.append(j)
            values.append(value)
    n = len(texts)
    index = {term: (np.asarray(d), np.asarray(v) * np.log((n - len(d) + 0.5) / (len(d) + 0.5) + 1.0))
             for term, (d, v) in postings.items()}
    lexical = np.zeros((len(queries), n))
    for qi, q in enumerate(queries):
        for term, weight in zip(*bm25.query(q)):
            if term in index:
                np.add.at(lexical[qi], index[term][0], weight * index[term][1])
        if left_out[qi] is not None:
            lexical[qi, left_out[qi]] = 0.0

    def metrics(ranks: list[int]) -> dict[str, float]:
        r = np.asarray(ranks, dtype=np.float64)
        return {"mrr": round(float(np.mean(1.0 / r)), 4), **{f"acc@{k}": round(float(np.mean(r <= k)), 4) for k in (1, 5, 10)}}

    def rank_of(scores: dict[str, float], gold: str) -> int:
        if gold not in scores:
            return 10**9
        g = scores[gold]
        return 1 + sum(1 for u, s in scores.items() if s > g or (s == g and u < gold))

    p = args.prefetch
    unions = []
    for qi in range(len(queries)):
        sem = np.argpartition(-cos[qi], p)[:p]
        lex = [int(j) for j in np.argsort(-lexical[qi])[:p] if lexical[qi, j] > 0]
        unions.append((set(int(j) for j in sem), set(lex), float(cos[qi, sem].min())))

    results: dict[str, dict[str, float]] = {}
    mean_ranks = []
    for qi, r in enumerate(rows):
        best: dict[str, float] = {}
        for j in np.argsort(-cos[qi])[:2000]:
            for u in occupations[j]:
                best.setdefault(u, float(cos[qi, j]))
        mean_ranks.append(rank_of(best, r.occupation))
    results["mean"] = metrics(mean_ranks)
    for tau in (float(x) for x in args.taus.split(",")):
        for w in (float(x) for x in args.weights.split(",")):
            fusion = OccupationFusion(prefetch=p, temperature=tau, lexical_weight=w)
            ranks = []
            for qi, r in enumerate(rows):
                sem, lex, floor = unions[qi]
                titles = [(occupations[j], float(cos[qi, j]) if j in sem else None, float(lexical[qi, j]) if j in lex else None)
                          for j in sem | lex]
                scores = {u: v[0] for u, v in occupation_scores(titles, fusion, floor).items()}
                ranks.append(rank_of(scores, r.occupation))
            results[f"tau={tau:g} w={w:g}"] = metrics(ranks)
            print(f"tau {tau:g} w {w:g}: {results[f'tau={tau:g} w={w:g}']}", file=sys.stderr)
    best_key = max((k for k in results if k != "mean"), key=lambda k: results[k]["mrr"])
    out = {
        "benchmark": "title_fusion_grid",
        "model": encoder.name,
        "model_fingerprint": encoder.fingerprint,
        "titles": len(texts),
        "title_examples": [e.to_dict() for e in examples],
        "queries": len(queries),
        "query_set": args.queries,
        "queries_that_are_example_titles": overlap,
        "prefetch": p,
        "results": results,
        "best": best_key,
        "environment": environment(torch.get_num_threads()),
        "command": " ".join(["python", *sys.argv]),
    }
    print(write_result(args.name, out, False))


if __name__ == "__main__":
    main()
