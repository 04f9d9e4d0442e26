"""Store behaviour on both embedded engines: versions, atomic publish, cleanup, congruence."""

from __future__ import annotations

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


def test_edge_lock_is_a_clear_error(tmp_path):
    settings = load_settings({"home": tmp_path, "engine": "edge"}, env={})
    with open_store(settings) as first:
        first.create("skills", "v1", 8)
        first.upsert("skills", "v1", _points(3))
        first.finalize("skills", "v1", {"created_at": "1"})
        with open_store(settings) as second:
            with pytest.raises(StoreLockedError, match="in use"):
                second.count("skills", "v1")


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
