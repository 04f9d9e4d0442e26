"""One rebuild transaction: build new versions beside the live ones, smoke-test them, switch them together,
prune. ``jobskills index``, ``train`` and ``train-titles`` all rebuild through :class:`Rebuild`.

Until the switch every search reads the old versions; a failure anywhere (a build, a smoke query, an
interrupt) drops every version this transaction built and leaves the old ones live. The switch publishes
the kinds one right after the other, so a reader that follows the live versions (``serve``) never pairs a
new skills index with an old titles one for long.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Sequence

from jobskills.config import Settings
from jobskills.encoder import Encoder
from jobskills.esco import Esco
from jobskills.schema import Manifest
from jobskills.store import Store
from jobskills.taxonomy import skills_kind

from indexer.build import BuildReport, Progress, build_index, discard, publish_all

__all__ = ["Rebuild", "live_shape"]

logger = logging.getLogger(__name__)


def live_shape(store: Store, kind: str) -> dict[str, Any]:
    """How the live version of ``kind`` (a store kind: ``skills``, ``skills_<taxonomy>``, ``titles``) was built
    (a ``--limit``, a skill subset, its label mode, the titles' example sets), as :func:`indexer.build.build_index` options, so a rebuild
    with another model keeps that shape. Empty when nothing is live."""
    found = store.current_manifest(kind)
    if found is None:
        return {}
    version, stored = found
    manifest = Manifest.from_dict(stored)
    shape: dict[str, Any] = {}
    if manifest.limit:
        shape["limit"] = int(manifest.limit)
    if manifest.subset:
        shape["skill_uris"] = sorted({p["uri"] for _, p, _ in store.scroll(kind, version, with_mean=False)}, key=str)
    if manifest.labels and kind != "titles":
        shape["labels"] = manifest.labels
    if kind == "titles":  # the same example titles (none for an index from before them)
        sets = (manifest.title_examples or {}).get("sets") or []
        shape["title_examples"] = ",".join(str(e["name"]) for e in sets) or "none"
    return shape


class Rebuild:
    """Build beside, smoke-test, switch, prune, as one transaction over a store.

    Entering takes the home's build lock (a second builder fails at once, before a model is loaded). Each
    :meth:`build` writes and smoke-tests a new version of one kind without publishing it. Leaving normally
    publishes every built kind together and prunes to ``keep`` rollback copies; leaving on an exception drops
    every version built here, and the live index stays as it was. :attr:`report` says what was built.

    >>> with open_store(settings) as store, Rebuild(settings, store, esco) as rb:  # doctest: +SKIP
    ...     rb.build("skills", encoder, limit=100)
    ...     rb.build("titles", title_encoder, limit=100)
    """

    def __init__(self, settings: Settings, store: Store, esco: Esco, keep: int = 1, progress: Progress | None = None) -> None:
        self.settings = settings
        self.store = store
        self.esco = esco
        self.keep = keep
        self.progress = progress
        self.report = BuildReport()

    def __enter__(self) -> "Rebuild":
        self.store.writer()
        return self

    def build(self, kind: str, encoder: Encoder, *, limit: int | None = None, skill_uris: Sequence[str] | None = None,
              labels: str | None = None, threshold: float | None = None, title_examples: str | None = None) -> BuildReport:
        """Write, verify and finalize a new version of ``kind`` (``skills`` or ``titles``) with ``encoder``,
        unpublished; the options are :func:`indexer.build.build_index`'s."""
        built = build_index(self.settings, self.store, encoder, self.esco, kinds=(kind,), limit=limit, threshold=threshold,
                            keep=self.keep, progress=self.progress, skill_uris=skill_uris, labels=labels, publish=False,
                            title_examples=title_examples)
        self.report.merge(built)
        return built

    def build_like_live(self, kind: str, encoder: Encoder) -> BuildReport:
        """:meth:`build` in the shape of the live version of ``kind`` (:func:`live_shape`): a retrained model
        replaces the index it serves, not a bigger or smaller one."""
        store_kind = skills_kind(self.esco.name) if kind == "skills" else kind
        return self.build(kind, encoder, **live_shape(self.store, store_kind))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            discard(self.store, self.report)
            return
        publish_all(self.store, self.report, keep=self.keep)
