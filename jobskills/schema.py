"""The index contract: what an index point's payload and a version's manifest hold, in one place.

The indexer writes these records (:mod:`indexer.build`) and every reader (the retriever, ``jobskills info``,
the trainer's rebuild) reads them back through the same classes, so a field has one name and one meaning.
``to_dict`` gives exactly the keys and values indexes have always stored, so existing indexes keep opening;
``from_dict`` accepts manifests and payloads of older versions (fields added since then read as their
defaults, and the 0.1 taxonomy name ``"esco"`` reads as the built-in ESCO).

This module stays light (no torch): ``jobskills info`` reads manifests through it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from jobskills.errors import IndexMismatchError, StoreError
from jobskills.esco import ESCO_VERSION
from jobskills.taxonomy import DEFAULT_TAXONOMY
from jobskills.title_examples import ExampleSet, normalise_title

if TYPE_CHECKING:
    from jobskills.esco import Esco

__all__ = [
    "LEGACY_ESCO", "LABEL_MODES", "TITLE_ORIGINS", "canonical_taxonomy", "SkillPayload", "TitlePayload", "Manifest", "check_manifest",
    "skill_points", "title_points",
]

#: How 0.1 indexes named the built-in taxonomy (and what a manifest without ``taxonomy`` means).
LEGACY_ESCO = "esco"

#: Which labels of a skill become index points: ``preferred`` (one point per skill) or ``all`` (label
#: expansion: the preferred label and every distinct alternative label, each a point of its skill).
LABEL_MODES = ("preferred", "all")


def canonical_taxonomy(name: str | None) -> str:
    """The taxonomy an index names, in today's spelling (``None`` and the 0.1 ``"esco"`` are the built-in ESCO)."""
    return DEFAULT_TAXONOMY if name in (None, LEGACY_ESCO) else str(name)


# ---------------------------------------------------------------------------------------------------- payloads
@dataclass(frozen=True)
class SkillPayload:
    """One point of a skills index: a label of a skill. ``text`` is the label encoded (the preferred label or,
    with label expansion, an alternative one); ``label`` is the preferred label, what results show."""

    uri: str
    label: str
    text: str
    skill_type: str = ""  # stored as "type"
    reuse_level: str = ""
    level2: tuple[str, ...] = ()
    level2_labels: tuple[str, ...] = ()
    taxonomy: str = DEFAULT_TAXONOMY
    kind: str = "skill"
    #: the skill's alternative labels, on its preferred-label point only: the words the lexical evidence
    #: (:class:`jobskills.lexical.LabelLexicon`) looks for. Indexes built before it have none.
    alt_labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {
            "uri": self.uri,
            "label": self.label,
            "kind": self.kind,
            "type": self.skill_type,
            "reuse_level": self.reuse_level,
            "level2": list(self.level2),
            "level2_labels": list(self.level2_labels),
            "taxonomy": self.taxonomy,
            "text": self.text,
        }
        if self.alt_labels:
            out["alt_labels"] = list(self.alt_labels)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SkillPayload":
        label = data.get("label", "")
        return cls(
            uri=data.get("uri", ""), label=label, text=data.get("text", label), skill_type=data.get("type", ""),
            reuse_level=data.get("reuse_level", ""), level2=tuple(data.get("level2") or ()),
            level2_labels=tuple(data.get("level2_labels") or ()),
            taxonomy=canonical_taxonomy(data.get("taxonomy")), kind=data.get("kind", "skill"),
            alt_labels=tuple(data.get("alt_labels") or ()),
        )


#: Where a title point's link to an occupation comes from: one of ESCO's titles of the occupation, or an
#: example title labelled with it (:mod:`jobskills.title_examples`).
TITLE_ORIGINS = ("esco", "example")


