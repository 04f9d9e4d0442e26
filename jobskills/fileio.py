"""Crash-safe file writes: a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["atomic_write_bytes", "atomic_write_text", "partial_folder", "publish_folder", "repair_jsonl_tail", "disk_usage", "file_sha256"]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename. Raises OSError (e.g. disk full) with the
    temp file removed and the old file untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def partial_folder(out: str | os.PathLike[str]) -> Path:
    """An empty ``<out>.partial`` folder beside ``out`` (a leftover of a killed run is cleared): a model is
    written there whole, then :func:`publish_folder` renames it into place, so ``out`` is never half-written."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def publish_folder(partial: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Rename a finished :func:`partial_folder` onto ``out``, which must be absent or an empty folder (the
    callers check that before they start, so no command overwrites a folder it did not create)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()  # empty, or OSError: never replace somebody's files
    os.replace(partial, out)


def repair_jsonl_tail(
    path: str | os.PathLike[str], keep_rows: bool = True, require: str | None = None, what: str = "an output file of this command"
) -> list[dict[str, Any]]:
    """The rows of an append-only JSONL file that one of our commands wrote, after cutting a torn last line.

    Only an unterminated last line is a torn write (a kill mid-append): it is cut off so the next append starts
    on a clean line. Any other line that is not a JSON object (with the key ``require``, when given) means the
    file is not ours: :class:`~jobskills.errors.InputError` is raised and the file is left exactly as it was,
    so a mistyped ``--out`` never truncates somebody's notes. Returns the rows (only the last one when
    ``keep_rows`` is False, for files too large to hold).
    """
    from jobskills.errors import InputError

    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        raise InputError(f"{path} is not a file; choose another output path")
    rows: list[dict[str, Any]] = []
    good_end = 0
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                break  # the torn tail: checked below
            try:
                row = json.loads(raw)
            except ValueError:
                row = None
            if not isinstance(row, dict) or (require is not None and require not in row):
                raise InputError(f"{path} is not {what} (line {no} is not one of its rows); it was left untouched: "
                                 "choose another output path")
            if keep_rows or not rows:
                rows.append(row)
            else:
                rows[0] = row
            good_end += len(raw)
    size = path.stat().st_size
    if good_end != size:
        if good_end == 0:
            raise InputError(f"{path} is not {what} (no complete row); it was left untouched: choose another output path")
        logger.warning("dropping %d bytes of a torn line at the end of %s", size - good_end, path)
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
    return rows


def disk_usage(path: str | os.PathLike[str]) -> int:
    """Bytes actually allocated under ``path`` (Qdrant's WAL files are sparse: their apparent size overstates it)."""
    path = Path(path)
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (benchmarks, calibration records, shipped model deltas)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
