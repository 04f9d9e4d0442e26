"""Issue 16, items 5, 6, 7 and 9: bounded work, fair batching, 429, dropped work for gone clients, the API key,
no paths in answers, and a server that moves to a newly published index pair without mixing versions."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from retriever.api import MAX_BODY_BYTES, MAX_REQUEST_CHARS, QueueFull, _Batcher, create_app
from retriever.pipeline import Retriever

pytestmark = pytest.mark.integration

SENTENCE = "Manage musical staff."


def _wait(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


async def _until(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _with_batcher(body, **kwargs):
    """Run ``await body(batcher)`` with a live batcher worker (cancelled after), as the app's lifespan does."""

    async def main():
        b = _Batcher(threading.Lock(), **kwargs)
        worker = asyncio.create_task(b.run())
        try:
            return await body(b)
        finally:
            worker.cancel()

    return asyncio.run(main())


def _labels(results):
    return [[[m.uri for m in s.skills] for s in text] for text in results]


def test_a_small_request_is_answered_between_the_batches_of_a_large_one(retriever):
    big_text = " ".join([SENTENCE] * 120)

    async def body(b):
        big = asyncio.create_task(b.submit(retriever, [big_text], 0.4, True, 3))
        await _until(lambda: b.batches >= 1, "the first batch of the large request")
        small = await b.submit(retriever, ["We need you to manage musical staff."], 0.4, True, 3)
        batches_at_small, big_done_at_small = b.batches, big.done()
        big_result = await big
        return small, big_result, batches_at_small, big_done_at_small, b.batches

    small, big_result, at_small, big_done, total = _with_batcher(body, max_sentences=8)
    assert not big_done and at_small < total  # the small one did not wait for the large one's 15 batches
    assert _labels(small) == _labels([retriever.extract("We need you to manage musical staff.", threshold=0.4, evidence_words=3)])
    assert len(big_result[0]) == 120  # every sentence of the large one, in order, with its own spans
    assert [s.start for s in big_result[0]] == [s.start for s in retriever.extract(big_text, threshold=0.4)]
    assert _labels(big_result) == _labels([retriever.extract(big_text, threshold=0.4, evidence_words=3)])


def test_a_cancelled_request_stops_using_the_model(retriever):
    big_text = " ".join([SENTENCE] * 200)

    async def body(b):
        big = asyncio.create_task(b.submit(retriever, [big_text], 0.4, True, 3))
        await _until(lambda: b.batches >= 2, "two batches")
        big.cancel()  # what the API does when the client disconnects
        at_cancel = b.batches
        after = await b.submit(retriever, [SENTENCE], 0.4, True, 3)  # the worker is still alive
        return at_cancel, b.sentences_done, after

    at_cancel, done, after = _with_batcher(body, max_sentences=8)
    assert done <= (at_cancel + 1) * 8 + 1 < 200  # at most the batch in flight finished; the rest was dropped
    assert after[0][0].skills


def test_the_queue_has_a_limit(retriever):
    async def body(b):
        big = asyncio.create_task(b.submit(retriever, [" ".join([SENTENCE] * 60)], 0.4, True, 3))
        await _until(lambda: b.queued > 0, "the large request to queue")
        with pytest.raises(QueueFull) as info:
            await b.submit(retriever, [SENTENCE] * 2, 0.4, True, 3)
        await big
        ok = await b.submit(retriever, [SENTENCE], 0.4, True, 3)  # room again once it drained
        return info.value.retry_after, ok

    retry_after, ok = _with_batcher(body, max_sentences=4, max_queued=50)
    assert retry_after >= 1 and ok[0][0].skills


def test_429_with_retry_after_over_http(client):
    batcher = client.app.state.batcher
    old = batcher.max_queued
    batcher.max_queued = 30
    try:
        with ThreadPoolExecutor(1) as pool:
            big = pool.submit(client.post, "/extract", json={"text": " ".join([SENTENCE] * 300), "threshold": 0.4})
            _wait(lambda: batcher.queued > 0 or big.done(), "the large request to queue")
            res = client.post("/extract", json={"texts": [SENTENCE] * 40, "threshold": 0.4})
            assert big.result().status_code == 200
        assert res.status_code == 429 and int(res.headers["Retry-After"]) >= 1
        assert res.json()["error"] == "Busy"
    finally:
        batcher.max_queued = old