@dataclass(frozen=True)
class TitlePayload:
    """One point of the titles index: a distinct title text (case-insensitive) and every occupation it names,
    with each occupation's label, ISCO group, whether the text is its preferred label and where the link comes
    from (``origins``: :data:`TITLE_ORIGINS`; an index from before example titles reads as all ``esco``), as
    parallel lists."""

    text: str
    occupations: tuple[str, ...] = ()
    occupation_labels: tuple[str, ...] = ()
    isco_groups: tuple[str, ...] = ()
    preferred: tuple[bool, ...] = ()
    taxonomy: str = DEFAULT_TAXONOMY
    kind: str = "title"
    origins: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {
            "text": self.text,
            "kind": self.kind,
            "occupations": list(self.occupations),
            "occupation_labels": list(self.occupation_labels),
            "isco_groups": list(self.isco_groups),
            "preferred": list(self.preferred),
            "taxonomy": self.taxonomy,
        }
        if any(o != "esco" for o in self.origins):  # an ESCO-only point is stored as before
            out["origins"] = list(self.origins)
        return out

    def origin(self, j: int) -> str:
        """Where the link to ``occupations[j]`` comes from (``esco`` for points stored without origins)."""
        return self.origins[j] if j < len(self.origins) else "esco"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TitlePayload":
        occupations = tuple(data.get("occupations") or ())

        def padded(key: str, empty: Any) -> tuple[Any, ...]:
            values = tuple(data.get(key) or ())
            return values + (empty,) * (len(occupations) - len(values))

        return cls(
            text=data.get("text", ""), occupations=occupations, occupation_labels=padded("occupation_labels", ""),
            isco_groups=padded("isco_groups", ""), preferred=padded("preferred", False),
            taxonomy=canonical_taxonomy(data.get("taxonomy")), kind=data.get("kind", "title"),
            origins=padded("origins", "esco"),
        )


def skill_points(
    esco: "Esco", limit: int | None = None, uris: Sequence[str] | None = None, labels: str = "preferred"
) -> list[tuple[str, SkillPayload]]:
    """(label text, payload) per index point. The preferred label, stripped, is always the skill's first
    point; with ``labels="all"`` each distinct alternative label follows as a point of the same skill."""
    if labels not in LABEL_MODES:
        raise StoreError(f"unknown label mode {labels!r}; choose one of {', '.join(LABEL_MODES)}")
    skills = [esco.skills[u] for u in uris] if uris is not None else list(esco.skills.values())
    if limit is not None:
        skills = skills[:limit]
    out = []
    for s in skills:
        texts = [s.label]
        alts = tuple(a.strip() for a in s.alt_labels if a.strip())
        if labels == "all":
            seen = {s.label.casefold()}
            for alt in s.alt_labels:
                alt = alt.strip()
                if alt and alt.casefold() not in seen:
                    seen.add(alt.casefold())
                    texts.append(alt)
        out.extend(
            (t, SkillPayload(uri=s.uri, label=s.label, text=t, skill_type=s.skill_type, reuse_level=s.reuse_level,
                             level2=tuple(g.uri for g in s.level2), level2_labels=tuple(g.label for g in s.level2),
                             taxonomy=esco.name, alt_labels=alts if k == 0 else ()))
            for k, t in enumerate(texts)
        )
    return out


def title_points(esco: "Esco", limit: int | None = None,
                 examples: Sequence[ExampleSet] = ()) -> list[tuple[str, TitlePayload]]:
    """(title text, payload) per distinct title text (case-insensitive); a title shared by several
    occupations is one point listing all of them, so equal vectors never tie against each other.

    ESCO's titles come first. Each example title (``examples``, whitespace collapsed) then joins the point of
    its text, adding its occupation with origin ``example`` when the point does not already name it, or
    becomes a new point; examples of occupations outside ``limit`` are left out."""
    occupations = list(esco.occupations.values())
    if limit is not None:
        occupations = occupations[:limit]
    keep = {o.uri for o in occupations}
    # casefolded text -> (first spelling, its (occupation, preferred, origin) entries)
    merged: dict[str, tuple[str, list[Any]]] = {}

    def add(text: str, uri: str, preferred: bool, origin: str) -> None:
        if uri not in keep:
            return
        _, entries = merged.setdefault(text.casefold(), (text, []))
        if all(occ.uri != uri for occ, _, _ in entries):
            entries.append((esco.occupations[uri], preferred, origin))

    for t in esco.titles:
        add(t.text, t.occupation_uri, t.preferred, "esco")
    for example_set in examples:
        for title, uri in example_set.pairs:
            add(normalise_title(title), uri, False, "example")
    return [
        (text, TitlePayload(
            text=text, occupations=tuple(o.uri for o, _, _ in entries),
            occupation_labels=tuple(o.label for o, _, _ in entries),
            isco_groups=tuple(o.isco_group for o, _, _ in entries), preferred=tuple(p for _, p, _ in entries),
            taxonomy=esco.name, origins=tuple(g for _, _, g in entries),
        ))
        for text, entries in merged.values()
    ]


# ---------------------------------------------------------------------------------------------------- manifest
#: Manifest keys written only when they have a value (titles' BM25 settings; ``calibrate``'s record).
_OPTIONAL = ("title_schema", "lexical", "title_examples", "calibrated_on")


