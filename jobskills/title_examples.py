"""Example job titles: vacancy titles labelled with an ESCO occupation, indexed as extra title points.

ESCO's titles are clean labels ("data scientist"); the titles people look up are job-board postings
("Part Timer", "Sales Exec (KL)", "Admin cum Account Assistant"). An example set gives the titles index such
titles, each a point of the occupation it was labelled with, so a query near a labelled vacancy title finds
that occupation through the same BM25 and cosine evidence as an ESCO title. Nothing is trained: a new set
takes effect with ``jobskills index --only titles``.

A set is a JSONL file in the format of a title benchmark (``{"title": ..., "occupation": ESCO URI}``, plain
or gzip). The package ships one, ``jobbert-validation`` (see ``jobskills/data/titles/README.md``), and uses
it by default; ``none`` turns examples off, and a file path adds the user's own (names and paths may be
combined with commas). Every titles manifest records the sets it holds, with their SHA-256.

This module stays light (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

from jobskills.errors import InputError
from jobskills.fileio import file_sha256

__all__ = ["PACKAGED_EXAMPLES", "DEFAULT_TITLE_EXAMPLES", "NO_EXAMPLES", "ExampleSet", "example_names",
           "load_title_examples", "normalise_title"]

_DATA = Path(__file__).parent / "data" / "titles"
#: packaged example sets, by name
PACKAGED_EXAMPLES = {"jobbert-validation": _DATA / "jobbert_validation_examples.jsonl.gz"}
#: what a titles index holds when the settings name nothing
DEFAULT_TITLE_EXAMPLES = ("jobbert-validation",)
#: the setting's value for "no example titles"
NO_EXAMPLES = "none"


def normalise_title(text: str) -> str:
    """A title as a point's text: whitespace collapsed (case is kept; points merge case-insensitively)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class ExampleSet:
    """One example file: its name (a packaged name, or the file's absolute path), its SHA-256, and its
    (title, occupation URI) pairs in file order."""

    name: str
    path: Path
    sha256: str
    pairs: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "lines": len(self.pairs)}


def example_names(spec: str | None) -> tuple[str, ...]:
    """The sets a ``title_examples`` setting names: None = :data:`DEFAULT_TITLE_EXAMPLES`, ``none`` = no set,
    else comma-separated packaged names or file paths."""
    if spec is None:
        return DEFAULT_TITLE_EXAMPLES
    names = tuple(dict.fromkeys(n.strip() for n in str(spec).split(",") if n.strip()))
    if not names:
        raise InputError("title examples: empty setting; use 'none' for no example titles")
    if NO_EXAMPLES in names:
        if len(names) > 1:
            raise InputError("title examples: 'none' cannot be combined with other sets")
        return ()
    return names


def load_title_examples(spec: str | None, known_occupations: Collection[str] | None = None) -> list[ExampleSet]:
    """Read the sets a ``title_examples`` setting names; any problem (a missing file, a bad line, an occupation
    the taxonomy does not have) is an error naming the file and line, before anything is indexed."""
    from jobskills.evaluation import load_title_bench

    out = []
    for name in example_names(spec):
        path = PACKAGED_EXAMPLES.get(name) or Path(name).expanduser()
        if not path.is_file():
            known = ", ".join(sorted(PACKAGED_EXAMPLES))
            raise InputError(f"title examples {name!r}: no such file or packaged set (packaged: {known}; or 'none')")
        rows = load_title_bench(path, known_occupations)
        digest = file_sha256(path)
        # a file is recorded by its absolute path, so a rebuild from another folder finds it again
        recorded = name if name in PACKAGED_EXAMPLES else str(path.resolve())
        out.append(ExampleSet(recorded, path, digest, tuple((r.title, r.occupation) for r in rows)))
    return out
