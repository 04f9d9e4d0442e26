"""Build a versioned index of ESCO skills and job titles, then publish it in one atomic switch.

Rebuild = write new versions beside the live ones, verify count and a smoke query, record the manifest
(last), switch ``current``, keep the previous version for ``--rollback`` and drop older ones. A kill at any
point leaves the previous index serving; manifest-less leftovers are removed by the next build.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from jobskills import __version__
from jobskills.config import Settings
from jobskills.encoder import Encoder
from jobskills.errors import IndexNotFoundError, StoreError, StoreLockedError
from jobskills.esco import Esco, load_esco
from jobskills.modelconfig import load_model_config
from jobskills.schema import LABEL_MODES, Manifest, SkillPayload, TitlePayload, skill_points, title_points
from jobskills.scoring import SCORER_VERSION
from jobskills.store import BM25, KINDS, TITLE_SCHEMA, IndexPoint, Store
from jobskills.taxonomy import DEFAULT_TAXONOMY, skills_kind
from jobskills.threshold import index_threshold
from jobskills.title_examples import ExampleSet, load_title_examples

if TYPE_CHECKING:
    from jobskills.lexical import Bm25Encoder

__all__ = ["BuildReport", "LABEL_MODES", "build_index", "skill_items", "title_items", "rollback", "index_items"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class BuildReport:
    versions: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    previous: dict[str, str | None] = field(default_factory=dict)
    threshold: float | None = None

    def merge(self, other: "BuildReport") -> None:
        """Fold another build's kinds into this report (kinds built by separate calls, e.g. another model)."""
        for name in ("versions", "counts", "seconds", "previous"):
            getattr(self, name).update(getattr(other, name))
        self.dropped += other.dropped
        if self.threshold is None:  # the first build's (the skills model's) threshold stays the report's
            self.threshold = other.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "counts": self.counts,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "previous": self.previous,
            "dropped": self.dropped,
            "threshold": self.threshold,
        }


def skill_items(
    esco: Esco, limit: int | None = None, uris: Sequence[str] | None = None, labels: str = "preferred"
) -> list[tuple[str, dict[str, Any]]]:
    """(label text, payload dict) per index point: :func:`jobskills.schema.skill_points` as stored."""
    return [(t, p.to_dict()) for t, p in skill_points(esco, limit, uris, labels)]


def title_items(esco: Esco, limit: int | None = None,
                examples: Sequence[ExampleSet] = ()) -> list[tuple[str, dict[str, Any]]]:
    """(title text, payload dict) per title point: :func:`jobskills.schema.title_points` as stored."""
    return [(t, p.to_dict()) for t, p in title_points(esco, limit, examples)]