def test_bodies_are_bounded_before_parsing(client):
    res = client.post("/extract", content=b"{" + b" " * MAX_BODY_BYTES + b"}", headers={"Content-Type": "application/json"})
    assert res.status_code == 413 and res.json()["error"] == "PayloadTooLarge" and len(res.content) < 1_000

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(MAX_BODY_BYTES // 100_000 + 2):
            yield b" " * 100_000

    res = client.post("/extract", content=chunks(), headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    # within the body limit but over the per-request text budget: a 422 that names the limit
    res = client.post("/extract", json={"texts": ["Manage musical staff. " * 4_000] * 3})
    assert res.status_code == 422 and str(MAX_REQUEST_CHARS) in res.text
    assert client.post("/extract", json={"text": SENTENCE}).status_code == 200  # the server is fine


def test_too_many_sentences_in_one_request(client):
    res = client.post("/extract", json={"text": "a. " * 5_000})
    assert res.status_code == 400 and "sentences" in res.json()["detail"]


def test_api_key_guards_everything_but_health(edge_index, encoder):
    settings, store = edge_index
    r = Retriever(dataclasses.replace(settings, api_key="s3cret"), store=store, encoder=encoder)
    with TestClient(create_app(retriever=r)) as c:
        assert c.get("/healthz").status_code == 200
        for call in (lambda h: c.post("/extract", json={"text": SENTENCE}, headers=h),
                     lambda h: c.get("/search", params={"q": "music"}, headers=h),
                     lambda h: c.get("/info", headers=h)):
            assert call({}).status_code == 401
            assert call({"Authorization": "Bearer wrong"}).status_code == 401
            assert call({"Authorization": "Bearer s3cret"}).status_code == 200
            assert call({"X-API-Key": "s3cret"}).status_code == 200


def test_answers_carry_no_paths(client, edge_index):
    settings, _ = edge_index
    for res in (client.get("/info"), client.post("/extract", json={"text": SENTENCE}), client.get("/titles", params={"q": "musician"})):
        assert res.status_code == 200
        assert str(settings.home) not in res.text and "model_path" not in res.text


def test_serve_moves_to_a_new_pair_without_mixing_versions(tmp_path, encoder, esco, sample_uris):
    """Issue 16.5: a server pins one (skills, titles) pair; after `index` it moves to the new pair in one swap,
    requests keep succeeding meanwhile, and the old pair stays on disk while it is still being served."""
    from indexer.build import build_index, publish_all
    from jobskills.config import load_settings
    from jobskills.store import open_store

    settings = load_settings({"home": tmp_path, "engine": "edge", "reload_s": 0.1}, env={})

    def build():
        with open_store(settings) as store:
            report = build_index(settings, store, encoder, esco=esco, kinds=("skills",), skill_uris=sample_uris[:40], publish=False)
            report.merge(build_index(settings, store, encoder, esco=esco, kinds=("titles",), limit=5, publish=False))
            publish_all(store, report, keep=0)  # keep=0: only a reader's lease can keep the old pair
            return report.versions["skills"], report.versions["titles"]

    first = build()
    r = Retriever(settings, encoder=encoder)
    seen, stop = set(), threading.Event()
    with TestClient(create_app(retriever=r)) as c:
        assert tuple(c.get("/healthz").json()[k] for k in ("index_version", "titles_version")) == first

        def hammer():
            while not stop.is_set():
                res = c.post("/extract", json={"text": SENTENCE})
                assert res.status_code == 200, res.text
                p = res.json()["provenance"]
                seen.add((p["index_version"], p["titles_version"]))

        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(hammer)
            second = build()
            assert (tmp_path / "index" / "edge" / "skills" / first[0]).is_dir()  # still served: kept by its lease
            _wait(lambda: c.get("/healthz").json()["index_version"] == second[0], "the server to move")
            health = c.get("/healthz").json()
            assert (health["index_version"], health["titles_version"]) == second and health["reloads"] == 1
            titles = c.get("/titles", params={"q": "musician"}).json()
            assert titles["provenance"]["titles_version"] == second[1]
            _wait(lambda: second in seen, "an answer from the new pair")
            stop.set()
            running.result()
    r.close()
    assert seen <= {first, second}  # never a mixed pair


def test_titles_default_to_the_hybrid_and_refuse_text_without_words(client, retriever):
    """Issue 16.15 at the library and the API (emoji alone got confident hits); issue 19's default method."""
    from jobskills.errors import InputError

    res = client.get("/titles", params={"q": "musician"})
    assert res.status_code == 200 and res.json()["method"] == "hybrid"
    assert client.get("/titles", params={"q": "musician", "method": "lexical"}).status_code == 200
    res = client.get("/titles", params={"q": "🎻🎻"})
    assert res.status_code == 400 and "no words" in res.json()["detail"]
    with pytest.raises(InputError, match="no words"):
        retriever.titles("🎻 !!")
