"""HTTP API through FastAPI's test client, and one real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from retriever.api import MAX_BATCH, create_app
from tests.conftest import house_rows

pytestmark = pytest.mark.integration


def test_health_info_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
    info = client.get("/info").json()
    assert info["provenance"]["esco_version"] == "v1.1.0" and info["limits"]["max_batch"] == MAX_BATCH
    spec = client.get("/openapi.json").json()
    assert {"/extract", "/search", "/titles", "/healthz", "/info"} <= set(spec["paths"])


def test_extract_one_and_batch_agree_with_the_library(client, retriever):
    text = house_rows()[3]["text"]
    one = client.post("/extract", json={"text": text, "threshold": 0.4}).json()
    lib = retriever.extract(text, threshold=0.4, evidence_words=3)
    assert [[s["uri"] for s in sent["skills"]] for sent in one["result"]["sentences"]] == [[m.uri for m in s.skills] for s in lib]
    assert one["provenance"]["threshold"] == 0.4
    texts = [r["text"] for r in house_rows()[:5]]
    batch = client.post("/extract", json={"texts": texts, "threshold": 0.4}).json()["results"]
    assert len(batch) == 5
    assert batch[3]["sentences"] == one["result"]["sentences"]


def test_concurrent_requests_are_batched_and_correct(client, retriever):
    texts = [r["text"] for r in house_rows()[:24]]
    expected = [[[m.uri for m in s.skills] for s in retriever.extract(t, threshold=0.4)] for t in texts]
    before = client.app.state.batcher.batches

    def call(t):
        return client.post("/extract", json={"text": t, "threshold": 0.4}).json()

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(call, texts))
    assert [[[s["uri"] for s in sent["skills"]] for sent in g["result"]["sentences"]] for g in got] == expected
    assert client.app.state.batcher.batches - before < len(texts)  # some requests shared a forward pass


@pytest.mark.parametrize(
    "body, status",
    [
        ({}, 422),
        ({"text": "a", "texts": ["b"]}, 422),
        ({"texts": ["x"] * (MAX_BATCH + 1)}, 422),
        ({"text": "x" * 100_001}, 422),
        ({"text": "   "}, 400),
        ({"texts": ["fine text here", ""]}, 400),
        ({"text": "ok", "threshold": 3}, 422),
    ],
)
def test_bad_extract_requests(client, body, status):
    res = client.post("/extract", json=body)
    assert res.status_code == status, res.text
    if status == 400:
        assert res.json()["error"] == "InputError"


def test_search_and_titles(client, esco):
    res = client.get("/search", params={"q": "manage musical staff", "k": 3}).json()
    assert len(res["skills"]) == 3
    occ = next(iter(esco.occupations.values()))
    res = client.get("/titles", params={"q": occ.label, "k": 2}).json()
    assert res["occupations"][0]["occupation_uri"] == occ.uri
    assert client.get("/titles", params={"q": "x", "method": "magic"}).status_code == 422
    assert client.get("/search", params={"q": "x", "k": 0}).status_code == 422


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_uvicorn_on_loopback(retriever):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(retriever=retriever), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        assert server.started
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/extract", data=json.dumps({"text": "Manage musical staff.", "threshold": 0.3}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = json.loads(resp.read())
        assert data["result"]["sentences"][0]["skills"][0]["label"] == "manage musical staff"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "ok"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize(
    "body, status",
    [
        ({"text": ""}, 422),
        ({"text": "x" * 1_000_000}, 422),  # a 1 MB ad: over the API's per-text limit, refused before any work
        ({"text": "   "}, 400),
        ({"text": "... --- ..."}, 400),  # no sentence with a word in it
        ({"text": "Manage musical staff.", "k": 0}, 422),
    ],
)
def test_bad_analyse_requests(client, body, status):
    res = client.post("/analyse", json=body)
    assert res.status_code == status, res.text


def test_analyse_dedupes_across_sentences(client):
    data = client.post("/analyse", json={"text": "Manage musical staff.\nWe need you to manage musical staff.", "threshold": 0.4}).json()
    entry = [s for s in data["skills"] if s["label"] == "manage musical staff"]
    assert len(entry) == 1 and entry[0]["sentences"] == 2 and len(data["sentence_spans"]) == 2


def test_nan_and_lone_surrogates_are_clear_errors_not_500(client, retriever):
    """Issue 16.8: {"threshold": NaN} and "Python \\ud800 dev" each gave HTTP 500 with a traceback."""
    for raw in ('{"text": "Python developer", "threshold": NaN}', '{"text": "ok", "threshold": Infinity}'):
        res = client.post("/extract", content=raw, headers={"Content-Type": "application/json"})
        assert res.status_code == 422 and res.json()["error"] == "ValidationError"
        assert res.json()["detail"][0]["loc"][-1] == "threshold"
    raw = '{"text": "Python \\ud800 dev"}'
    res = client.post("/extract", content=raw, headers={"Content-Type": "application/json"})
    assert res.status_code in (400, 422) and res.json()["error"] in ("InputError", "ValidationError")
    from jobskills.errors import InputError

    for call in (retriever.extract, retriever.search, retriever.titles):  # the library says what is wrong
        with pytest.raises(InputError, match="surrogate"):
            call("Python \ud800 dev")
    big = "x" * 300_000
    res = client.post("/extract", json={"text": big})
    assert res.status_code == 422 and len(res.content) < 2_000  # the input is never echoed back