def _examples_record(examples: Sequence[ExampleSet], points: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """What a titles manifest says of its example titles: the sets, and the occupation links they added."""
    links = sum(p.origins.count("example") for _, p in points if isinstance(p, TitlePayload))
    return {"sets": [e.to_dict() for e in examples], "links": links}


def training_summary(extra: dict[str, Any]) -> dict[str, Any] | None:
    """What a fine-tuned model's folder says of its training, in brief (None for a model trained elsewhere)."""
    if not extra.get("base_model_name"):
        return None
    after = (extra.get("metrics") or {}).get("after") or {}
    return {
        "base": extra.get("base_model_name"),
        "data_fingerprint": (extra.get("data") or {}).get("fingerprint"),
        "steps": extra.get("steps"),
        "trained_at": extra.get("trained_at"),
        "dev": {k: round(float(v), 4) for k, v in after.items() if k in ("rp@1", "rp@5", "rp@10", "mrr")},
        "dev_set": (extra.get("calibrated_on") or {}).get("file") or (extra.get("training") or {}).get("dev"),
    }


def _new_version(fingerprint: str, esco: Esco) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    name = esco.name.replace(".", "")
    return f"{fingerprint[:10]}-{name}-{esco.fingerprint[:6]}-{stamp}"


def remove_incomplete(store: Store, kind: str) -> list[str]:
    """Delete versions without a manifest (left by a killed build); never the live one."""
    live = store.current(kind)
    dropped = []
    for v in store.all_versions(kind):
        if v != live and store.manifest(kind, v) is None:
            store.drop(kind, v)
            dropped.append(f"{kind}/{v}")
            logger.info("removed incomplete index version %s/%s", kind, v)
    return dropped


def index_items(
    store: Store,
    kind: str,
    version: str,
    items: Sequence[tuple[str, dict[str, Any]]],
    encoder: Encoder,
    batch_size: int = 64,
    progress: Progress | None = None,
    lexical: "Bm25Encoder | None" = None,
) -> None:
    """Encode ``items`` and upsert them as points ``0..n-1`` of a created version (``lexical``: also each
    text's BM25 sparse vector, for a version created with ``sparse=True``)."""
    texts = [t for t, _ in items]
    done = 0
    for idx, enc in encoder.iter_encode(texts, batch_size=batch_size):
        tokens = enc.tokens.cpu().numpy()
        mask = enc.mask.cpu().numpy()
        pooled = enc.pooled.cpu().numpy()
        points = [
            IndexPoint(id=i, tokens=tokens[row][mask[row]], mean=pooled[row], payload=items[i][1],
                       sparse=lexical.document(texts[i]) if lexical is not None else None)
            for row, i in enumerate(idx)
        ]
        store.upsert(kind, version, points)
        done += len(points)
        if progress:
            progress(kind, done, len(texts))


def build_index(
    settings: Settings,
    store: Store,
    encoder: Encoder,
    esco: Esco | None = None,
    kinds: Sequence[str] = KINDS,
    limit: int | None = None,
    threshold: float | None = None,
    keep: int = 1,
    progress: Progress | None = None,
    skill_uris: Sequence[str] | None = None,
    publish: bool = True,
    labels: str | None = None,
    title_examples: str | None = None,
) -> BuildReport:
    """Build and publish new versions of ``kinds``.

    Args:
        limit: index only the first N skills / occupations (tests, quick trials).
        skill_uris: index only these skills (a slice of the taxonomy).
        threshold: stored in the manifest; default: the model's calibrated or packaged threshold.
        keep: previous complete versions kept for rollback (older ones are dropped).
        labels: ``preferred`` (a point per skill) or ``all`` (label expansion, see :func:`skill_items`);
            default: the model config's ``labels`` (chosen on the dev set with the model), else ``preferred``.
        title_examples: the example-title sets of the titles index, as the ``title_examples`` setting
            (:mod:`jobskills.title_examples`); default: the settings' value.
        publish: False builds and finalizes every kind without switching any alias; :func:`publish_all`
            then switches them one right after the other (the trainer's path: nothing changes for
            searches until every new collection is complete and smoke-tested).
    """
    esco = esco or load_esco()
    taxonomy = esco.name
    model_cfg = load_model_config(encoder.path, encoder.fingerprint, settings.home, taxonomy)
    chosen = index_threshold(threshold, model_cfg)
    report = BuildReport(threshold=chosen.value)
    labels = labels or str(model_cfg.extra.get("labels") or "preferred")
    for base_kind in kinds:
        if base_kind not in KINDS:
            raise StoreError(f"unknown index kind {base_kind!r}")
        if base_kind == "titles" and taxonomy != DEFAULT_TAXONOMY:
            raise StoreError(f"taxonomy {taxonomy} has no job titles; index it with --only skills")
        kind = skills_kind(taxonomy) if base_kind == "skills" else base_kind
        started = time.perf_counter()
        report.dropped += remove_incomplete(store, kind)
        skills = skill_points(esco, limit, skill_uris, labels) if base_kind == "skills" else []
        spec = title_examples if title_examples is not None else settings.title_examples
        examples = load_title_examples(spec, esco.occupations) if base_kind == "titles" else []
        points: Sequence[tuple[str, SkillPayload | TitlePayload]] = (
            skills if base_kind == "skills" else title_points(esco, limit, examples))
        items = [(t, p.to_dict()) for t, p in points]  # what the store holds: the payloads as dicts
        if not items:
            raise StoreError(f"nothing to index for {kind}")
        version = _new_version(encoder.fingerprint, esco)
        logger.info("building %s/%s: %d points", kind, version, len(items))
        lexical = None
        if base_kind == "titles":  # titles carry a BM25 vector beside the dense ones (hybrid title search)
            from jobskills.lexical import Bm25Encoder

            lexical = Bm25Encoder.fitted([t for t, _ in items])
        store.create(kind, version, encoder.dim, sparse=lexical is not None)
        try:
            index_items(store, kind, version, items, encoder, settings.batch_size, progress, lexical=lexical)
            n = store.count(kind, version)
            if n != len(items):
                raise StoreError(f"index {kind}/{version} holds {n} points, expected {len(items)}")
            _smoke_query(store, kind, version, items, encoder, lexical)
        except BaseException:
            # leave no half-built version behind; the live one was never touched
            logger.error("build of %s/%s failed; the previous index stays live", kind, version)
            try:
                store.drop(kind, version)
            except Exception:  # pragma: no cover - best effort, the next build also cleans up
                logger.debug("could not drop the failed version", exc_info=True)
            raise
        manifest = Manifest(
            kind=kind,
            version=version,
            model_path=encoder.path,
            model_name=encoder.name,
            model_fingerprint=encoder.fingerprint,
            dim=encoder.dim,
            normalized=encoder.normalized,
            max_tokens=encoder.max_tokens,
            taxonomy=taxonomy,
            taxonomy_fingerprint=esco.fingerprint,
            esco_version=esco.version if taxonomy == DEFAULT_TAXONOMY else None,
            esco_fingerprint=esco.fingerprint,
            scorer_version=SCORER_VERSION,
            score_config=model_cfg.score.to_dict(),
            threshold=report.threshold,
            threshold_source=chosen.source,
            count=n,
            limit=limit,
            subset=skill_uris is not None and base_kind == "skills",
            labels=labels if base_kind == "skills" else None,
            model_training=training_summary(model_cfg.extra),
            skills=len({p.uri for _, p in skills}) if base_kind == "skills" else None,
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(),
            jobskills_version=__version__,
            engine=store.engine,
            title_schema=TITLE_SCHEMA if lexical is not None else None,
            lexical={"vector": BM25, "model": "bm25", "modifier": "idf", "bm25": lexical.settings.to_dict()}
            if lexical is not None else None,
            title_examples=_examples_record(examples, points) if examples else None,
        ).to_dict()
        store.finalize(kind, version, manifest)
        report.previous[kind] = store.current(kind)
        report.versions[kind] = version
        report.counts[kind] = n
        if publish:
            store.publish(kind, version)
            report.dropped += prune(store, kind, keep)
        report.seconds[kind] = time.perf_counter() - started
        logger.info("%s %s/%s (%d points, %.1f s)", "published" if publish else "built", kind, version, n, report.seconds[kind])
    return report


def publish_all(store: Store, report: BuildReport, keep: int = 1) -> None:
    """Switch every alias of an unpublished build (``build_index(publish=False)``), then prune old versions."""
    for kind, version in report.versions.items():
        store.publish(kind, version)
        logger.info("published %s/%s", kind, version)
    for kind in report.versions:
        report.dropped += prune(store, kind, keep)


def discard(store: Store, report: BuildReport) -> None:
    """Drop the versions of an unpublished build (a failed or abandoned retrain); the live index is untouched."""
    for kind, version in report.versions.items():
        if store.current(kind) != version:
            store.drop(kind, version)
            logger.info("discarded unpublished %s/%s", kind, version)


def _smoke_query(store: Store, kind: str, version: str, items: Sequence[tuple[str, dict[str, Any]]], encoder: Encoder,
                 lexical: "Bm25Encoder | None" = None) -> None:
    """The first label must find itself: proves vectors and payload landed and are searchable (and, with
    ``lexical``, that its BM25 vector landed: its own words find it among the best lexical hits)."""
    enc = encoder.encode([items[0][0]])
    hits = store.query_maxsim(kind, version, enc.token_rows(0).cpu().numpy(), limit=3)
    if not hits or hits[0].payload is None:
        raise StoreError(f"smoke query on {kind}/{version} returned nothing")
    if not np.isclose(hits[0].score, int(enc.mask[0].sum()), atol=1e-3):
        raise StoreError(f"smoke query on {kind}/{version}: label did not find itself (score {hits[0].score:.3f})")
    if lexical is not None:
        from jobskills.store import Fusion, Source

        words = lexical.query(items[0][0])
        if words[0]:
            found = store.query_fused(kind, version, [Source("lexical", BM25, words, 10)], Fusion(), limit=10)
            best = found.sources["lexical"]
            top = max((s for _, s in best.values()), default=0.0)
            if 0 not in best or best[0][1] < top - 1e-6:
                raise StoreError(f"smoke query on {kind}/{version}: the BM25 vector of {items[0][0]!r} did not find it")


def prune(store: Store, kind: str, keep: int) -> list[str]:
    """Drop complete versions older than the live one beyond ``keep`` rollback copies."""
    live = store.current(kind)
    complete = store.versions(kind)
    if live not in complete:
        return []
    older = complete[: complete.index(live)]
    dropped = []
    for v in older[: max(0, len(older) - keep)]:
        if store.in_use(kind, v):  # a running reader (serve, a long extract) still answers from it
            logger.info("kept old index version %s/%s: a running reader holds it; a later build drops it", kind, v)
            continue
        try:
            store.drop(kind, v)
        except StoreLockedError:  # a reader took it between the check and the drop
            logger.info("kept old index version %s/%s: a running reader holds it", kind, v)
            continue
        dropped.append(f"{kind}/{v}")
        logger.info("dropped old index version %s/%s", kind, v)
    return dropped


def rollback(store: Store, kinds: Sequence[str] = KINDS) -> dict[str, tuple[str, str]]:
    """Publish the complete version before the live one; returns ``{kind: (from, to)}``."""
    moved = {}
    for kind in kinds:
        live = store.current(kind)
        complete = store.versions(kind)
        if live is None or live not in complete or complete.index(live) == 0:
            if live is None:
                continue
            raise IndexNotFoundError(f"no previous {kind} index to roll back to (live: {live})")
        target = complete[complete.index(live) - 1]
        store.publish(kind, target)
        moved[kind] = (live, target)
        logger.info("rolled %s back from %s to %s", kind, live, target)
    return moved


def record_threshold(store: Store, kind: str, version: str, threshold: float, source: str,
                     record: dict[str, Any]) -> dict[str, Any]:
    """The one write to a finished version: ``calibrate`` records its threshold (and what it was measured on) in
    the manifest, under the home's build lock. Vectors and payloads never change; a server that has the version
    open keeps its threshold until it reloads. Returns the new manifest."""
    manifest = store.manifest(kind, version)
    if manifest is None:
        raise IndexNotFoundError(f"index version {kind}/{version} is gone; open the index again")
    manifest = Manifest.from_dict(manifest).calibrated(threshold, source, record).to_dict()
    store.finalize(kind, version, manifest)
    return manifest
