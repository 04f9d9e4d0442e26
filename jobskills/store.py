"""The Qdrant store: one factory, one collection schema, two engines behind one small interface.

- ``QDRANT_URL`` set: qdrant-client against a Qdrant server or cluster (collections + aliases).
- otherwise the embedded engine under ``<home>/index``: qdrant-edge-py (Qdrant's Rust engine in-process,
  the default), or qdrant-client local mode (``engine="local"``), or ``:memory:`` (tests).

Schema of every point (one per label text): the named multivector ``tokens`` (the label's token vectors,
special tokens kept, padding dropped; Cosine, MAX_SIM, no HNSW graph) and the named dense vector ``mean``
(the model's pooled label embedding kept *exactly*, so Dot distance: Cosine would re-normalise it), plus a
payload. Versions are written beside the live one and published by one atomic switch (an alias on
qdrant-client, an atomically replaced ``CURRENT`` file on edge), so readers never see a half-built index.

Many processes share one home. A published version never changes, so readers take no lock on it: on edge
each reader opens its own hard-linked view of the version's files and holds a shared lease that keeps
pruning away from it. Only builders exclude each other, through the home's build lock, taken by the first
call that writes (:meth:`Store.writer`) and held until :meth:`Store.close`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from jobskills.errors import StoreError, StoreLockedError
from jobskills.fileio import atomic_write_text
from jobskills.locks import BuildLock, Lease, exclusive, in_use

if TYPE_CHECKING:
    from jobskills.config import Settings

__all__ = ["TOKENS", "MEAN", "BM25", "TITLE_SCHEMA", "KINDS", "IndexPoint", "Hit", "Source", "Fusion", "Fused", "Store", "EdgeStore",
           "ClientStore", "open_store"]

logger = logging.getLogger(__name__)

TOKENS = "tokens"
MEAN = "mean"
BM25 = "bm25"  # the sparse BM25 vector of title points (jobskills.lexical); skills points have none
#: Titles index schema, recorded in its manifest: 1 = ``tokens`` + ``mean``; 2 = also the sparse ``bm25`` vector
#: (hybrid lexical + semantic title search). A manifest without the key is schema 1.
TITLE_SCHEMA = 2
KINDS = ("skills", "titles")
MANIFEST_KEY = "jobskills_manifest"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class IndexPoint:
    """One label to store. ``tokens (n_tokens, dim)``, ``mean (dim,)``."""

    id: int
    tokens: np.ndarray
    mean: np.ndarray
    payload: dict[str, Any]
    sparse: tuple[list[int], list[float]] | None = None  # BM25 (indices, values); stored only if created with sparse=True


@dataclass(frozen=True)
class Hit:
    id: int
    score: float
    payload: dict[str, Any] | None = None


@dataclass(frozen=True)
class Source:
    """One prefetch of a fused query: ``using`` names the vector (``tokens``, ``mean`` or ``bm25``);
    ``query`` is a token matrix, a dense vector, or sparse ``(indices, values)``."""

    name: str
    using: str
    query: Any
    limit: int


@dataclass(frozen=True)
class Fusion:
    """How the engine fuses the sources: ``rrf`` (sum over prefetches of 1 / (k + rank), rank from 0) or
    ``dbsf`` (each list's scores normalised by its mean +- 3 std, then summed). ``weights`` are Qdrant's own
    RRF weights (they scale ranks: 1 / (k + (rank + 1) / w - 1)) and need Qdrant >= 1.17 on a server; equal
    weights are sent as none, which 1.16 accepts. To weight a source linearly, pass it twice."""

    method: str = "rrf"
    k: int = 60
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Fused:
    """A fused ranking and, per source, its own list as ``{id: (rank from 1, score)}``: which evidence
    carried each hit."""

    hits: list[Hit]
    sources: dict[str, dict[int, tuple[int, float]]]


_KIND_RE = re.compile(r"^(skills|titles)(_[a-z0-9][a-z0-9-]{0,40})?$")  # skills_<taxonomy> for imported lists


def _check_version(kind: str, version: str) -> None:
    if not _KIND_RE.match(kind):
        raise StoreError(f"unknown collection kind {kind!r}; expected one of {KINDS} or skills_<taxonomy>")
    if not _VERSION_RE.match(version):
        raise StoreError(f"invalid version name {version!r}")


class Store(ABC):
    """What the indexer writes and the retriever reads. ``kind`` is ``skills`` or ``titles``."""

    engine: str = "?"
    location: str = "?"
    build_lock: BuildLock | None = None  # set by open_store for stores that live in a home

    def writer(self) -> None:
        """Every write goes through here: the first one takes the home's build lock (held until close), so a
        second builder fails at once, naming the first one's pid, before it has changed anything."""
        if self.build_lock is not None:
            self.build_lock.acquire()

    def hold(self, kind: str, version: str) -> None:
        """Keep ``version`` from being pruned while this store is open (a lease; a no-op where the engine
        cannot tell, e.g. a server, where pruning keeps one previous version)."""

    def in_use(self, kind: str, version: str) -> bool:
        """True while another open store holds ``version`` (see :meth:`hold`)."""
        return False

    def _release_build_lock(self) -> None:
        if self.build_lock is not None:
            self.build_lock.release()

    @abstractmethod
    def create(self, kind: str, version: str, dim: int, sparse: bool = False) -> None:
        """``sparse``: add the BM25 sparse vector (IDF applied by the engine), for title points."""

    @abstractmethod
    def upsert(self, kind: str, version: str, points: Sequence[IndexPoint]) -> None: ...

    @abstractmethod
    def finalize(self, kind: str, version: str, manifest: dict[str, Any]) -> None:
        """Make the version durable and record its manifest: after this it counts as complete."""

    @abstractmethod
    def count(self, kind: str, version: str) -> int: ...

    @abstractmethod
    def manifest(self, kind: str, version: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def all_versions(self, kind: str) -> list[str]:
        """Every version present, complete or not."""

    @abstractmethod
    def current(self, kind: str) -> str | None:
        """The published version, or None."""

    @abstractmethod
    def publish(self, kind: str, version: str) -> None:
        """Atomically make ``version`` the one readers open."""

    @abstractmethod
    def drop(self, kind: str, version: str) -> None: ...

    @abstractmethod
    def clear_current(self, kind: str) -> None:
        """Forget the live pointer of ``kind`` (after all its versions were dropped)."""

    @abstractmethod
    def scroll(self, kind: str, version: str, with_mean: bool = True) -> Iterator[tuple[int, dict[str, Any], np.ndarray | None]]:
        """Every point: ``(id, payload, mean vector or None)``."""

    @abstractmethod
    def query_maxsim(self, kind: str, version: str, tokens: np.ndarray, limit: int) -> list[Hit]:
        """Late interaction: sum over query tokens of the best cosine with the point's tokens; with payload."""

    @abstractmethod
    def query_mean(
        self, kind: str, version: str, queries: np.ndarray, limit: int, threshold: float | None = None,
        with_payload: bool = False,
    ) -> list[list[Hit]]:
        """One exact dot-product search on ``mean`` per query row (rows in order)."""

    def query_fused(self, kind: str, version: str, sources: Sequence[Source], fusion: Fusion, limit: int) -> Fused:
        """One fused query (a prefetch per source, fused by the engine), batched with each source alone so
        every hit can say which evidence carried it."""
        raise StoreError(f"the {self.engine} store cannot run fused queries")

    @abstractmethod
    def close(self) -> None: ...

    # ---- derived helpers, the same for every engine ----
    def versions(self, kind: str) -> list[str]:
        """Complete versions (with a manifest), oldest first."""
        found = []
        for v in self.all_versions(kind):
            m = self.manifest(kind, v)
            if m is not None:
                found.append((str(m.get("created_at", "")), v))
        return [v for _, v in sorted(found)]

    def current_manifest(self, kind: str) -> tuple[str, dict[str, Any]] | None:
        version = self.current(kind)
        if version is None:
            return None
        manifest = self.manifest(kind, version)
        if manifest is None:
            return None
        return version, manifest

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------- edge
class EdgeStore(Store):
    """qdrant-edge-py: ``<root>/<kind>/<version>/shard`` + ``manifest.json`` (written last) and an
    atomically replaced ``<root>/<kind>/CURRENT`` file naming the live version."""

    engine = "edge"

    def __init__(self, root: Path) -> None:
        try:
            import qdrant_edge  # noqa: F401
        except ImportError as exc:
            raise StoreError("qdrant-edge-py is not installed: pip install qdrant-edge-py==0.9.0, or use --engine local") from exc
        self.root = Path(root)
        self.location = str(self.root)
        self._shards: dict[tuple[str, str], Any] = {}
        self._leases: dict[tuple[str, str], Lease] = {}
        self._views: Path | None = None  # this store's private folder of reader views
        self._views_lease: Lease | None = None

    def _dir(self, kind: str, version: str) -> Path:
        _check_version(kind, version)
        return self.root / kind / version

    def _lease_path(self, kind: str, version: str) -> Path:
        return self._dir(kind, version) / "lease"

    def hold(self, kind: str, version: str) -> None:
        key = (kind, version)
        if key in self._leases:
            return
        if not self._dir(kind, version).is_dir():
            raise StoreError(f"index version {kind}/{version} is gone (pruned or rolled back); open the index again")
        lease = Lease(self._lease_path(kind, version))
        if self.manifest(kind, version) is None:  # dropped while we waited for the lease
            lease.release()
            raise StoreError(f"index version {kind}/{version} is gone (pruned or rolled back); open the index again")
        self._leases[key] = lease

    def in_use(self, kind: str, version: str) -> bool:
        if (kind, version) in self._leases:
            return True
        return in_use(self._lease_path(kind, version))

    def _view(self, kind: str, version: str) -> Path:
        """A private copy of a published version's shard for this store: hard links to its files (no data is
        copied; a legacy WAL folder is copied, since its lock would be shared through the links). The engine
        rewrites a few small files on open and close; here it does so in our folder, never in the version."""
        if self._views is None:
            base = self.root / ".readers"
            base.mkdir(parents=True, exist_ok=True)
            for old in base.iterdir():  # views of readers that died without closing
                if old.is_dir() and not in_use(old / "owner"):
                    shutil.rmtree(old, ignore_errors=True)
            import uuid

            self._views = base / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self._views.mkdir()
            self._views_lease = Lease(self._views / "owner")
        src = self._dir(kind, version) / "shard"
        dst = self._views / f"{kind}-{version}"
        if dst.exists():
            shutil.rmtree(dst)

        def link(a: str, b: str) -> None:
            try:
                os.link(a, b)
            except OSError:  # a filesystem without hard links
                shutil.copy2(a, b)

        for dirpath, _, files in os.walk(src):
            rel = Path(dirpath).relative_to(src)
            (dst / rel).mkdir(parents=True, exist_ok=True)
            for name in files:
                (shutil.copy2 if rel.parts[:1] == ("wal",) else link)(os.path.join(dirpath, name), str(dst / rel / name))
        return dst

    def _shard(self, kind: str, version: str) -> Any:
        key = (kind, version)
        if key not in self._shards:
            import qdrant_edge as qe

            path = self._dir(kind, version) / "shard"
            if not path.is_dir():
                raise StoreError(f"index version {kind}/{version} has no shard at {path}")
            if self.manifest(kind, version) is not None:  # published or complete: read through a view
                self.hold(kind, version)
                path = self._view(kind, version)
            try:
                self._shards[key] = qe.EdgeShard.load(str(path))
            except Exception as exc:
                if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                    raise StoreLockedError(
                        f"the index at {path} is in use by another process (Qdrant edge WAL lock); "
                        "stop it, or point JOBSKILLS_HOME elsewhere"
                    ) from exc
                raise StoreError(f"cannot open index shard {path}: {exc}") from exc
        return self._shards[key]

    def create(self, kind: str, version: str, dim: int, sparse: bool = False) -> None:
        import qdrant_edge as qe

        self.writer()
        path = self._dir(kind, version)
        if path.exists():
            raise StoreError(f"index version {kind}/{version} already exists")
        path.mkdir(parents=True)
        # no WAL: a version is written once by one builder and is complete only with its manifest (a killed
        # build leaves a manifest-less folder that the next build removes), and without a WAL there is no
        # per-directory lock for readers to trip over
        cfg = qe.EdgeConfig(
            wal_enabled=False,
            vectors={
                TOKENS: qe.EdgeVectorParams(
                    size=dim,
                    distance=qe.Distance.Cosine,
                    multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                    hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
                ),
                MEAN: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot),
            },
            sparse_vectors={BM25: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)} if sparse else None,
        )
        try:
            self._shards[(kind, version)] = qe.EdgeShard.create(str(path / "shard"), cfg)
        except Exception as exc:
            raise StoreError(f"cannot create index shard under {path}: {exc}") from exc

    def upsert(self, kind: str, version: str, points: Sequence[IndexPoint]) -> None:
        import qdrant_edge as qe

        self.writer()
        shard = self._shard(kind, version)
        ops = []
        for p in points:
            vector: dict[str, Any] = {TOKENS: np.ascontiguousarray(p.tokens, dtype=np.float32), MEAN: np.ascontiguousarray(p.mean, dtype=np.float32)}
            if p.sparse is not None:
                vector[BM25] = qe.SparseVector(indices=list(p.sparse[0]), values=list(p.sparse[1]))
            ops.append(qe.Point(id=p.id, vector=vector, payload=p.payload))
        try:
            shard.update(qe.UpdateOperation.upsert_points(ops))
        except Exception as exc:
            raise StoreError(f"writing to index {kind}/{version} failed: {exc}") from exc

    def finalize(self, kind: str, version: str, manifest: dict[str, Any]) -> None:
        self.writer()
        shard = self._shard(kind, version)
        try:
            shard.flush()
        except Exception as exc:
            raise StoreError(f"flushing index {kind}/{version} failed: {exc}") from exc
        _atomic_write(self._dir(kind, version) / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))

    def count(self, kind: str, version: str) -> int:
        import qdrant_edge as qe

        return int(self._shard(kind, version).count(qe.CountRequest(exact=True)))

    def manifest(self, kind: str, version: str) -> dict[str, Any] | None:
        path = self._dir(kind, version) / "manifest.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"index manifest {path} is unreadable: {exc}; rebuild with `jobskills index`") from exc

    def all_versions(self, kind: str) -> list[str]:
        _check_version(kind, "x")
        base = self.root / kind
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and _VERSION_RE.match(p.name))

    def current(self, kind: str) -> str | None:
        try:
            version = (self.root / kind / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return version or None

    def publish(self, kind: str, version: str) -> None:
        self.writer()
        if self.manifest(kind, version) is None:
            raise StoreError(f"refusing to publish incomplete index version {kind}/{version}")
        _atomic_write(self.root / kind / "CURRENT", version + "\n")

    def drop(self, kind: str, version: str) -> None:
        self.writer()
        shard = self._shards.pop((kind, version), None)
        if shard is not None:
            shard.close()
        own = self._leases.pop((kind, version), None)
        if own is not None:
            own.release()
        with exclusive(self._lease_path(kind, version)) as free:
            if not free:
                raise StoreLockedError(f"index version {kind}/{version} is in use by a running reader; it was kept")
            shutil.rmtree(self._dir(kind, version), ignore_errors=True)

    def clear_current(self, kind: str) -> None:
        self.writer()
        _check_version(kind, "x")
        (self.root / kind / "CURRENT").unlink(missing_ok=True)
        try:
            (self.root / kind).rmdir()
        except OSError:
            pass

    def scroll(self, kind: str, version: str, with_mean: bool = True) -> Iterator[tuple[int, dict[str, Any], np.ndarray | None]]:
        import qdrant_edge as qe

        shard = self._shard(kind, version)
        offset = None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=2048, with_payload=True, with_vector=[MEAN] if with_mean else False)
            )
            for r in records:
                vec = None
                if with_mean:
                    vec = np.asarray(r.vector[MEAN], dtype=np.float32)
                yield int(r.id), dict(r.payload or {}), vec
            if offset is None:
                break

    def query_maxsim(self, kind: str, version: str, tokens: np.ndarray, limit: int) -> list[Hit]:
        import qdrant_edge as qe

        res = self._shard(kind, version).query(
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(np.ascontiguousarray(tokens, dtype=np.float32), using=TOKENS),
                with_payload=True,
                params=qe.SearchParams(exact=True),
            )
        )
        return [Hit(int(p.id), float(p.score), dict(p.payload or {})) for p in res]

    def query_mean(self, kind: str, version: str, queries: np.ndarray, limit: int, threshold: float | None = None,
                   with_payload: bool = False) -> list[list[Hit]]:
        import qdrant_edge as qe

        reqs = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(np.ascontiguousarray(q, dtype=np.float32), using=MEAN),
                score_threshold=threshold,
                params=qe.SearchParams(exact=True),
                with_payload=with_payload,
            )
            for q in queries
        ]
        res = self._shard(kind, version).query_batch(qe.QueryBatchRequest(reqs))
        return [[Hit(int(p.id), float(p.score), dict(p.payload or {}) if with_payload else None) for p in row] for row in res]

    def query_fused(self, kind: str, version: str, sources: Sequence[Source], fusion: Fusion, limit: int) -> Fused:
        import qdrant_edge as qe

        def nearest(s: Source) -> Any:
            if s.using == BM25:
                return qe.Query.Nearest(qe.SparseVector(indices=list(s.query[0]), values=list(s.query[1])), using=BM25)
            return qe.Query.Nearest(np.ascontiguousarray(s.query, dtype=np.float32), using=s.using)

        exact = qe.SearchParams(exact=True)
        if fusion.method == "rrf":
            fuse: Any = qe.Fusion.Rrf(k=fusion.k, weights=list(fusion.weights) if fusion.weights else None)
        elif fusion.method == "dbsf":
            fuse = qe.Fusion.Dbsf()
        else:
            raise StoreError(f"unknown fusion {fusion.method!r}")
        reqs = [qe.QueryRequest(limit=limit, query=fuse, with_payload=True,
                                prefetches=[qe.Prefetch(limit=s.limit, query=nearest(s), params=exact) for s in sources])]
        alone = list({s.name: s for s in sources}.values())  # a source passed twice (a weight) is explained once
        reqs += [qe.QueryRequest(limit=s.limit, query=nearest(s), params=exact, with_payload=False) for s in alone]
        try:
            res = self._shard(kind, version).query_batch(qe.QueryBatchRequest(reqs))
        except Exception as exc:
            raise StoreError(f"fused query on {kind}/{version} failed: {exc}") from exc
        hits = [Hit(int(p.id), float(p.score), dict(p.payload or {})) for p in res[0]]
        lists = {s.name: {int(p.id): (rank, float(p.score)) for rank, p in enumerate(row, 1)} for s, row in zip(alone, res[1:])}
        return Fused(hits, lists)

    def close(self) -> None:
        for shard in self._shards.values():
            try:
                shard.close()
            except Exception:  # closing twice or after a failed write must not mask the real error
                logger.debug("closing an edge shard failed", exc_info=True)
        self._shards.clear()
        for lease in self._leases.values():
            lease.release()
        self._leases.clear()
        if self._views is not None:
            shutil.rmtree(self._views, ignore_errors=True)
            self._views = None
        if self._views_lease is not None:
            self._views_lease.release()
            self._views_lease = None
        self._release_build_lock()


