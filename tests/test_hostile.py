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
    """ENOSPC as the OS raises it: the shard's write fails with errno 28 mid-build, then the manifest write hits a
    real full device (/dev/full); the project's own handling must name it, clean up and keep the old index."""
    from indexer.build import build_index

    settings = load_settings({"home": tmp_path, "engine": "edge"}, env={})
    with open_store(settings) as store:
        build_index(settings, store, encoder, esco=esco, kinds=("skills",), limit=10)
        live = store.current("skills")
        writes = []

        class FullDisk:
            """An edge shard on a disk that fills up after its first write."""

            def __init__(self, shard):
                self._inner = shard

            def update(self, op):
                writes.append(1)
                if len(writes) > 1:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return self._inner.update(op)

            def __getattr__(self, name):
                return getattr(self._inner, name)

        real_shard = EdgeStore._shard
        monkeypatch.setattr(EdgeStore, "_shard", lambda self, kind, version: FullDisk(real_shard(self, kind, version)))
        with pytest.raises(StoreError, match=r"^writing to index skills/\S+ failed") as caught:
            build_index(settings.__class__(**{**settings.to_dict(), "home": tmp_path, "batch_size": 4}), store, encoder,
                        esco=esco, kinds=("skills",), limit=20)
        assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.ENOSPC
        assert len(writes) == 2
        monkeypatch.undo()
        assert store.current("skills") == live and store.all_versions("skills") == [live]
        assert len(Retriever(settings, store=store, encoder=encoder).skills) == 10

    # the manifest write meets a device that is really full: its temp file is /dev/full, the kernel says ENOSPC
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    planted = []
    real_create = EdgeStore.create

    def create_on_full_device(self, kind, version, dim, *args, **kwargs):
        real_create(self, kind, version, dim, *args, **kwargs)
        tmp = self.root / kind / version / f".manifest.json.{os.getpid()}.tmp"  # atomic_write_text's temp name
        tmp.symlink_to("/dev/full")
        planted.append(tmp)

    with open_store(settings) as store:
        monkeypatch.setattr(EdgeStore, "create", create_on_full_device)
        with pytest.raises(StoreError, match="manifest.json: \\[Errno 28\\] No space left on device") as caught:
            build_index(settings, store, encoder, esco=esco, kinds=("skills",), limit=12)
        monkeypatch.undo()
        assert caught.value.__cause__.errno == errno.ENOSPC
        assert planted and not planted[0].is_symlink()  # the temp file was removed
        assert not (planted[0].parent / "manifest.json").exists()  # the version never became complete
        assert store.current("skills") == live


def _allocated(folder: Path) -> int:
    """Bytes really allocated under ``folder`` (preallocated, sparse files count only what was written)."""
    total = 0
    for p in folder.rglob("*"):
        try:
            total += p.stat().st_blocks * 512 if p.is_file() else 0
        except FileNotFoundError:  # the builder renames files as it goes
            pass
    return total


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
    new = next(p for p in skills_dir.iterdir() if p.is_dir() and p.name != live)
    # kill once points are on disk: the new version's allocated bytes grow as batches land (polled, no fixed sleep)
    empty = _allocated(new)
    while time.time() < deadline and _allocated(new) < empty + 256 * 1024 and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the build ended before it could be killed"
    assert _allocated(new) >= empty + 256 * 1024, "no points were written within the deadline"
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
