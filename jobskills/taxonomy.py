"""Taxonomies: the built-in ESCO v1.1.0 (``esco-1.1.0``) and user skill lists imported from CSV.

A custom taxonomy lives in ``<home>/taxonomies/<name>/``: ``skills.csv.gz`` (normalised columns
``id, label, alt_labels, description, group``; alternative labels separated by newlines inside the field, as
in ESCO) and ``taxonomy.json`` (name, fingerprint, counts, source). It loads as an :class:`~jobskills.esco.Esco`
view, so indexing, extraction, search, evaluation and calibration work on it unchanged; its index lives in
its own collections (``skills_<name>``), and every manifest and result names the taxonomy and fingerprint.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from jobskills.errors import InputError
from jobskills.esco import ESCO_TAXONOMY, ESCO_VERSION, Esco, Group, Skill, load_esco
from jobskills.fileio import atomic_write_text

__all__ = [
    "DEFAULT_TAXONOMY", "check_taxonomy_name", "skills_kind", "load_taxonomy", "import_csv", "list_taxonomies",
    "remove_taxonomy", "taxonomy_dir",
]

logger = logging.getLogger(__name__)

DEFAULT_TAXONOMY = ESCO_TAXONOMY
#: a name is a folder name, a collection-name part and a file-name part: nothing that can leave the home
#: (``..``, ``/``) or break a line (``re.fullmatch``: ``$`` alone would accept a trailing newline)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,40}")


def check_taxonomy_name(name: str | None, builtin_ok: bool = True) -> str:
    """The one check of a taxonomy name, for every command and path built from it; returns the name
    (``None`` = the built-in ESCO). ``builtin_ok=False`` for names a user creates or removes."""
    if name is None or name == DEFAULT_TAXONOMY:
        if builtin_ok:
            return DEFAULT_TAXONOMY
        raise InputError(f"{DEFAULT_TAXONOMY} is the built-in taxonomy; choose another name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"taxonomy name {name!r}: use lowercase letters, digits and '-' (a letter or digit first), "
                         "at most 41 characters")
    return name


def skills_kind(taxonomy: str | None) -> str:
    """The store collection kind holding a taxonomy's skills (``skills`` for ESCO, as before)."""
    if check_taxonomy_name(taxonomy) == DEFAULT_TAXONOMY:
        return "skills"
    return f"skills_{taxonomy}"


def taxonomy_dir(home: Path, name: str) -> Path:
    return Path(home) / "taxonomies" / check_taxonomy_name(name, builtin_ok=False)


