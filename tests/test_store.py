"""Store behaviour on both embedded engines: versions, atomic publish, cleanup, congruence."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from jobskills.config import load_settings
from jobskills.errors import IndexMismatchError, StoreError, StoreLockedError
from jobskills.store import IndexPoint, open_store

pytestmark = pytest.mark.integration


def _points(n, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        toks = rng.normal(size=(3 + i % 4, dim)).astype(np.float32)
        mean = toks.mean(0)
        out.append(IndexPoint(i, toks, mean / np.linalg.norm(mean), {"uri": f"u{i}", "label": f"label {i}"}))
    return out


@pytest.fixture(params=["edge", "memory", "local"])
def store(request, tmp_path):
    s = open_store(load_settings({"home": tmp_path, "engine": request.param}, env={}))
    yield s
    s.close()


def test_version_lifecycle(store):
    assert store.current("skills") is None and store.current_manifest("skills") is None
    store.create("skills", "v1", 8)
    store.upsert("skills", "v1", _points(20))
    with pytest.raises(StoreError, match="incomplete"):
        store.publish("skills", "v1")
    store.finalize("skills", "v1", {"created_at": "1", "count": 20})
    store.publish("skills", "v1")
    assert store.current("skills") == "v1" and store.count("skills", "v1") == 20
    # a second version under construction leaves v1 live and readable
    store.create("skills", "v2", 8)
    store.upsert("skills", "v2", _points(5, seed=1))
    assert store.current("skills") == "v1"
    assert store.versions("skills") == ["v1"] and set(store.all_versions("skills")) == {"v1", "v2"}
    ids = {pid for pid, _, _ in store.scroll("skills", store.current("skills"))}
    assert ids == set(range(20))
    store.finalize("skills", "v2", {"created_at": "2", "count": 5})
    store.publish("skills", "v2")
    assert store.current("skills") == "v2" and store.versions("skills") == ["v1", "v2"]
    store.drop("skills", "v1")
    assert store.versions("skills") == ["v2"]


def test_engines_agree(tmp_path):
    """Congruence: the same points and queries give the same ids and scores on every engine."""
    pts = _points(60)
    rng = np.random.default_rng(5)
    q_tokens = rng.normal(size=(4, 8)).astype(np.float32)
    results = {}
    for engine in ("edge", "memory"):
        with open_store(load_settings({"home": tmp_path / engine, "engine": engine}, env={})) as st:
            st.create("titles", "v1", 8)
            st.upsert("titles", "v1", pts)
            st.finalize("titles", "v1", {"created_at": "x"})
            ms = st.query_maxsim("titles", "v1", q_tokens, limit=10)
            qm = st.query_mean("titles", "v1", q_tokens, limit=100, threshold=0.2)
            results[engine] = ([h.id for h in ms], [h.score for h in ms], [sorted(h.id for h in row) for row in qm])
    a, b = results["edge"], results["memory"]
    assert a[0] == b[0]
    np.testing.assert_allclose(a[1], b[1], atol=1e-4)
    assert a[2] == b[2]


def _publish_v(store, version, n=3, seed=0, created="1"):
    store.create("skills", version, 8)
    store.upsert("skills", version, _points(n, seed=seed))
    store.finalize("skills", version, {"created_at": created})
    store.publish("skills", version)


def test_edge_readers_share_a_home_while_builders_exclude_each_other(tmp_path):
    """Issue 16.3/16.4: readers take no lock on a published version; a second builder fails at once, naming
    the first one's pid, and can build once the first has closed."""
    settings = load_settings({"home": tmp_path, "engine": "edge"}, env={})
    with open_store(settings) as builder:
        _publish_v(builder, "v1")
        assert builder.count("skills", "v1") == 3
        with open_store(settings) as reader1, open_store(settings) as reader2:
            assert reader1.count("skills", "v1") == 3 and reader2.count("skills", "v1") == 3
            assert [h.id for h in reader2.query_mean("skills", "v1", _points(1)[0].mean[None], limit=1)[0]] == [0]
        with open_store(settings) as second:
            with pytest.raises(StoreLockedError, match=rf"another build of .* is running \(pid {os.getpid()},"):
                second.create("skills", "v2", 8)
            assert second.all_versions("skills") == ["v1"]  # refused before it changed anything
    with open_store(settings) as second:
        _publish_v(second, "v2", created="2")
        assert second.current("skills") == "v2"


