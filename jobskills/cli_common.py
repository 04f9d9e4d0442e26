"""Pieces every CLI sub-app shares: option aliases, settings resolution, output sinks, error mapping.

Kept free of heavy imports so that ``jobskills --help`` stays instant (no torch, no qdrant).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional, TypeVar

import typer

from jobskills.errors import JobskillsError

__all__ = [
    "ModelOpt", "HomeOpt", "EngineOpt", "JsonOpt", "ThresholdOpt", "DeviceOpt", "TaxonomyOpt",
    "settings_from", "emit_json", "err", "handle_errors", "progress_bar", "new_app",
]

F = TypeVar("F", bound=Callable[..., Any])

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Local sentence-transformers model folder [env JOBSKILLS_MODEL; default: packaged MiniLM-L6].", show_default=False)]
HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="Folder of the embedded store [env JOBSKILLS_HOME; default ~/.jobskills].", show_default=False)]
EngineOpt = Annotated[Optional[str], typer.Option("--engine", help="Embedded engine: edge (default), local (qdrant-client local mode), memory. QDRANT_URL overrides it.", show_default=False)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or auto [env JOBSKILLS_DEVICE].", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (no progress bars).")]
TaxonomyOpt = Annotated[Optional[str], typer.Option("--taxonomy", help="Skill taxonomy: esco-1.1.0 (built-in, default) or one added with `jobskills taxonomy add`.", show_default=False)]
ThresholdOpt = Annotated[Optional[float], typer.Option("--threshold", "-t", help="Override the threshold stored with the index.", show_default=False)]


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


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr (only on a terminal and outside --json); yields ``update(task, done, total)``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda task, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False) as prog:

        def update(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = prog.add_task(task, total=total)
            prog.update(tasks[task], completed=done, total=total)

        yield update


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