class CustomTaxonomy(Esco):
    """An imported skill list, seen through the ESCO interface (no occupations or titles)."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        super().__init__(data_dir=folder, version=str(meta.get("version", "1")))
        self.name = meta["name"]
        self._fingerprint = meta["fingerprint"]
        self.meta = meta

    @property  # type: ignore[override]
    def fingerprint(self) -> str:
        return self._fingerprint

    @property  # type: ignore[override]
    def skills(self) -> dict[str, Skill]:
        if "skills" not in self._cache:
            out: dict[str, Skill] = {}
            for row in self._rows("skills"):
                group = row.get("group", "").strip()
                out[row["id"]] = Skill(
                    uri=row["id"], label=row["label"], alt_labels=tuple(a for a in row["alt_labels"].split("\n") if a),
                    description=row.get("description", ""), skill_type="", reuse_level="",
                    level2=(Group(group, group, 2),) if group else (),
                )
            self._cache["skills"] = out
        return self._cache["skills"]

    @property  # type: ignore[override]
    def occupations(self) -> dict:
        return {}


def load_taxonomy(home: Path, name: str | None) -> Esco:
    """The packaged ESCO for ``None`` / ``esco-1.1.0``; else an imported taxonomy by name."""
    if check_taxonomy_name(name) == DEFAULT_TAXONOMY:
        return load_esco()
    folder = taxonomy_dir(home, name)  # type: ignore[arg-type]
    try:
        meta = json.loads((folder / "taxonomy.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no taxonomy {name!r} in {Path(home) / 'taxonomies'}; see `jobskills taxonomy list`") from None
    return CustomTaxonomy(folder, meta)


def import_csv(
    home: Path,
    name: str,
    src: Path,
    id_column: str = "id",
    label_column: str = "label",
    description_column: str | None = None,
    alt_labels_column: str | None = None,
    group_column: str | None = None,
    alt_separator: str = "|",
    replace: bool = False,
) -> dict[str, Any]:
    """Validate and store a CSV skill list; every problem names its line. Returns the taxonomy's metadata."""
    check_taxonomy_name(name, builtin_ok=False)
    folder = taxonomy_dir(home, name)
    if folder.exists() and not replace:
        raise InputError(f"taxonomy {name!r} exists; remove it first or pass --replace")
    try:
        text = Path(src).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{src} does not exist") from None
    except UnicodeDecodeError as exc:
        line = Path(src).read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError(f"{src}:{line}: not UTF-8 (convert the file, e.g. iconv -f latin1 -t utf-8)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    for col in (id_column, label_column, description_column, alt_labels_column, group_column):
        if col is not None and col not in header:
            raise InputError(f"{src}:1: no column {col!r} (columns: {', '.join(header) or 'none'})")
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        ident = (row.get(id_column) or "").strip()
        label = (row.get(label_column) or "").strip()
        if not ident:
            raise InputError(f"{src}:{line}: empty id")
        if ident in seen:
            raise InputError(f"{src}:{line}: duplicate id {ident!r} (first on line {seen[ident]})")
        if not label:
            raise InputError(f"{src}:{line}: empty label for id {ident!r}")
        seen[ident] = line
        alts = []
        if alt_labels_column:
            for a in re.split(rf"[\n{re.escape(alt_separator)}]", row.get(alt_labels_column) or ""):
                a = a.strip()
                if a and a != label and a not in alts:
                    alts.append(a)
        rows.append({
            "id": ident, "label": label, "alt_labels": "\n".join(alts),
            "description": (row.get(description_column) or "").strip() if description_column else "",
            "group": (row.get(group_column) or "").strip() if group_column else "",
        })
    if not rows:
        raise InputError(f"{src} has no skills")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["id", "label", "alt_labels", "description", "group"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    body = out.getvalue().encode("utf-8")
    meta = {
        "name": name,
        "version": "1",
        "fingerprint": hashlib.sha256(body).hexdigest()[:12],
        "skills": len(rows),
        "with_alt_labels": sum(1 for r in rows if r["alt_labels"]),
        "groups": len({r["group"] for r in rows if r["group"]}),
        "source": str(Path(src).resolve()),
        "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    tmp = folder.with_name(f".{name}.importing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "skills.csv.gz").write_bytes(gzip.compress(body, mtime=0))
    atomic_write_text(tmp / "taxonomy.json", json.dumps(meta, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return meta


def list_taxonomies(home: Path) -> list[dict[str, Any]]:
    esco = load_esco()
    out = [{"name": DEFAULT_TAXONOMY, "builtin": True, "skills": len(esco.skills), "fingerprint": esco.fingerprint,
            "version": ESCO_VERSION}]
    base = Path(home) / "taxonomies"
    if base.is_dir():
        for meta_file in sorted(base.glob("*/taxonomy.json")):
            try:  # a folder made by hand (or by an older jobskills) with a bad name must not break the listing
                check_taxonomy_name(meta_file.parent.name, builtin_ok=False)
            except InputError as exc:
                logger.warning("skipping %s: %s", meta_file.parent, exc)
                continue
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            if meta.get("name") != meta_file.parent.name:
                logger.warning("skipping %s: it names itself %r", meta_file.parent, meta.get("name"))
                continue
            out.append({"builtin": False, **meta})
    return out


def remove_taxonomy(home: Path, name: str) -> None:
    """Delete an imported taxonomy's folder (its collections are dropped by the caller)."""
    check_taxonomy_name(name, builtin_ok=False)
    folder = taxonomy_dir(home, name)
    if not folder.exists():
        raise InputError(f"no taxonomy {name!r}")
    shutil.rmtree(folder)