@dataclass(frozen=True)
class Manifest:
    """What a finished index version records about itself, written last (a version without one is incomplete).

    Every field a build of this jobskills writes; an older index lacks some and reads them as None (or the
    stated default). Keys this class does not know are kept in ``extra`` and written back unchanged."""

    kind: str = "?"
    version: str | None = None
    model_path: str | None = None
    model_name: str | None = None
    model_fingerprint: str | None = None
    dim: Any = None  # kept as stored: a null or missing dim must read as a mismatch, never a TypeError
    normalized: bool = False
    max_tokens: int | None = None
    taxonomy: str | None = None  # as stored; :attr:`built_for` is the canonical name
    taxonomy_fingerprint: str | None = None
    esco_version: str | None = None  # ESCO's release for the built-in taxonomy, None for an imported one
    esco_fingerprint: str | None = None
    scorer_version: str | None = None
    score_config: dict[str, Any] | None = None
    threshold: float | None = None
    threshold_source: str | None = None
    count: int | None = None
    limit: int | None = None
    subset: bool = False
    labels: str | None = None  # skills only: a LABEL_MODES value
    model_training: dict[str, Any] | None = None
    skills: int | None = None  # skills only: distinct skills (points with label expansion exceed it)
    created_at: str | None = None
    jobskills_version: str | None = None
    engine: str | None = None
    title_schema: int | None = None  # titles only; see jobskills.store.TITLE_SCHEMA (missing = schema 1)
    lexical: dict[str, Any] | None = None  # titles only: the BM25 vector's name and settings
    #: titles only: the example-title sets it holds (``sets``: ExampleSet.to_dict each) and the occupation links
    #: they added (``links``); None for an index from before example titles or built with none
    title_examples: dict[str, Any] | None = None
    calibrated_on: dict[str, Any] | None = None  # set by `jobskills calibrate`
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def built_for(self) -> str:
        """The taxonomy the index holds, in today's spelling."""
        return canonical_taxonomy(self.taxonomy)

    @property
    def schema_of_titles(self) -> int:
        """The titles schema (1 for an index from before the key existed)."""
        return int(self.title_schema or 1)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        for key in _OPTIONAL:
            if out[key] is None:
                del out[key]
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Manifest":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        for key, default in (("kind", "?"), ("normalized", False), ("subset", False)):
            if values.get(key) is None:
                values[key] = default
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def calibrated(self, threshold: float, source: str, record: dict[str, Any]) -> "Manifest":
        """This manifest with a threshold from ``jobskills calibrate`` (and what it was measured on)."""
        return dataclasses.replace(self, threshold=threshold, threshold_source=source, calibrated_on=record)


def check_manifest(manifest: "Manifest | Mapping[str, Any]", encoder: Any, taxonomy: str | None = None) -> None:
    """Refuse an index that the loaded model cannot query correctly (``encoder``: its ``name``,
    ``fingerprint`` and ``dim``; ``taxonomy``: the one the caller asks for, None = any)."""
    from jobskills.scoring import SCORER_VERSION  # torch: not for `jobskills info`

    m = manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
    kind = m.kind
    if m.model_fingerprint != encoder.fingerprint:
        raise IndexMismatchError(
            f"the {kind} index was built with model {m.model_name} "
            f"(fingerprint {m.model_fingerprint}, {m.model_path}) but the loaded model is "
            f"{encoder.name} (fingerprint {encoder.fingerprint}); run `jobskills index` with this model, "
            "or pass --model with the one the index was built with"
        )
    if m.dim != encoder.dim:
        raise IndexMismatchError(
            f"the {kind} index has {m.dim}-d vectors but the model gives {encoder.dim}-d; run `jobskills index`"
        )
    if m.scorer_version != SCORER_VERSION:
        raise IndexMismatchError(
            f"the {kind} index was built for scorer {m.scorer_version}, this jobskills has {SCORER_VERSION}; "
            "run `jobskills index`"
        )
    built_for = m.built_for
    if built_for == DEFAULT_TAXONOMY and m.esco_version != ESCO_VERSION:
        raise IndexMismatchError(
            f"the {kind} index holds ESCO {m.esco_version}, this jobskills ships {ESCO_VERSION}; run `jobskills index`"
        )
    if taxonomy is not None and kind != "titles" and built_for != taxonomy:
        hint = "" if taxonomy == DEFAULT_TAXONOMY else f" --taxonomy {taxonomy}"
        raise IndexMismatchError(
            f"the {kind} index holds taxonomy {built_for!r}, not {taxonomy!r}; run `jobskills index{hint}`"
        )
