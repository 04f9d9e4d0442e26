"""Atomic rebuild: a failed or killed build never disturbs the live index."""

from __future__ import annotations

import pytest

from indexer.build import build_index
from jobskills.config import load_settings
from jobskills.store import open_store
from retriever.pipeline import Retriever

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("engine", ["edge", "memory"])
def test_failed_build_leaves_old_index_serving(tmp_path, encoder, esco, engine):
    settings = load_settings({"home": tmp_path, "engine": engine, "batch_size": 8}, env={})
    with open_store(settings) as store:
        build_index(settings, store, encoder, esco=esco, kinds=("skills",), limit=30)
        old = store.current("skills")
        reader = Retriever(settings, store=store, encoder=encoder)
        before = [m.uri for m in reader.search("manage musical staff", k=3)]

        seen = []

        def explode(kind, done, total):
            seen.append(done)
            # mid-build: the new version exists but readers still get the old one
            assert store.current("skills") == old
            assert Retriever(settings, store=store, encoder=encoder).skills.version == old
            if done >= 16:
                raise RuntimeError("simulated crash / full disk")

        with pytest.raises(RuntimeError, match="simulated"):
            build_index(settings, store, encoder, esco=esco, kinds=("skills",), limit=40, progress=explode)
        assert seen and store.current("skills") == old
        assert store.all_versions("skills") == [old]  # the half-built version was removed
        assert [m.uri for m in reader.search("manage musical staff", k=3)] == before

        # a kill leaves a manifest-less version behind; the next build removes it and publishes
        store.create("skills", "killed-build", encoder.dim)
        report = build_index(settings, store, encoder, esco=esco, kinds=("skills",), limit=40)
        assert "skills/killed-build" in report.dropped
        assert store.current("skills") == report.versions["skills"] != old
        assert store.versions("skills") == [old, report.versions["skills"]]  # previous kept for rollback
        # the reader opened on the old version still answers (edge keeps the old files until dropped)
        assert [m.uri for m in reader.search("manage musical staff", k=3)] == before
        assert Retriever(settings, store=store, encoder=encoder).skills.manifest["count"] == 40


def test_threshold_and_scorer_recorded(tmp_path, encoder, esco):
    settings = load_settings({"home": tmp_path, "engine": "memory"}, env={})
    with open_store(settings) as store:
        report = build_index(settings, store, encoder, esco=esco, kinds=("skills",), limit=5, threshold=0.61)
        m = store.manifest("skills", report.versions["skills"])
        assert m["threshold"] == 0.61 and m["threshold_source"] == "command line"
        assert m["model_fingerprint"] == encoder.fingerprint and m["dim"] == 384 and m["normalized"] is True
        r = Retriever(settings, store=store, encoder=encoder)
        assert r.threshold == 0.61