def _atomic_write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc}") from exc


# ------------------------------------------------------------------------------------ qdrant-client
class ClientStore(Store):
    """qdrant-client: a server/cluster (``url``), local mode (``path``) or ``:memory:``.

    Collections are named ``<prefix>-<kind>-<version>``; the alias ``<prefix>-<kind>`` names the live one;
    the manifest lives in the collection's metadata, written last.
    """

    def __init__(
        self,
        location: str,
        prefix: str = "jobskills",
        api_key: str | None = None,
        shard_number: int = 1,
        replication_factor: int = 1,
        write_consistency_factor: int = 1,
        timeout: int = 30,
    ) -> None:
        from qdrant_client import QdrantClient

        self.prefix = prefix
        self.location = location
        self.remote = location.startswith(("http://", "https://"))
        self.engine = "server" if self.remote else ("memory" if location == ":memory:" else "local")
        self._collection_kwargs = (
            dict(shard_number=shard_number, replication_factor=replication_factor, write_consistency_factor=write_consistency_factor)
            if self.remote
            else {}
        )
        try:
            if self.remote:
                self.client = QdrantClient(url=location, api_key=api_key, timeout=timeout, check_compatibility=False)
                self.client.get_collections()  # fail fast, naming the URL
            elif location == ":memory:":
                self.client = QdrantClient(location=":memory:")
            else:
                Path(location).mkdir(parents=True, exist_ok=True)
                self.client = QdrantClient(path=location)
        except Exception as exc:
            text = str(exc)
            if "already accessed by another instance" in text:
                raise StoreLockedError(
                    f"the local Qdrant store at {location} is in use by another process; stop it or use another JOBSKILLS_HOME"
                ) from exc
            if self.remote:
                raise StoreError(f"cannot reach the Qdrant server at {location}: {type(exc).__name__}: {text}") from exc
            raise StoreError(f"cannot open the Qdrant store at {location}: {text}") from exc

    def _name(self, kind: str, version: str) -> str:
        _check_version(kind, version)
        return f"{self.prefix}-{kind}-{version}"

    def _alias(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    def create(self, kind: str, version: str, dim: int, sparse: bool = False) -> None:
        self.writer()
        from qdrant_client import models

        name = self._name(kind, version)
        if self.client.collection_exists(name):
            raise StoreError(f"collection {name} already exists")
        self.client.create_collection(
            name,
            vectors_config={
                TOKENS: models.VectorParams(
                    size=dim,
                    distance=models.Distance.COSINE,
                    multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
                    hnsw_config=models.HnswConfigDiff(m=0),
                ),
                MEAN: models.VectorParams(size=dim, distance=models.Distance.DOT),
            },
            sparse_vectors_config={BM25: models.SparseVectorParams(modifier=models.Modifier.IDF)} if sparse else None,
            **self._collection_kwargs,
        )

    def upsert(self, kind: str, version: str, points: Sequence[IndexPoint]) -> None:
        self.writer()
        from qdrant_client import models

        try:
            self.client.upsert(
                self._name(kind, version),
                points=[
                    models.PointStruct(id=p.id, vector=self._vectors(p), payload=p.payload)
                    for p in points
                ],
                wait=True,
            )
        except Exception as exc:
            raise StoreError(f"writing to collection {self._name(kind, version)} failed: {exc}") from exc

    @staticmethod
    def _vectors(p: IndexPoint) -> dict[str, Any]:
        from qdrant_client import models

        out: dict[str, Any] = {TOKENS: np.asarray(p.tokens, dtype=np.float32).tolist(), MEAN: np.asarray(p.mean, dtype=np.float32).tolist()}
        if p.sparse is not None:
            out[BM25] = models.SparseVector(indices=list(p.sparse[0]), values=list(p.sparse[1]))
        return out

    def finalize(self, kind: str, version: str, manifest: dict[str, Any]) -> None:
        self.writer()
        self.client.update_collection(self._name(kind, version), metadata={MANIFEST_KEY: manifest})

    def count(self, kind: str, version: str) -> int:
        return int(self.client.count(self._name(kind, version), exact=True).count)

    def manifest(self, kind: str, version: str) -> dict[str, Any] | None:
        name = self._name(kind, version)
        if not self.client.collection_exists(name):
            return None
        meta = self.client.get_collection(name).config.metadata or {}
        found = meta.get(MANIFEST_KEY)
        return dict(found) if found else None

    def all_versions(self, kind: str) -> list[str]:
        head = f"{self.prefix}-{kind}-"
        return sorted(c.name[len(head):] for c in self.client.get_collections().collections if c.name.startswith(head))

    def current(self, kind: str) -> str | None:
        alias = self._alias(kind)
        for a in self.client.get_aliases().aliases:
            if a.alias_name == alias:
                head = f"{self.prefix}-{kind}-"
                return a.collection_name[len(head):] if a.collection_name.startswith(head) else None
        return None

    def publish(self, kind: str, version: str) -> None:
        self.writer()
        from qdrant_client import models

        if self.manifest(kind, version) is None:
            raise StoreError(f"refusing to publish incomplete collection {self._name(kind, version)}")
        alias = self._alias(kind)
        ops: list[Any] = []
        if self.current(kind) is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=self._name(kind, version), alias_name=alias)))
        self.client.update_collection_aliases(change_aliases_operations=ops)  # one atomic request

    def drop(self, kind: str, version: str) -> None:
        self.writer()
        self.client.delete_collection(self._name(kind, version))

    def clear_current(self, kind: str) -> None:
        self.writer()
        from qdrant_client import models

        if self.current(kind) is not None:
            self.client.update_collection_aliases(change_aliases_operations=[
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self._alias(kind)))])

    def scroll(self, kind: str, version: str, with_mean: bool = True) -> Iterator[tuple[int, dict[str, Any], np.ndarray | None]]:
        offset = None
        name = self._name(kind, version)
        while True:
            records, offset = self.client.scroll(name, limit=2048, offset=offset, with_payload=True, with_vectors=[MEAN] if with_mean else False)
            for r in records:
                vec = np.asarray(r.vector[MEAN], dtype=np.float32) if with_mean else None  # type: ignore[index]
                yield int(r.id), dict(r.payload or {}), vec
            if offset is None:
                break

    def query_maxsim(self, kind: str, version: str, tokens: np.ndarray, limit: int) -> list[Hit]:
        from qdrant_client import models

        res = self.client.query_points(
            self._name(kind, version),
            query=np.asarray(tokens, dtype=np.float32).tolist(),
            using=TOKENS,
            limit=limit,
            with_payload=True,
            search_params=models.SearchParams(exact=True) if self.remote else None,
        )
        return [Hit(int(p.id), float(p.score), dict(p.payload or {})) for p in res.points]

    def query_mean(self, kind: str, version: str, queries: np.ndarray, limit: int, threshold: float | None = None,
                   with_payload: bool = False) -> list[list[Hit]]:
        from qdrant_client import models

        reqs = [
            models.QueryRequest(
                query=np.asarray(q, dtype=np.float32).tolist(),
                using=MEAN,
                limit=limit,
                score_threshold=threshold,
                with_payload=with_payload,
                params=models.SearchParams(exact=True) if self.remote else None,
            )
            for q in queries
        ]
        res = self.client.query_batch_points(self._name(kind, version), requests=reqs)
        return [[Hit(int(p.id), float(p.score), dict(p.payload or {}) if with_payload else None) for p in r.points] for r in res]

    def query_fused(self, kind: str, version: str, sources: Sequence[Source], fusion: Fusion, limit: int) -> Fused:
        from qdrant_client import models

        def query(s: Source) -> Any:
            if s.using == BM25:
                return models.SparseVector(indices=list(s.query[0]), values=list(s.query[1]))
            return np.asarray(s.query, dtype=np.float32).tolist()

        params = models.SearchParams(exact=True) if self.remote else None
        if fusion.method == "rrf":
            fuse: Any = (models.RrfQuery(rrf=models.Rrf(k=fusion.k, weights=list(fusion.weights)))  # Qdrant >= 1.17
                         if fusion.weights and len(set(fusion.weights)) > 1 else models.RrfQuery(rrf=models.Rrf(k=fusion.k)))
        elif fusion.method == "dbsf":
            fuse = models.FusionQuery(fusion=models.Fusion.DBSF)
        else:
            raise StoreError(f"unknown fusion {fusion.method!r}")
        prefetch = [models.Prefetch(query=query(s), using=s.using, limit=s.limit, params=params) for s in sources]
        reqs = [models.QueryRequest(query=fuse, prefetch=prefetch, limit=limit, with_payload=True)]
        alone = list({s.name: s for s in sources}.values())  # a source passed twice (a weight) is explained once
        reqs += [models.QueryRequest(query=query(s), using=s.using, limit=s.limit, params=params, with_payload=False) for s in alone]
        try:
            res = self.client.query_batch_points(self._name(kind, version), requests=reqs)
        except Exception as exc:
            raise StoreError(f"fused query on {self._name(kind, version)} failed: {exc}") from exc
        hits = [Hit(int(p.id), float(p.score), dict(p.payload or {})) for p in res[0].points]
        lists = {s.name: {int(p.id): (rank, float(p.score)) for rank, p in enumerate(r.points, 1)} for s, r in zip(alone, res[1:])}
        return Fused(hits, lists)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            logger.debug("closing the Qdrant client failed", exc_info=True)
        self._release_build_lock()


def open_store(settings: "Settings") -> Store:
    """The one factory: ``QDRANT_URL`` -> server; else the embedded engine chosen by ``settings.engine``.

    Every store but ``memory`` carries the home's build lock (``<home>/index/.build.lock``): with a server,
    it keeps builders that share this home apart; builders on other machines must coordinate themselves."""
    store: Store
    if settings.qdrant_url:
        store = ClientStore(
            settings.qdrant_url,
            prefix=settings.prefix,
            api_key=settings.qdrant_api_key,
            shard_number=settings.shard_number,
            replication_factor=settings.replication_factor,
            write_consistency_factor=settings.write_consistency_factor,
        )
    elif settings.engine == "memory":
        return ClientStore(":memory:", prefix=settings.prefix)
    elif settings.engine == "local":
        store = ClientStore(str(settings.index_dir / "qdrant-local"), prefix=settings.prefix)
    else:
        store = EdgeStore(settings.index_dir / "edge")
    store.build_lock = BuildLock(settings.index_dir / ".build.lock", str(settings.home))
    return store
