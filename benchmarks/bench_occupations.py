"""Occupation inference from a whole ad: title only, skills only, and both combined; and corpus speed.

Synthetic ads for N occupations (default 200) that occur in the JobBERT validation titles and have at least
five essential ESCO skills: the title is a real vacancy title for that occupation from
`shared/data/bench/jobnorm_jobbert_validation.jsonl` (the first one listed), and the body is five sentences,
each the first sentence of the ESCO *description* of one of the occupation's essential skills (chosen with a
fixed seed). Reports acc@1, acc@5 and MRR (top 50) of the gold occupation for the three rankings, then times
corpus mode (`analyse` over a JSONL of the ads, repeated to --ads lines) beside plain `extract` on the same
texts.

    python benchmarks/bench_occupations.py [--home DIR] [--occupations 200] [--ads 1000] [--quick]

Writes benchmarks/results/bench_occupations[.quick].json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import SHARED, write_result  # noqa: E402


def _first_sentence(text: str) -> str:
    head = text.split(". ")[0].strip()
    return head if head.endswith(".") else head + "."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=None)
    ap.add_argument("--occupations", type=int, default=200)
    ap.add_argument("--ads", type=int, default=1000, help="ads in the corpus-mode speed run")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.occupations, args.ads = 20, 40

    from jobskills.config import load_settings
    from jobskills.esco import load_esco
    from retriever.analyse import _analyse, analyse_corpus
    from jobskills.evaluation import reciprocal_rank
    from retriever.pipeline import Retriever

    esco = load_esco()
    rng = random.Random(args.seed)
    first_title: dict[str, str] = {}
    for line in (SHARED / "bench" / "jobnorm_jobbert_validation.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        first_title.setdefault(row["occupation"], row["title"])
    pool = [u for u in first_title
            if sum(1 for v in esco.occupation_skills.get(u, {}).values() if v == "essential") >= 5]
    rng.shuffle(pool)
    chosen = pool[: args.occupations]
    ads = []
    for u in chosen:
        essential = sorted(s for s, v in esco.occupation_skills[u].items() if v == "essential")
        picks = rng.sample(essential, 5)
        body = "\n".join(_first_sentence(esco.skills[s].description) for s in picks)
        ads.append({"occupation": u, "title": first_title[u], "text": body})

    r = Retriever(load_settings({"home": args.home}))
    started = time.perf_counter()
    per_ad = r.extract_many([a["text"] for a in ads], evidence_words=3)
    extract_s = time.perf_counter() - started
    scores = {name: {"acc@1": 0, "acc@5": 0, "mrr": 0.0} for name in ("title_only", "skills_only", "combined")}
    for ad, sentences in zip(ads, per_ad):
        rankings = {
            "title_only": [m.occupation_uri for m in r.titles(ad["title"], k=50)],
            "skills_only": [o.uri for o in _analyse(r, esco, sentences, None, 50, "maxsim").occupations],
            "combined": [o.uri for o in _analyse(r, esco, sentences, ad["title"], 50, "maxsim").occupations],
        }
        for name, ranked in rankings.items():
            scores[name]["acc@1"] += ranked[:1] == [ad["occupation"]]
            scores[name]["acc@5"] += ad["occupation"] in ranked[:5]
            scores[name]["mrr"] += reciprocal_rank(ranked, {ad["occupation"]})
    n = len(ads)
    accuracy = {name: {k: round(v / n, 4) for k, v in s.items()} for name, s in scores.items()}
    print(json.dumps(accuracy, indent=1), file=sys.stderr)

    # speed: corpus mode over --ads lines vs plain extraction of the same texts
    corpus = [ads[i % n] for i in range(args.ads)]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ads.jsonl"
        src.write_text("\n".join(json.dumps({"title": a["title"], "text": a["text"]}) for a in corpus) + "\n")
        t0 = time.perf_counter()
        stats = analyse_corpus(r, src, Path(tmp) / "out.jsonl", "text", "title", summary=Path(tmp) / "s.csv")
        corpus_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sents = r.extract_many([a["text"] for a in corpus], evidence_words=3)
        plain_s = time.perf_counter() - t0
    n_sent = sum(len(s) for s in sents)
    result = {
        "benchmark": "bench_occupations",
        "ads": n,
        "ad_recipe": "title: first JobBERT validation title of the occupation; body: first sentence of the ESCO "
                     "descriptions of 5 of its essential skills (seeded)",
        "accuracy": accuracy,
        "extract_seconds_for_accuracy_set": round(extract_s, 1),
        "speed": {
            "corpus_ads": args.ads,
            "corpus_ads_per_s": round(args.ads / corpus_s, 2),
            "corpus_sentences_per_s": round(stats["sentences"] / corpus_s, 1),
            "plain_extract_sentences_per_s": round(n_sent / plain_s, 1),
            "summary_pairs": stats["summary"]["pairs"],
        },
        "provenance": r.provenance(),
        "command": " ".join(["python", *sys.argv]),
    }
    r.close()
    print(write_result("bench_occupations", result, args.quick))


if __name__ == "__main__":
    main()
