"""Corpus mode: stream a JSONL file of ads through extraction, resumably.

Input lines are read one at a time (files larger than memory are fine) and processed in chunks whose
sentences share encoder batches. Each input line gives exactly one output line, in input order:
``{"line": N, "id": ..., "sentences": [...]}`` or ``{"line": N, "id": ..., "error": "..."}`` for a line that
cannot be used (bad JSON, missing field, empty text, bad encoding) -- nothing is dropped silently.
Output is appended and fsynced per chunk; after a kill, rerunning the same command truncates a torn last
line and continues after the last line written, so no ad is lost or written twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from jobskills.errors import InputError, JobskillsError
from retriever.contract import EVIDENCE_WORDS

if TYPE_CHECKING:
    from retriever.pipeline import Retriever

__all__ = ["extract_corpus", "run_corpus", "resume_point"]

logger = logging.getLogger(__name__)


def resume_point(out: Path) -> int:
    """The last input line already written to ``out`` (0 if none); drops a torn trailing line."""
    from jobskills.fileio import repair_jsonl_tail

    last = repair_jsonl_tail(out, keep_rows=False, require="line", what="a results file of this command")
    try:
        return int(last[0]["line"]) if last else 0
    except (TypeError, ValueError):
        raise InputError(f"{out} is not a results file of this command (bad 'line' field); choose another --out") from None


def _lines(path: Path, start_after: int) -> Iterator[tuple[int, bytes, int]]:
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, 1):
            if no > start_after:
                yield no, raw, fh.tell()


def _parse(
    no: int, raw: bytes, text_field: str, id_field: str | None, title_field: str | None = None
) -> tuple[Any, str | None, str | None, str | None]:
    """(id, text, title, error) of one input line."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, None, None, "line is not UTF-8"
    except json.JSONDecodeError as exc:
        return None, None, None, f"not valid JSON ({exc.msg})"
    if not isinstance(row, dict):
        return None, None, None, "line is not a JSON object"
    ident = row.get(id_field) if id_field else None
    text = row.get(text_field)
    if not isinstance(text, str):
        return ident, None, None, f"field {text_field!r} is missing or not a string"
    if not text.strip():
        return ident, None, None, "empty text"
    title = None
    if title_field:
        title = row.get(title_field)
        if not isinstance(title, str):
            return ident, None, None, f"title field {title_field!r} is missing or not a string"
    return ident, text, title, None


def _source_file(out: Path) -> Path:
    return out.with_name(out.name + ".source.json")


def _check_source(src: Path, out: Path, done: int, fields: dict[str, Any]) -> None:
    """A resume continues only the corpus that started ``out``: ``<out>.source.json`` records the input (its
    first 64 KiB's hash, its path and the fields read) when a run starts, and a later run must match it."""
    import hashlib

    from jobskills.fileio import atomic_write_text

    with open(src, "rb") as fh:
        head = hashlib.sha256(fh.read(1 << 16)).hexdigest()
    me = {"input": str(src.resolve()), "input_head_sha256": head, **fields}
    side = _source_file(out)
    try:
        was = json.loads(side.read_text(encoding="utf-8")) if side.exists() else None
    except (OSError, ValueError):
        was = {}
    if side.exists() and not (isinstance(was, dict) and "input_head_sha256" in was):
        raise InputError(f"{side} exists and was not written by this command; move it, or choose another --out")
    if done == 0:
        atomic_write_text(side, json.dumps(me, indent=2))
        return
    if was is None:
        raise InputError(f"{out} holds results but no record of the input that made them ({side.name}); "
                         "choose another --out rather than mix two corpora")
    if was.get("input_head_sha256") != head or any(was.get(k) != v for k, v in fields.items()):
        raise InputError(f"{out} holds results of {was.get('input')} (fields {', '.join(f'{k}={was.get(k)}' for k in fields)}), "
                         f"not of {src}; choose another --out, or rerun that input to resume it")


#: (ad texts, their titles, their sentence spans from ``Retriever.split``) -> one dict per ad
Handler = Callable[[list[str], list[Optional[str]], list[list[tuple[int, int]]]], list[dict[str, Any]]]


def extract_corpus(
    r: "Retriever",
    src: Path,
    out: Path,
    text_field: str = "text",
    id_field: str | None = None,
    threshold: float | None = None,
    redundancy: bool = True,
    evidence_words: int = EVIDENCE_WORDS,
    chunk_sentences: int = 256,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Extract skills for every line of ``src`` into ``out`` (JSONL), resuming where a previous run stopped."""

    def handler(texts: list[str], titles: list[str | None], spans: list) -> list[dict[str, Any]]:
        results = r.extract_many(texts, threshold, redundancy, evidence_words, spans=spans)
        return [{"sentences": [s.to_dict() for s in sents], "_n": len(sents)} for sents in results]

    return run_corpus(r, src, out, handler, text_field, id_field, None, chunk_sentences, progress)


def run_corpus(
    r: "Retriever",
    src: Path,
    out: Path,
    handler: Handler,
    text_field: str = "text",
    id_field: str | None = None,
    title_field: str | None = None,
    chunk_sentences: int = 256,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Stream ``src`` through ``handler`` (a chunk of ad texts and titles -> one dict per ad) into ``out``."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise InputError(f"{src} does not exist")
    if out.exists() and src.resolve() == out.resolve():
        raise InputError("--out must differ from the input file")
    done = resume_point(out)
    _check_source(src, out, done, {"text_field": text_field, "id_field": id_field, "title_field": title_field})
    if done:
        logger.info("resuming %s after line %d", out, done)
    total_bytes = src.stat().st_size
    stats = {"lines": 0, "ads": 0, "errors": 0, "sentences": 0, "skipped_done": done}
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as sink:
        pending: list[tuple[int, Any, str | None, str | None, str | None, list[tuple[int, int]]]] = []
        n_sent = 0

        def flush() -> None:
            nonlocal pending, n_sent
            work = [p for p in pending if p[2] is not None]
            results = iter(handler([p[2] for p in work], [p[3] for p in work], [p[5] for p in work]) if work else [])  # type: ignore[misc]
            lines = []
            for no, ident, text, _title, error, _spans in pending:
                row: dict[str, Any] = {"line": no}
                if id_field:
                    row["id"] = ident
                if text is None:
                    row["error"] = error
                    stats["errors"] += 1
                else:
                    body = next(results)
                    stats["ads"] += 1
                    stats["sentences"] += body.pop("_n", 0)
                    row.update(body)
                lines.append(json.dumps(row, ensure_ascii=False))
            sink.write("\n".join(lines) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            pending, n_sent = [], 0

        for no, raw, pos in _lines(src, done):
            stats["lines"] += 1
            if not raw.strip():
                pending.append((no, None, None, None, "blank line", []))
                continue
            ident, text, title, error = _parse(no, raw, text_field, id_field, title_field)
            spans: list[tuple[int, int]] = []
            if text is not None:
                try:
                    spans = r.split(text)
                    n_sent += len(spans)
                except JobskillsError as exc:
                    text, error = None, str(exc)
            pending.append((no, ident, text, title, error, spans))
            if n_sent >= chunk_sentences:
                flush()
                if progress:
                    progress("ads", pos, total_bytes)
        if pending:
            flush()
        if progress:
            progress("ads", total_bytes, total_bytes)
    seconds = time.perf_counter() - started
    stats["seconds"] = round(seconds, 2)
    stats["ads_per_s"] = round(stats["ads"] / seconds, 2) if seconds else 0.0
    stats["sentences_per_s"] = round(stats["sentences"] / seconds, 2) if seconds else 0.0
    stats["out"] = str(out)
    return stats
