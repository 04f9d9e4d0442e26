"""Inter-process locks for one home, built on ``flock`` (released by the kernel when a process dies, so a
killed process never leaves a stale lock behind).

- :class:`BuildLock`: builders (``index``, ``train``, ``train-titles``, ``calibrate``, ``taxonomy remove``)
  exclude each other; the holder's pid is written in the file so the refusal can name it.
- :class:`Lease`: a reader holds a shared lease on each index version it serves; pruning asks
  :func:`in_use` and keeps a leased version. Readers never exclude each other or a builder.

On a platform without ``fcntl`` (Windows) the locks are no-ops and one process per home is the rule.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Iterator

from jobskills.errors import StoreLockedError

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["BuildLock", "Lease", "in_use", "exclusive"]

logger = logging.getLogger(__name__)


class BuildLock:
    """An exclusive, non-blocking lock: a second builder fails at once with the first one's pid."""

    def __init__(self, path: str | os.PathLike[str], what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None or fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "pid unknown"
            os.close(fd)
            raise StoreLockedError(
                f"another build of {self.what} is running ({holder}); wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {dt.datetime.now().isoformat(timespec='seconds')}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "BuildLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Lease:
    """A shared lock on ``path`` held for the life of a reader (the file is created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        if fcntl is None:
            return
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # only an in_use() probe holds LOCK_EX, and only for an instant

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def in_use(path: str | os.PathLike[str]) -> bool:
    """True while some process holds a :class:`Lease` on ``path``."""
    with exclusive(path) as free:
        return not free


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str]) -> Iterator[bool]:
    """Try to hold ``path`` exclusively for the block: yields False (and holds nothing) while a reader holds a
    :class:`Lease` on it. A reader that arrives meanwhile waits, then finds what the block left."""
    if fcntl is None or not Path(path).exists():
        yield True
        return
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # drops the lock
