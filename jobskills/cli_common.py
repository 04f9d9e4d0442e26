"""Pieces every CLI sub-app shares: option aliases, settings resolution, output sinks, error mapping.

Kept free of heavy imports so that ``jobskills --help`` stays instant (no torch, no qdrant).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional, TypeVar

import typer

from jobskills.errors import JobskillsError

__all__ = [
    "ModelOpt", "HomeOpt", "EngineOpt", "JsonOpt", "ThresholdOpt", "IndexThresholdOpt", "DeviceOpt", "EncoderBackendOpt", "TaxonomyOpt",
    "settings_from", "emit_json", "err", "handle_errors", "progress_bar", "ProgressReporter", "new_app",
]

F = TypeVar("F", bound=Callable[..., Any])

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Local sentence-transformers model folder [env JOBSKILLS_MODEL; default: packaged MiniLM-L6].", show_default=False)]
HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="Folder of the embedded store [env JOBSKILLS_HOME; default ~/.jobskills].", show_default=False)]
EngineOpt = Annotated[Optional[str], typer.Option("--engine", help="Embedded engine: edge (default), local (qdrant-client local mode), memory. QDRANT_URL overrides it.", show_default=False)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or auto [env JOBSKILLS_DEVICE].", show_default=False)]
EncoderBackendOpt = Annotated[Optional[str], typer.Option(
    "--encoder-backend", help="fp32, int8, int8-mixed or onnx-int8: int8 runs the encoder's Linear layers in int8 on the CPU, "
    "onnx-int8 runs the transformer in ONNX Runtime with int8 weights (needs the onnx extra); both are faster and "
    "slightly less accurate (see benchmarks/README.md). An index answers only with the backend that built it "
    "[env JOBSKILLS_ENCODER_BACKEND; default: the index's, else fp32].", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (no progress bars).")]
TaxonomyOpt = Annotated[Optional[str], typer.Option("--taxonomy", help="Skill taxonomy: esco-1.1.0 (built-in, default) or one added with `jobskills taxonomy add`.", show_default=False)]
ThresholdOpt = Annotated[Optional[float], typer.Option("--threshold", "-t", help="Use this threshold for this command instead of the one stored with the index (see jobskills.threshold for the order).", show_default=False)]
IndexThresholdOpt = Annotated[Optional[float], typer.Option("--threshold", "-t", help="Store this threshold in the new index (default: this home's calibration, else the model's).", show_default=False)]


def new_app(help: str) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                       context_settings={"help_option_names": ["-h", "--help"]})


def settings_from(**overrides: Any) -> "Any":
    """Settings with CLI values on top (``None`` = not given)."""
    from jobskills.config import load_settings

    return load_settings(overrides)


def emit_json(data: Any) -> None:
    """Results go to stdout; everything else (logs, progress, errors) to stderr."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def err(message: str) -> None:
    sys.stderr.write(message.rstrip() + "\n")


def handle_errors(fn: F) -> F:
    """Project errors (and bad files) become one line on stderr and exit code 1; JOBSKILLS_DEBUG=1 re-raises."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except (JobskillsError, OSError, UnicodeDecodeError) as exc:
            if os.environ.get("JOBSKILLS_DEBUG"):
                raise
            label = "error" if isinstance(exc, JobskillsError) else type(exc).__name__
            err(f"{label}: {exc}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class ProgressReporter:
    """``reporter(task, done, total)`` reports long work on stderr; ``reporter.note(task, text)`` adds a short
    status beside it (e.g. the training loss). Callers that take a plain ``(task, done, total)`` callable accept
    it unchanged; the note is optional (``getattr(progress, "note", None)``)."""

    def __init__(self, bar: Any = None, every: float = 30.0, stream: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._bar = bar  # a rich Progress (terminal), or None: plain lines (log file, pipe), or silent if no stream
        self._stream = stream
        self._every = every
        self._clock = clock
        self._tasks: dict[str, Any] = {}
        self._notes: dict[str, str] = {}
        self._last: dict[str, float] = {}
        self._printed: dict[str, tuple[int, int]] = {}

    def __call__(self, task: str, done: int, total: int) -> None:
        if self._bar is not None:
            if task not in self._tasks:
                self._tasks[task] = self._bar.add_task(task, total=total, note=self._notes.get(task, ""))
            self._bar.update(self._tasks[task], completed=done, total=total, note=self._notes.get(task, ""))
        elif self._stream is not None:
            now = self._clock()
            last = self._last.setdefault(task, now)  # the first report starts the clock: short work prints nothing
            printed = self._printed.get(task)
            finished = total > 0 and done >= total and printed is not None  # close a run that printed a line
            if (now - last >= self._every or finished) and printed != (done, total):
                self._last[task] = now
                self._printed[task] = (done, total)
                pct = f" ({100 * done / total:.0f}%)" if total > 0 else ""
                note = self._notes.get(task)
                self._stream.write(f"{task}: {done:,}/{total:,}{pct}" + (f", {note}" if note else "") + "\n")
                self._stream.flush()

    def note(self, task: str, text: str) -> None:
        self._notes[task] = text
        if self._bar is not None and task in self._tasks:
            self._bar.update(self._tasks[task], note=text)


#: seconds between plain progress lines when stderr is not a terminal
PROGRESS_EVERY = 30.0


@contextmanager
def progress_bar(enabled: bool, every: float | None = None) -> Iterator[ProgressReporter]:
    """Progress of long work, always on stderr (stdout is for results): a rich bar on a terminal; elsewhere (a log
    file, a pipe) one plain line at most every ``every`` seconds (default :data:`PROGRESS_EVERY`) and a last one
    at the end, so an hour-long run is never silent. Off under --json. Yields a :class:`ProgressReporter`."""
    if not enabled:
        yield ProgressReporter()
        return
    if not sys.stderr.isatty():
        yield ProgressReporter(every=PROGRESS_EVERY if every is None else every, stream=sys.stderr)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[note]}"), console=Console(stderr=True), transient=False) as prog:
        yield ProgressReporter(bar=prog)


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # third-party chatter (weight-loading bars, deprecation notes) only with -vv
    for name in ("sentence_transformers", "transformers", "httpx", "qdrant_client"):
        logging.getLogger(name).setLevel(level if verbose >= 2 else logging.WARNING)
    if verbose < 2:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
