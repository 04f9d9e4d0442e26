"""How index cost grows with the number of points: 1x (preferred labels, 13,891 points) and ~8x (every
preferred and alternative label of every skill as its own point, ~111k), on the embedded edge engine and
(at 1x, or both with --local-8x) on qdrant-client local mode.

Per engine and scale: build time (upsert + flush; the encoder time is reported once, it is the same for
any engine), disk, open time, and per-sentence latency of the three candidate stages on the dev sentences:
MAX_SIM top-100 on ``tokens``, the per-token exact threshold search on ``mean`` (one batched call), and the
torch matrix bound over the same ``mean`` vectors.

    python benchmarks/bench_index.py [--model DIR] [--threads N] [--no-local] [--quick]

Writes benchmarks/results/bench_index[.quick].json. Full run: about 8 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Timer, environment, house_sentences, summary, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.45)
    ap.add_argument("--no-local", action="store_true", help="skip qdrant-client local mode")
    ap.add_argument("--quick", action="store_true", help="1,500 skills, 10 sentences: a CI smoke run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    from indexer.build import skill_items
    from jobskills.config import load_settings
    from jobskills.encoder import Encoder
    from jobskills.fileio import disk_usage
    from jobskills.esco import load_esco
    from jobskills.scoring import token_bound
    from jobskills.store import ClientStore, EdgeStore, IndexPoint

    settings = load_settings({"model": args.model})
    encoder = Encoder(settings.model_path)
    esco = load_esco()
    skills = list(esco.skills.values())[: 1500 if args.quick else None]
    sentences = [r["text"] for r in house_sentences()][: 10 if args.quick else None]

    # one point per distinct (skill, label text): preferred first, then alternatives
    base = {p["uri"]: p for _, p in skill_items(esco, uris=[s.uri for s in skills])}
    items_8x: list[tuple[str, dict]] = []
    for s in skills:
        for j, text in enumerate(dict.fromkeys([s.label, *s.alt_labels])):
            items_8x.append((text, {**base[s.uri], "text": text, "preferred": j == 0}))
    scales = {"1x": [it for it in items_8x if it[1]["preferred"]], "8x": items_8x}

    with Timer() as enc_t:
        texts = [t for t, _ in items_8x]
        vectors: list = [None] * len(texts)
        for idx, enc in encoder.iter_encode(texts, batch_size=128):
            toks, mask, pooled = enc.tokens.numpy(), enc.mask.numpy(), enc.pooled.numpy()
            for row, i in enumerate(idx):
                vectors[i] = (toks[row][mask[row]], pooled[row])
    print(f"encoded {len(texts)} labels in {enc_t.seconds:.1f} s", file=sys.stderr)
    sent = encoder.encode(sentences)
    sent_tokens = [sent.token_rows(i).numpy() for i in range(len(sentences))]
    sent_unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in sent_tokens]

    result: dict = {
        "benchmark": "bench_index",
        "model": encoder.name,
        "threshold": args.threshold,
        "sentences": len(sentences),
        "encode": {"labels": len(texts), "seconds": round(enc_t.seconds, 1), "labels_per_s": round(len(texts) / enc_t.seconds, 1)},
        "scales": {},
    }
    engines = ["edge"] + ([] if args.no_local else ["local"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        for scale, items in scales.items():
            pos = {id(it): i for i, it in enumerate(items_8x)}
            points = [IndexPoint(k, vectors[pos[id(it)]][0], vectors[pos[id(it)]][1], it[1]) for k, it in enumerate(items)]
            entry: dict = {"points": len(points), "skills": len(skills), "engines": {}}
            for engine in engines:
                if engine == "local" and scale == "8x" and not args.quick:
                    entry["engines"][engine] = {"skipped": "needs ~15 GB RAM and ~10 min to build at 111k points (qdrant.md)"}
                    continue
                folder = tmp / f"{engine}-{scale}"
                store = EdgeStore(folder) if engine == "edge" else ClientStore(str(folder))
                with Timer() as build:
                    store.create("skills", "v1", encoder.dim)
                    for s in range(0, len(points), 256):
                        store.upsert("skills", "v1", points[s : s + 256])
                    store.finalize("skills", "v1", {"created_at": "bench"})
                store.close()
                with Timer() as opened:
                    store = EdgeStore(folder) if engine == "edge" else ClientStore(str(folder))
                    store.count("skills", "v1")
                maxsim, pertoken = [], []
                for x, u in zip(sent_tokens, sent_unit):
                    with Timer() as q:
                        store.query_maxsim("skills", "v1", x, limit=100)
                    maxsim.append(q.seconds * 1000)
                    with Timer() as q:
                        lim = 128
                        pending = list(range(len(u)))
                        while pending:
                            lists = store.query_mean("skills", "v1", u[pending], limit=lim, threshold=args.threshold - 1e-5)
                            pending = [p for p, hits in zip(pending, lists) if len(hits) >= lim]
                            lim *= 8
                    pertoken.append(q.seconds * 1000)
                store.close()
                entry["engines"][engine] = {
                    "build_s": round(build.seconds, 1),
                    "disk_mb": round(disk_usage(folder) / 1e6, 1),
                    "open_s": round(opened.seconds, 2),
                    "maxsim_top100": summary(maxsim),
                    "per_token_threshold": summary(pertoken),
                }
                shutil.rmtree(folder, ignore_errors=True)
                print(f"{scale} {engine}: {entry['engines'][engine]}", file=sys.stderr)
            matrix = torch.from_numpy(np.stack([p.mean for p in points]))
            unit = matrix / matrix.norm(dim=1, keepdim=True)
            bound = []
            for i in range(len(sentences)):
                with Timer() as q:
                    token_bound(sent.tokens[i : i + 1], sent.mask[i : i + 1], matrix, skills_unit=unit)
                bound.append(q.seconds * 1000)
            entry["torch_matrix_bound"] = {**summary(bound), "matrix_mb": round(matrix.numel() * 4 / 1e6, 1)}
            result["scales"][scale] = entry
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    one, eight = result["scales"]["1x"], result["scales"]["8x"]
    result["growth_8x_over_1x"] = {
        "points": round(eight["points"] / one["points"], 2),
        "edge_build": round(eight["engines"]["edge"]["build_s"] / max(one["engines"]["edge"]["build_s"], 1e-9), 2),
        "edge_disk": round(eight["engines"]["edge"]["disk_mb"] / max(one["engines"]["edge"]["disk_mb"], 1e-9), 2),
        "edge_maxsim_p50": round(eight["engines"]["edge"]["maxsim_top100"]["p50_ms"] / one["engines"]["edge"]["maxsim_top100"]["p50_ms"], 2),
        "edge_per_token_p50": round(eight["engines"]["edge"]["per_token_threshold"]["p50_ms"] / one["engines"]["edge"]["per_token_threshold"]["p50_ms"], 2),
        "torch_bound_p50": round(eight["torch_matrix_bound"]["p50_ms"] / one["torch_matrix_bound"]["p50_ms"], 2),
    }
    result["environment"] = environment(args.threads)
    result["command"] = " ".join(["python", *sys.argv])
    print(write_result("bench_index", result, args.quick))


if __name__ == "__main__":
    main()
