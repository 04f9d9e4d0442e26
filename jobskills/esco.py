"""ESCO v1.1.0 (English), shipped inside the package: skills, occupations, job titles, hierarchy, relations.

This service uses the ESCO classification of the European Commission.

The files under ``jobskills/data/esco`` are the columns of the official ESCO CSV export that we need,
values unchanged (see ``shared/data/README.md`` for their provenance); they are read with the stdlib
``csv`` module because ESCO keeps multi-valued fields (alternative labels) as newline-separated text
inside one quoted field. Nothing is ever downloaded.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

from jobskills.errors import ConfigError

__all__ = ["ESCO_VERSION", "ESCO_TAXONOMY", "ATTRIBUTION", "Skill", "Occupation", "Title", "Esco", "load_esco"]

logger = logging.getLogger(__name__)

ESCO_VERSION = "v1.1.0"
#: the built-in taxonomy's name, as indexes, results and ``--taxonomy`` spell it
ESCO_TAXONOMY = "esco-" + ESCO_VERSION.removeprefix("v")
ATTRIBUTION = "This service uses the ESCO classification of the European Commission."

csv.field_size_limit(10_000_000)


@dataclass(frozen=True)
class Group:
    """A node of the ESCO skills hierarchy (Level 0-3)."""

    uri: str
    label: str
    level: int


@dataclass(frozen=True)
class Skill:
    uri: str
    label: str  # preferred label, surrounding whitespace stripped
    alt_labels: tuple[str, ...]
    description: str
    skill_type: str  # "skill/competence", "knowledge" or "" (one ESCO skill has no type)
    reuse_level: str
    level2: tuple[Group, ...] = ()  # every Level-2 group the skill sits under (ESCO marks no primary one)


@dataclass(frozen=True)
class Occupation:
    uri: str
    label: str
    alt_labels: tuple[str, ...]
    description: str
    isco_group: str  # 4-digit ISCO-08 code
    code: str  # ESCO occupation code (ISCO code + suffix)


@dataclass(frozen=True)
class Title:
    """A job title point: an occupation's preferred label or one of its alternative labels."""

    text: str
    occupation_uri: str
    preferred: bool


@dataclass(frozen=True)
class Relation:
    occupation_uri: str
    skill_uri: str
    relation_type: str  # "essential" or "optional"


