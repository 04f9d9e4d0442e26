"""Hostile and bad input: each gets a clear message and loses nothing."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobskills.config import load_settings
from jobskills.encoder import Encoder
from jobskills.errors import ModelLoadError, StoreError
from jobskills.store import EdgeStore, open_store
from retriever.pipeline import Retriever

pytestmark = pytest.mark.integration


def test_model_folder_missing_or_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        Encoder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a sentence-transformers model folder"):
        Encoder(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{garbage")
    with pytest.raises(ModelLoadError, match="cannot load model"):
        Encoder(broken)


def test_other_languages_run_and_say_little(memory_index, encoder):
    """The default model is English: German text runs (no error) and finds fewer, weaker matches."""
    settings, store = memory_index
    r = Retriever(settings, store=store, encoder=encoder)
    de = r.extract("Wir suchen eine Fachkraft mit Erfahrung in der Verwaltung von Musikpersonal.", threshold=0.45)
    en = r.extract("We are looking for someone experienced in managing musical staff.", threshold=0.45)
    assert len(de) == 1 and len(en) == 1
    best_en = max((m.score for m in en[0].skills), default=0)
    best_de = max((m.score for m in de[0].skills), default=0)
    assert best_en > best_de


def test_full_disk_while_indexing_keeps_old_index(tmp_path, encoder, esco, monkeypatch):
    from indexer.build import build_index

    settings = load_settings({"home": tmp_path, "engine": "edge"}, env={})
    with open_store(settings) as store:
        build_index(settings, store, encoder, esco=esco, kinds=("skills",), limit=10)
        live = store.current("skills")
        real_upsert = EdgeStore.upsert
        calls = []

        def upsert_until_full(self, kind, version, points):
            calls.append(1)
            if len(calls) > 1:
                raise StoreError(f"writing to index {kind}/{version} failed: {OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))}")
            return real_upsert(self, kind, version, points)

        monkeypatch.setattr(EdgeStore, "upsert", upsert_until_full)
        with pytest.raises(StoreError, match="No space left on device"):
            build_index(settings.__class__(**{**settings.to_dict(), "home": tmp_path, "batch_size": 4}), store, encoder,
                        esco=esco, kinds=("skills",), limit=20)
        monkeypatch.setattr(EdgeStore, "upsert", real_upsert)
        assert store.current("skills") == live and store.all_versions("skills") == [live]
        assert len(Retriever(settings, store=store, encoder=encoder).skills) == 10

    # the manifest write itself hitting a full disk: the version is never published
    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with open_store(settings) as store:
        monkeypatch.setattr("jobskills.store.atomic_write_text", no_space)
        with pytest.raises(StoreError, match="No space left"):
            build_index(settings, store, encoder, esco=esco, kinds=("skills",), limit=12)
        monkeypatch.undo()
        assert store.current("skills") == live


def test_index_killed_midway_leaves_old_index_serving(tmp_path):
    """A real SIGKILL during `jobskills index`: the old index still answers, the next build cleans up."""
    env = {**os.environ, "JOBSKILLS_HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "jobskills.cli"]
    subprocess.run([*cli, "index", "--only", "skills", "--limit", "20"], env=env, check=True, capture_output=True)
    info = json.loads(subprocess.run([*cli, "info", "--json"], env=env, check=True, capture_output=True).stdout)
    live = info["skills"]["live"]
    proc = subprocess.Popen([*cli, "index", "--only", "skills", "--limit", "3000"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    skills_dir = Path(tmp_path) / "index" / "edge" / "skills"
    deadline = time.time() + 120
    while time.time() < deadline and len([p for p in skills_dir.iterdir() if p.is_dir()]) < 2:
        time.sleep(0.2)
    time.sleep(1.0)  # let it write some points
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len([p for p in skills_dir.iterdir() if p.is_dir()]) == 2  # the half-built version is there...
    out = subprocess.run([*cli, "search", "manage musical staff", "-k", "1", "--json"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["provenance"]["index_version"] == live  # ...but readers never see it
    rebuilt = subprocess.run([*cli, "index", "--only", "skills", "--limit", "20", "--json"], env=env, capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert any(d.startswith("skills/") for d in json.loads(rebuilt.stdout)["dropped"])


def test_one_megabyte_text_is_split_without_losing_any_of_it(memory_index, encoder):
    """A 1 MB ad with no sentence breaks: cut into windows that fit the model and together cover every word."""
    import random

    settings, store = memory_index
    r = Retriever(settings, store=store, encoder=encoder)
    rng = random.Random(0)
    words = "python sql docker teamwork german sales cooking welding nursing accounting".split()
    text = " ".join(rng.choice(words) for _ in range(140_000))[:1_000_000]
    spans = r.split(text)
    assert len(spans) > 100
    assert max(encoder.count_tokens([text[a:b] for a, b in spans[:50]])) <= encoder.max_tokens
    covered = "".join(text[a:b] for a, b in spans)
    assert covered.replace(" ", "") == text.replace(" ", "")  # every character outside whitespace is kept
    # a slice of it goes all the way through extraction
    head = text[: spans[2][1]]
    assert len(r.extract(head, threshold=0.4)) == 3
