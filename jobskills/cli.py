"""The ``jobskills`` command. Each package mounts its own commands (``register``). The command modules are
imported here, for ``--help``, and they stay light: torch, the model and Qdrant are imported inside each
command, so ``jobskills --help`` and a one-line error never pay for them."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Optional

import typer

from jobskills import __version__, cli_taxonomy
from jobskills.cli_common import err, new_app, setup_logging
from jobskills.esco import ATTRIBUTION

#: packages that contribute commands, by module name (strings: core does not import its dependents)
COMMAND_MODULES = ("indexer.cli", "retriever.cli", "trainer.cli", "synth.cli")

app = new_app(f"Find ESCO skills in job-ad text and nearest ESCO job titles.\n\n{ATTRIBUTION}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jobskills {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="-v: progress logs; -vv: debug, library logs.")] = 0,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = None,
) -> None:
    setup_logging(verbose)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)
cli_taxonomy.register(app)  # core's own commands


def main() -> None:
    """Console entry point: a last guard so no traceback reaches a user (``JOBSKILLS_DEBUG=1`` shows it)."""
    try:
        app(prog_name="jobskills")
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - commands map their own errors; this is the safety net
        if os.environ.get("JOBSKILLS_DEBUG"):
            raise
        err(f"unexpected error: {type(exc).__name__}: {exc} (set JOBSKILLS_DEBUG=1 for the traceback)")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
