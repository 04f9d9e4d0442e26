"""Write the packaged example titles (``jobskills/data/titles/jobbert_validation_examples.jsonl.gz``).

They are the lines of the JobBERT validation titles (``shared/data/bench/jobnorm_jobbert_validation.jsonl``)
that ``jobskills eval --sample 2000`` does *not* evaluate (:func:`jobskills.evaluation.even_sample`), in file
order, unchanged. So the development figure of the titles index with examples is measured on 2,000 titles
that are not example lines (no title appears verbatim in both; some match after lower-casing, as titles on
one job board do, and as the held-out split does with this file).

    python benchmarks/make_title_examples.py ../shared/data/bench/jobnorm_jobbert_validation.jsonl

Writes the file only if it does not exist (or is byte-identical), then prints its SHA-256 and counts.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobskills.evaluation import even_sample, load_title_bench  # noqa: E402
from jobskills.fileio import atomic_write_bytes, file_sha256  # noqa: E402

OUT = ROOT / "jobskills" / "data" / "titles" / "jobbert_validation_examples.jsonl.gz"
SAMPLE = 2000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", type=Path)
    ap.add_argument("--sample", type=int, default=SAMPLE)
    args = ap.parse_args()
    rows = load_title_bench(args.bench)
    held = {r.line for r in even_sample(rows, args.sample)}
    kept = [r for r in rows if r.line not in held]
    text = "".join(json.dumps({"title": r.title, "occupation": r.occupation}, ensure_ascii=False) + "\n" for r in kept)
    data = gzip.compress(text.encode("utf-8"), mtime=0)
    if OUT.exists() and OUT.read_bytes() != data:
        sys.exit(f"{OUT} exists with other content; remove it first if you mean to replace it")
    if not OUT.exists():
        atomic_write_bytes(OUT, data)
    print(json.dumps({"file": str(OUT.relative_to(ROOT)), "sha256": hashlib.sha256(data).hexdigest(),
                      "source_sha256": file_sha256(args.bench), "source_lines": len(rows),
                      "held_out_for_eval": len(held), "examples": len(kept),
                      "occupations": len({r.occupation for r in kept})}, indent=1))


if __name__ == "__main__":
    main()
