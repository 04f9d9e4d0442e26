"""The one rebuild transaction (indexer.rebuild): build beside, smoke-test, switch together, prune; on any
failure every version it built is dropped and the live index stays as it was."""

from __future__ import annotations

import pytest

import indexer.build as build
from indexer.rebuild import Rebuild, live_shape
from jobskills.config import load_settings
from jobskills.errors import StoreError, StoreLockedError
from jobskills.store import open_store

pytestmark = pytest.mark.integration


@pytest.fixture()
def tiny_encoder(tiny_model_path):
    from jobskills.encoder import Encoder

    return Encoder(tiny_model_path)


def _settings(tmp_path):
    return load_settings({"home": tmp_path / "home", "engine": "edge", "batch_size": 16}, env={})


def test_a_failure_in_any_kind_drops_every_kind_built_and_switches_nothing(tmp_path, tiny_encoder, esco, monkeypatch):
    settings = _settings(tmp_path)
    with open_store(settings) as store, Rebuild(settings, store, esco) as rb:
        rb.build("skills", tiny_encoder, limit=20)
        rb.build("titles", tiny_encoder, limit=5)
    live = {k: v for k, v in rb.report.versions.items()}
    assert set(live) == {"skills", "titles"}
    real = build._smoke_query

    def broken(store, kind, *a, **kw):
        if kind == "titles":
            raise StoreError("smoke query failed (simulated)")
        return real(store, kind, *a, **kw)

    monkeypatch.setattr(build, "_smoke_query", broken)
    with open_store(settings) as store:
        with pytest.raises(StoreError, match="simulated"), Rebuild(settings, store, esco) as rb:
            rb.build("skills", tiny_encoder, limit=20)  # complete and smoke-tested, but not switched yet
            assert store.current("skills") == live["skills"] and len(store.versions("skills")) == 2
            rb.build("titles", tiny_encoder, limit=5)
        assert {k: store.current(k) for k in live} == live
        # the new skills version went with the failed titles one: nothing of this rebuild is left
        assert store.all_versions("skills") == [live["skills"]] and store.all_versions("titles") == [live["titles"]]


def test_a_rebuild_switches_its_kinds_together_keeps_one_for_rollback_and_holds_the_build_lock(tmp_path, tiny_encoder, esco):
    settings = _settings(tmp_path)
    versions = []
    for _ in range(3):
        with open_store(settings) as store, Rebuild(settings, store, esco, keep=1) as rb:
            with open_store(settings) as other, pytest.raises(StoreLockedError, match="another build"):
                Rebuild(settings, other, esco).__enter__()  # a second builder of this home fails at once
            rb.build("skills", tiny_encoder, limit=10)
            rb.build("titles", tiny_encoder, limit=3)
            assert store.current("skills") != rb.report.versions["skills"]  # not before the transaction ends
        versions.append(rb.report.versions)
    with open_store(settings) as store:
        for kind in ("skills", "titles"):
            assert store.current(kind) == versions[-1][kind]
            assert store.versions(kind) == [versions[-2][kind], versions[-1][kind]]  # the oldest one was pruned
    assert f"skills/{versions[0]['skills']}" in rb.report.dropped


def test_a_rebuild_like_live_keeps_the_live_shape(tmp_path, tiny_encoder, esco):
    settings = _settings(tmp_path)
    subset = list(esco.skills)[100:112]
    with open_store(settings) as store, Rebuild(settings, store, esco) as rb:
        rb.build("skills", tiny_encoder, skill_uris=subset, labels="all")
        rb.build("titles", tiny_encoder, limit=4)
    with open_store(settings) as store:
        assert live_shape(store, "skills") == {"skill_uris": sorted(subset), "labels": "all"}
        assert live_shape(store, "titles") == {"limit": 4, "title_examples": "jobbert-validation"}
        assert live_shape(store, "skills_it") == {}  # nothing live: no shape
        before = {k: store.current_manifest(k)[1]["count"] for k in ("skills", "titles")}
        with Rebuild(settings, store, esco) as rb:
            rb.build_like_live("skills", tiny_encoder)
            rb.build_like_live("titles", tiny_encoder)
        for kind in ("skills", "titles"):
            version, manifest = store.current_manifest(kind)
            assert version == rb.report.versions[kind] and manifest["count"] == before[kind]
        assert {p["uri"] for _, p, _ in store.scroll("skills", rb.report.versions["skills"], with_mean=False)} == set(subset)
        # a titles index built without example titles is rebuilt without them, whatever the settings say
        with Rebuild(settings, store, esco) as rb:
            rb.build("titles", tiny_encoder, limit=4, title_examples="none")
        assert live_shape(store, "titles") == {"limit": 4, "title_examples": "none"}
        with Rebuild(settings, store, esco) as rb:
            rb.build_like_live("titles", tiny_encoder)
        assert "title_examples" not in store.current_manifest("titles")[1]