def _split_labels(raw: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for part in raw.split("\n"):
        part = part.strip()
        if part:
            seen.setdefault(part, None)
    return tuple(seen)


@dataclass
class Esco:
    """Lazy view over one taxonomy folder in ESCO's CSV layout (the packaged ESCO by default).

    Another taxonomy in the same layout (at least ``skills_en.csv[.gz]``) can be passed as ``data_dir``.
    """

    data_dir: Path | None = None
    version: str = ESCO_VERSION
    _cache: dict = field(default_factory=dict, repr=False)
    #: every taxonomy has a name; an imported one (:class:`jobskills.taxonomy.CustomTaxonomy`) sets its own
    name: str = ESCO_TAXONOMY

    def _path(self, stem: str) -> Path | None:
        base = self.data_dir if self.data_dir is not None else Path(__file__).resolve().parent / "data" / "esco"
        for name in (f"{stem}.csv.gz", f"{stem}.csv"):
            if (base / name).is_file():
                return base / name
        return None

    def _rows(self, stem: str, required: bool = True) -> Iterator[dict[str, str]]:
        path = self._path(stem)
        if path is None:
            if required:
                raise ConfigError(f"taxonomy file {stem}.csv(.gz) is missing from {self.data_dir or 'the package'}")
            return
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
            yield from csv.DictReader(fh)

    @cached_property
    def skills(self) -> dict[str, Skill]:
        """Skills by URI, in file order."""
        level2: dict[str, dict[str, Group]] = {}
        for row in self._rows("skill_hierarchy_paths", required=False):
            if row.get("level2Uri"):
                level2.setdefault(row["skillUri"], {})[row["level2Uri"]] = Group(
                    row["level2Uri"], row["level2Label"].strip(), 2
                )
        out: dict[str, Skill] = {}
        for row in self._rows("skills_en"):
            uri = row["conceptUri"]
            out[uri] = Skill(
                uri=uri,
                label=row["preferredLabel"].strip(),
                alt_labels=_split_labels(row.get("altLabels", "")),
                description=row.get("description", "").strip(),
                skill_type=row.get("skillType", "").strip(),
                reuse_level=row.get("reuseLevel", "").strip(),
                level2=tuple(level2.get(uri, {}).values()),
            )
        logger.debug("loaded %d skills", len(out))
        return out

    @cached_property
    def occupations(self) -> dict[str, Occupation]:
        out: dict[str, Occupation] = {}
        for row in self._rows("occupations_en", required=False):
            uri = row["conceptUri"]
            out[uri] = Occupation(
                uri=uri,
                label=row["preferredLabel"].strip(),
                alt_labels=_split_labels(row.get("altLabels", "")),
                description=row.get("description", "").strip(),
                isco_group=row.get("iscoGroup", "").strip(),
                code=row.get("code", "").strip(),
            )
        return out

    @cached_property
    def titles(self) -> list[Title]:
        """One title per (occupation, distinct label), preferred label first."""
        out: list[Title] = []
        for occ in self.occupations.values():
            out.append(Title(occ.label, occ.uri, True))
            out.extend(Title(alt, occ.uri, False) for alt in occ.alt_labels if alt != occ.label)
        return out

    @cached_property
    def level2_groups(self) -> dict[str, Group]:
        groups: dict[str, Group] = {}
        for skill in self.skills.values():
            for g in skill.level2:
                groups.setdefault(g.uri, g)
        return groups

    @cached_property
    def pillars(self) -> dict[str, tuple[str, ...]]:
        """Level-0 labels of each skill's hierarchy paths: skills, knowledge, language skills and knowledge,
        transversal skills and competences."""
        out: dict[str, dict[str, None]] = {}
        for row in self._rows("skill_hierarchy_paths", required=False):
            if row.get("level0Label"):
                out.setdefault(row["skillUri"], {})[row["level0Label"].strip()] = None
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def occupation_skills(self) -> dict[str, dict[str, str]]:
        """Occupation URI -> {skill URI: "essential" | "optional"}."""
        out: dict[str, dict[str, str]] = {}
        for r in self.relations:
            out.setdefault(r.occupation_uri, {})[r.skill_uri] = r.relation_type
        return out

    @cached_property
    def relations(self) -> list[Relation]:
        """Occupation-skill relations (essential / optional)."""
        return [
            Relation(r["occupationUri"], r["skillUri"], r["relationType"])
            for r in self._rows("occupation_skill_relations", required=False)
        ]

    @cached_property
    def skill_demand(self) -> dict[str, float]:
        """How often occupations ask for each skill: essential relations count 1, optional ones 0.5.

        A proxy for how often job ads ask for it (ESCO has no ad counts); synth spends its budget in this order."""
        out: dict[str, float] = {}
        for r in self.relations:
            out[r.skill_uri] = out.get(r.skill_uri, 0.0) + (1.0 if r.relation_type == "essential" else 0.5)
        return out

    @cached_property
    def broader(self) -> dict[str, tuple[str, ...]]:
        """Direct broader concepts (skills or groups) of each skill or group."""
        out: dict[str, list[str]] = {}
        for r in self._rows("broader_relations_skill_pillar", required=False):
            out.setdefault(r["conceptUri"], []).append(r["broaderUri"])
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the taxonomy files, so an index knows exactly which data built it."""
        h = hashlib.sha256(self.version.encode())
        for stem in ("skills_en", "occupations_en", "skill_hierarchy_paths"):
            path = self._path(stem)
            if path is not None:
                h.update(stem.encode())
                opener = gzip.open if path.suffix == ".gz" else open
                with opener(path, "rb") as fh:  # type: ignore[operator]
                    h.update(fh.read())
        return h.hexdigest()[:12]


_DEFAULT: Esco | None = None


def load_esco(data_dir: Path | None = None) -> Esco:
    """The packaged ESCO (cached per process), or a taxonomy folder in the same layout."""
    global _DEFAULT
    if data_dir is not None:
        return Esco(Path(data_dir))
    if _DEFAULT is None:
        _DEFAULT = Esco()
    return _DEFAULT