def test_edge_read_from_another_process_while_this_one_reads(tmp_path):
    """A real second process opens and queries the version this process has open."""
    settings = load_settings({"home": tmp_path, "engine": "edge"}, env={})
    with open_store(settings) as builder:
        _publish_v(builder, "v1", n=5)
    with open_store(settings) as reader:
        assert reader.count("skills", "v1") == 5
        code = (
            "import sys; from jobskills.config import load_settings; from jobskills.store import open_store\n"
            f"s = open_store(load_settings({{'home': {str(tmp_path)!r}, 'engine': 'edge'}}, env={{}}))\n"
            "print(s.count('skills', 'v1')); s.close()"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "5"
        assert reader.count("skills", "v1") == 5
    assert not list((tmp_path / "index" / "edge" / ".readers").iterdir())  # views are removed on close


def test_prune_keeps_a_version_a_reader_holds(tmp_path):
    """Issue 16.5: an index beside a running reader never deletes the version that reader answers from."""
    from indexer.build import prune

    settings = load_settings({"home": tmp_path, "engine": "edge"}, env={})
    with open_store(settings) as builder:
        _publish_v(builder, "v1")
    reader = open_store(settings)
    assert reader.count("skills", "v1") == 3
    with open_store(settings) as builder:
        _publish_v(builder, "v2", created="2")
        assert builder.in_use("skills", "v1")
        assert prune(builder, "skills", keep=0) == []
        assert builder.versions("skills") == ["v1", "v2"]
        with pytest.raises(StoreLockedError, match="in use by a running reader"):
            builder.drop("skills", "v1")
        assert reader.count("skills", "v1") == 3  # still answering
        reader.close()
        assert not builder.in_use("skills", "v1")
        assert prune(builder, "skills", keep=0) == ["skills/v1"]
        assert builder.versions("skills") == ["v2"]


def test_a_legacy_wal_version_is_readable_by_two_stores(tmp_path):
    """Versions built before the WAL was turned off still open in several readers at once."""
    import qdrant_edge as qe

    settings = load_settings({"home": tmp_path, "engine": "edge"}, env={})
    shard_dir = tmp_path / "index" / "edge" / "skills" / "old" / "shard"
    shard_dir.parent.mkdir(parents=True)
    cfg = qe.EdgeConfig(vectors={"tokens": qe.EdgeVectorParams(size=8, distance=qe.Distance.Cosine,
                                                              multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)),
                                 "mean": qe.EdgeVectorParams(size=8, distance=qe.Distance.Dot)})
    shard = qe.EdgeShard.create(str(shard_dir), cfg)
    shard.update(qe.UpdateOperation.upsert_points([qe.Point(id=p.id, vector={"tokens": p.tokens, "mean": p.mean}, payload=p.payload)
                                                   for p in _points(4)]))
    shard.flush()
    shard.close()
    (shard_dir.parent / "manifest.json").write_text('{"created_at": "0"}')
    assert (shard_dir / "wal").is_dir()
    with open_store(settings) as a, open_store(settings) as b:
        assert a.count("skills", "old") == 4 and b.count("skills", "old") == 4


def test_local_mode_lock_is_a_clear_error(tmp_path):
    settings = load_settings({"home": tmp_path, "engine": "local"}, env={})
    with open_store(settings):
        with pytest.raises(StoreLockedError, match="in use by another process"):
            open_store(settings)


def test_unreachable_server_fails_fast_naming_the_url():
    settings = load_settings({"qdrant_url": "http://127.0.0.1:9"}, env={})
    with pytest.raises(StoreError, match="127.0.0.1:9"):
        open_store(settings)


def test_bad_version_names_are_rejected(store):
    with pytest.raises(StoreError):
        store.create("skills", "../evil", 8)
    with pytest.raises(StoreError):
        store.create("nope", "v1", 8)


def test_mismatch_is_typed(edge_index, tiny_model_path):
    from jobskills.encoder import Encoder
    from retriever.pipeline import Retriever

    settings, store = edge_index
    with pytest.raises(IndexMismatchError, match="jobskills index"):
        Retriever(settings, store=store, encoder=Encoder(tiny_model_path))
