"""Crash-safe file writes: a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["atomic_write_text", "repair_jsonl_tail", "disk_usage"]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write via a temp file in the same folder + fsync + rename. Raises OSError (e.g. disk full) with the
    temp file removed and the old file untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def repair_jsonl_tail(path: str | os.PathLike[str], keep_rows: bool = True) -> list[dict[str, Any]]:
    """The rows of an append-only JSONL file, after truncating a torn or damaged tail (a kill mid-write).

    Everything from the first line that is unterminated or not a JSON object on is cut off, so the next
    append starts on a clean line; the rows before it are returned (only the last one when ``keep_rows`` is
    False, for files too large to hold).
    """
    path = Path(path)
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    good_end = 0
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                row = json.loads(raw)
            except ValueError:
                break
            if not isinstance(row, dict):
                break
            if keep_rows or not rows:
                rows.append(row)
            else:
                rows[0] = row
            good_end += len(raw)
    size = path.stat().st_size
    if good_end != size:
        logger.warning("dropping %d bytes of a torn line at the end of %s", size - good_end, path)
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
    return rows


def disk_usage(path: str | os.PathLike[str]) -> int:
    """Bytes actually allocated under ``path`` (Qdrant's WAL files are sparse: their apparent size overstates it)."""
    path = Path(path)
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) if path.exists() else 0
