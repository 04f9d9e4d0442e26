"""HTTP API (FastAPI): ``POST /extract``, ``POST /analyse``, ``GET /search``, ``GET /titles``, ``GET /healthz``,
``GET /info``, and a page at ``/`` to paste an ad and see its analysis with the evidence highlighted.

How it stays fair and safe (the limits are module constants, stated in the README):

- **Bounded work.** A body over :data:`MAX_BODY_BYTES` is refused with 413 before it is parsed; one request
  holds at most :data:`MAX_REQUEST_CHARS` characters and :data:`MAX_REQUEST_SENTENCES` sentences.
- **Fair batching.** ``/extract`` and ``/analyse`` queue their sentences; one worker fills each encoder batch
  round-robin from every waiting request, so a one-sentence request is answered between the batches of a
  maximal one instead of after it. Beyond :data:`MAX_QUEUED_SENTENCES` waiting sentences the answer is 429
  with ``Retry-After``. A request whose client has gone is dropped from the queue.
- **One model, one lock.** Model use is serialised by one lock; the event loop never blocks on it.
- **Pinned versions.** The app answers from one (skills, titles) pair; every ``reload_s`` seconds it looks for
  a newly published pair and moves to it in one swap (requests in flight finish on the old pair, which is
  closed after them). Each answer's provenance names its pair.
- **Optional API key** (``JOBSKILLS_API_KEY``): then every route but ``/healthz``, the page and the docs needs
  ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Answers carry no file-system paths.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import threading
import time
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, model_validator

from jobskills import __version__
from jobskills.errors import IndexMismatchError, InputError, JobskillsError
from jobskills.esco import ATTRIBUTION
from retriever.contract import EVIDENCE_WORDS
from retriever.titles import DEFAULT_TITLE_METHOD, TITLE_METHODS

if TYPE_CHECKING:
    from jobskills.config import Settings
    from retriever.contract import SentenceResult
    from retriever.pipeline import Retriever

__all__ = ["create_app", "app_from_env", "MAX_TEXT_CHARS_API", "MAX_BATCH", "MAX_REQUEST_CHARS", "MAX_REQUEST_SENTENCES",
           "MAX_BODY_BYTES", "MAX_QUEUED_SENTENCES"]

logger = logging.getLogger(__name__)

_PAGE = Path(__file__).resolve().parent / "static" / "index.html"
MAX_TEXT_CHARS_API = 100_000  # one job ad is far below this; corpora go through `extract --file`
MAX_BATCH = 64  # texts per /extract request
MAX_REQUEST_CHARS = 200_000  # all texts of one request together
MAX_REQUEST_SENTENCES = 4_096  # sentences of one request (very short "sentences" could otherwise be many)
MAX_BODY_BYTES = 2_000_000  # room for MAX_REQUEST_CHARS even when JSON escapes every character
MAX_QUEUED_SENTENCES = 16_384  # sentences waiting for the model; more is a 429
_MIN_SHARE = 4  # sentences a request adds to a shared batch, at least
_SLICE = 16  # sentences a request adds to one batch, at most
_OPEN_PATHS = frozenset({"/healthz", "/", "/docs", "/openapi.json", "/docs/oauth2-redirect"})


class ExtractRequest(BaseModel):
    """Either ``text`` (one text) or ``texts`` (a batch)."""

    text: Optional[str] = Field(None, max_length=MAX_TEXT_CHARS_API, description="One text: a sentence or a whole ad.")
    texts: Optional[list[str]] = Field(None, max_length=MAX_BATCH, description=f"Up to {MAX_BATCH} texts.")
    threshold: Optional[float] = Field(None, ge=-1.0, le=1.0, description="Override the calibrated threshold.")
    redundancy: bool = Field(True, description="Apply the redundancy filter.")
    evidence: int = Field(EVIDENCE_WORDS, ge=0, le=20, description="Evidence words per skill.")

    @model_validator(mode="after")
    def _one_of(self) -> "ExtractRequest":
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        for t in self.texts or []:
            if len(t) > MAX_TEXT_CHARS_API:
                raise ValueError(f"each text must be at most {MAX_TEXT_CHARS_API} characters")
        if sum(map(len, self.texts or [])) > MAX_REQUEST_CHARS:
            raise ValueError(f"the texts of one request may hold at most {MAX_REQUEST_CHARS} characters together")
        return self


class AnalyseRequest(BaseModel):
    """One whole ad and, optionally, its job title."""

    text: str = Field(..., min_length=1, max_length=MAX_TEXT_CHARS_API, description="The ad text.")
    title: Optional[str] = Field(None, max_length=300, description="The ad's job title.")
    k: int = Field(5, ge=1, le=50, description="How many occupations.")
    threshold: Optional[float] = Field(None, ge=-1.0, le=1.0)


class _BodyLimit:
    """Pure ASGI middleware: refuse a body over ``limit`` bytes with 413 before anything parses it (a declared
    Content-Length is checked at once; a streamed body is counted as it arrives)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._too_large(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls see the client's disconnect

        return await self.app(scope, replay, send)

    async def _too_large(self, scope: dict, receive: Any, send: Any) -> None:
        response = JSONResponse(status_code=413, content={
            "error": "PayloadTooLarge",
            "detail": f"the request body is over {self.limit:,} bytes; send at most {MAX_REQUEST_CHARS:,} characters of "
                      "text per request, or use `jobskills extract --file` for a corpus"})
        await response(scope, receive, send)


class _Live:
    """The retriever the app answers from, and the move to a newly published (skills, titles) pair: a request
    takes a reference for its whole life, a swap only changes what new requests get, and a replaced retriever
    is closed when its last request is done."""

    def __init__(self, retriever: "Retriever", own: bool) -> None:
        self.current = retriever
        self._refs: dict[int, int] = {id(retriever): 0}
        self._retired: dict[int, "Retriever"] = {}
        self._own = {id(retriever)} if own else set()
        self._lock = threading.Lock()
        self.reloads = 0

    def acquire(self) -> "Retriever":
        with self._lock:
            r = self.current
            self._refs[id(r)] = self._refs.get(id(r), 0) + 1
            return r

    def release(self, r: "Retriever") -> None:
        with self._lock:
            self._refs[id(r)] -= 1
            done = id(r) in self._retired and self._refs[id(r)] == 0
            if done:
                self._retired.pop(id(r))
                self._refs.pop(id(r))
        if done and id(r) in self._own:
            self._own.discard(id(r))
            r.close()

    def swap(self, new: "Retriever") -> None:
        with self._lock:
            old = self.current
            self.current = new
            self._refs[id(new)] = 0
            self._own.add(id(new))
            idle = self._refs[id(old)] == 0
            if idle:
                self._refs.pop(id(old))
            else:
                self._retired[id(old)] = old
            self.reloads += 1
        logger.info("now serving skills %s, titles %s", *new.versions)
        if idle and id(old) in self._own:
            self._own.discard(id(old))
            old.close()

    def close(self) -> None:
        with self._lock:
            everyone = [self.current, *self._retired.values()]
            self._retired.clear()
        for r in everyone:
            if id(r) in self._own:
                self._own.discard(id(r))
                r.close()


def _published_pair(r: "Retriever") -> tuple[str | None, str | None]:
    return r.store.current(r.skills.kind), (r.store.current("titles") if r.skills.kind == "skills" else None)


def _reopen(r: "Retriever") -> "Retriever":
    """A new retriever on the published pair; the loaded model is reused when the new index was built with it."""
    from retriever.pipeline import Retriever

    try:
        return Retriever(r.settings, encoder=r.encoder, candidates=r.candidates, taxonomy=r.taxonomy)
    except IndexMismatchError:  # rebuilt with another model (after `jobskills train`): load that one
        return Retriever(r.settings, candidates=r.candidates, taxonomy=r.taxonomy)


@dataclass(eq=False)
class _Job:
    """One request's sentences, handed out to batches a few at a time."""

    retriever: "Retriever"
    texts: list[str]
    units: list[tuple[int, int, int]]  # (text index, start, end), in text order
    key: tuple[Any, ...]  # (threshold, redundancy, evidence): requests batch together only when it matches
    future: asyncio.Future
    results: list[Any] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return len(self.units) - len(self.results)


class QueueFull(Exception):
    """More sentences are waiting than :data:`MAX_QUEUED_SENTENCES`."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Batcher:
    """Fair micro-batching: every encoder batch takes sentences round-robin from all waiting requests (with
    the same options and retriever), so small requests never wait behind a large one's whole run."""

    lock: threading.Lock
    max_sentences: int = 64
    wait_s: float = 0.004
    max_queued: int = MAX_QUEUED_SENTENCES
    active: deque = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    batches: int = 0
    sentences_done: int = 0
    rate: float = 50.0  # sentences/s, a moving estimate for Retry-After

    @property
    def queued(self) -> int:
        return sum(j.remaining for j in self.active if not j.future.done())

    async def submit(self, r: "Retriever", texts: list[str], threshold: float | None, redundancy: bool,
                     evidence: int) -> list[list["SentenceResult"]]:
        spans = [r.split(t) for t in texts]  # a bad text fails only its own request, before it queues
        units = [(ti, a, b) for ti, sp in enumerate(spans) for a, b in sp]
        if len(units) > MAX_REQUEST_SENTENCES:
            raise InputError(f"the request holds {len(units):,} sentences, over the {MAX_REQUEST_SENTENCES:,} limit; "
                             "split it, or use `jobskills extract --file` for a corpus")
        queued = self.queued
        if queued and queued + len(units) > self.max_queued:
            raise QueueFull(max(1, math.ceil(queued / max(self.rate, 1.0))))
        job = _Job(r, texts, units, (threshold, redundancy, evidence), asyncio.get_running_loop().create_future())
        self.active.append(job)
        self.wakeup.set()
        return await job.future

    def _take(self) -> tuple[list[tuple[_Job, int, int]], tuple]:
        """The next batch: (job, first unit, end unit) slices, round-robin over the jobs that match the first.

        A request adds at most :data:`_SLICE` sentences to a batch, and only :data:`_MIN_SHARE` while a small
        request (that many sentences or fewer) waits beside it. So a batch stays about the size the small
        requests need, and a newcomer never waits behind more than one short batch: that is what keeps small
        requests' latency near its value without a large one (CPU encoders gain little from batches over 16)."""
        while self.active and self.active[0].future.done():  # answered, or its client went away
            self.active.popleft()
        lead = self.active[0]
        peers = [j for j in self.active if not j.future.done() and j.retriever is lead.retriever and j.key == lead.key]
        small_waiting = len(peers) > 1 and any(j.remaining <= _MIN_SHARE for j in peers)
        share = _MIN_SHARE if small_waiting else _SLICE
        room = self.max_sentences
        slices = []
        for j in peers:
            n = min(j.remaining, share, room)
            if n:
                slices.append((j, len(j.results), len(j.results) + n))
                room -= n
        self.active.rotate(-1)  # the next batch starts from the next request
        return slices, lead.key

    async def run(self) -> None:
        while True:
            if not any(not j.future.done() for j in self.active):
                self.active.clear()
                self.wakeup.clear()
                await self.wakeup.wait()
                await asyncio.sleep(self.wait_s)  # let requests that arrive together share the first batch
                continue
            slices, key = self._take()
            r = slices[0][0].retriever
            texts: list[str] = []
            spans: list[list[tuple[int, int]]] = []
            for job, a, b in slices:
                for ti in range(len(job.texts)):
                    texts.append(job.texts[ti])
                    spans.append([(s, e) for t, s, e in job.units[a:b] if t == ti])

            def work() -> list:
                with self.lock:
                    return r.extract_many(texts, threshold=key[0], redundancy=key[1], evidence_words=key[2], spans=spans)

            started = time.perf_counter()
            try:
                per_text = await asyncio.to_thread(work)
            except Exception as exc:  # one bad batch fails its requests, never the worker
                for job, _, _ in slices:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            n = sum(b - a for _, a, b in slices)
            self.batches += 1
            self.sentences_done += n
            self.rate = 0.8 * self.rate + 0.2 * n / max(time.perf_counter() - started, 1e-3)
            pos = 0
            for job, a, b in slices:
                for ti in range(len(job.texts)):
                    job.results.extend(per_text[pos])
                    pos += 1
                if not job.remaining and not job.future.done():
                    out: list[list[Any]] = [[] for _ in job.texts]
                    for (ti, _, _), res in zip(job.units, job.results):
                        out[ti].append(res)
                    job.future.set_result(out)


async def _until_done_or_gone(request: Request, fut: "asyncio.Future | asyncio.Task") -> Any:
    """Await ``fut``; if the client disconnects first, cancel it (its queued sentences are dropped)."""
    while True:
        done, _ = await asyncio.wait({fut}, timeout=0.25)
        if done:
            return fut.result()
        if await request.is_disconnected():
            fut.cancel()
            raise _ClientGone


class _ClientGone(Exception):
    pass


def create_app(settings: "Settings | None" = None, retriever: "Retriever | None" = None) -> FastAPI:
    """The API app. Pass an open ``retriever`` (tests, ``serve``) or ``settings`` (opened in the lifespan).
    The settings (or the retriever's) give the API key and the reload interval."""
    conf = settings if settings is not None else getattr(retriever, "settings", None)
    api_key = getattr(conf, "api_key", None)
    reload_s = float(getattr(conf, "reload_s", 0.0) or 0.0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        r = retriever
        own = r is None
        if r is None:
            from retriever.pipeline import Retriever

            r = await asyncio.to_thread(Retriever, settings)  # type: ignore[arg-type]
        lock = threading.Lock()
        app.state.live = _Live(r, own)
        app.state.lock = lock
        app.state.batcher = _Batcher(lock, max_sentences=r.settings.batch_size)
        tasks = [asyncio.create_task(app.state.batcher.run())]
        if reload_s > 0:
            tasks.append(asyncio.create_task(_follow_published(app.state.live, lock, reload_s)))
        app.state.started = time.time()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            app.state.live.close()

    app = FastAPI(
        title="jobskills",
        version=__version__,
        description=f"ESCO skills in job-ad text and nearest ESCO job titles. {ATTRIBUTION}",
        lifespan=lifespan,
    )
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Response:
        if api_key and request.url.path not in _OPEN_PATHS:
            given = request.headers.get("x-api-key") or ""
            auth = request.headers.get("authorization") or ""
            if auth[:7].lower() == "bearer ":
                given = given or auth[7:].strip()
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                return JSONResponse(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                                    content={"error": "Unauthorized", "detail": "this server needs an API key: "
                                             "send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"})
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """A 422 that names each problem but never echoes the input back: a 10 MB body must not come back as
        10 MB, and a NaN or a lone surrogate in it cannot be written as JSON (that was a 500)."""
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:300]} for e in exc.errors()[:20]]
        return JSONResponse(status_code=422, content={"error": "ValidationError", "detail": problems})

    @app.exception_handler(JobskillsError)
    async def _project_error(request: Request, exc: JobskillsError) -> JSONResponse:
        status = 400 if isinstance(exc, InputError) else 503
        return JSONResponse(status_code=status, content={"error": type(exc).__name__, "detail": str(exc)})

    @app.exception_handler(QueueFull)
    async def _busy(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(status_code=429, headers={"Retry-After": str(exc.retry_after)},
                            content={"error": "Busy", "detail": f"{MAX_QUEUED_SENTENCES:,} sentences are already waiting; "
                                     f"retry after {exc.retry_after} s"})

    @app.exception_handler(_ClientGone)
    async def _gone(request: Request, exc: _ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it: the client has closed the connection

    @asynccontextmanager
    async def _using(request: Request) -> AsyncIterator["Retriever"]:
        """The pinned retriever for this request's whole life (a reload meanwhile does not change it)."""
        live: _Live = request.app.state.live
        r = live.acquire()
        try:
            yield r
        finally:
            live.release(r)

    async def _extracted(request: Request, r: "Retriever", texts: list[str], threshold: float | None,
                         redundancy: bool, evidence: int) -> list[list["SentenceResult"]]:
        task = asyncio.ensure_future(request.app.state.batcher.submit(r, texts, threshold, redundancy, evidence))
        return await _until_done_or_gone(request, task)

    def _locked(request: Request, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        with request.app.state.lock:
            return fn(*args, **kwargs)

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        live: _Live = request.app.state.live
        r = live.current
        skills_version, titles_version = r.versions
        return {"status": "ok", "index_version": skills_version, "titles_version": titles_version, "skills": len(r.skills),
                "reloads": live.reloads, "uptime_s": round(time.time() - request.app.state.started, 1)}

    @app.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        async with _using(request) as r:
            b: _Batcher = request.app.state.batcher
            out = {"provenance": r.provenance(), "skills_manifest": _public(r.skills.manifest), "engine": r.store.engine,
                   "limits": {"max_text_chars": MAX_TEXT_CHARS_API, "max_batch": MAX_BATCH,
                              "max_request_chars": MAX_REQUEST_CHARS, "max_request_sentences": MAX_REQUEST_SENTENCES,
                              "max_body_bytes": MAX_BODY_BYTES, "max_queued_sentences": MAX_QUEUED_SENTENCES},
                   "queue": {"sentences_waiting": b.queued, "batches": b.batches, "sentences_done": b.sentences_done},
                   "reload_s": reload_s, "auth": bool(api_key)}
            titles = r.title_search.pinned
            out["titles_manifest"] = _public(titles[1]) if titles else None
            return out

    @app.post("/extract")
    async def extract(request: Request, body: ExtractRequest) -> dict[str, Any]:
        texts = [body.text] if body.text is not None else list(body.texts or [])
        if not texts:
            raise HTTPException(status_code=422, detail="'texts' is empty")
        async with _using(request) as r:
            results = await _extracted(request, r, texts, body.threshold, body.redundancy, body.evidence)
            prov = r.provenance()
        if body.threshold is not None:
            prov["threshold"] = body.threshold
        docs = [{"sentences": [s.to_dict() for s in res]} for res in results]
        return {"provenance": prov, **({"result": docs[0]} if body.text is not None else {"results": docs})}

    @app.post("/analyse")
    async def analyse(request: Request, body: AnalyseRequest) -> dict[str, Any]:
        from retriever.analyse import analyse_extracted

        async with _using(request) as r:
            # the sentences queue fairly with everyone else's; only the cheap occupation step takes the lock alone
            sentences = (await _extracted(request, r, [body.text], body.threshold, True, 3))[0]
            result = await asyncio.to_thread(_locked, request, analyse_extracted, r, sentences, body.title, body.k)
            return result.to_dict()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return _PAGE.read_text(encoding="utf-8")

    @app.get("/search")
    async def search(
        request: Request,
        q: str = Query(..., min_length=1, max_length=2_000, description="Free text to match against skill labels."),
        k: int = Query(10, ge=1, le=200),
    ) -> dict[str, Any]:
        async with _using(request) as r:
            matches = await asyncio.to_thread(_locked, request, r.search, q, k)
            return {"provenance": r.provenance(), "query": q, "skills": [m.to_dict() for m in matches]}

    @app.get("/titles")
    async def titles(
        request: Request,
        q: str = Query(..., min_length=1, max_length=300, description="A free-text job title."),
        k: int = Query(10, ge=1, le=100),
        method: str = Query(DEFAULT_TITLE_METHOD, pattern="^(" + "|".join(TITLE_METHODS) + ")$"),
    ) -> dict[str, Any]:
        async with _using(request) as r:
            matches = await asyncio.to_thread(_locked, request, r.titles, q, k, method)
            return {"provenance": r.provenance(), "query": q, "method": method,
                    "occupations": [m.to_dict() for m in matches]}

    return app


def _public(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest without file-system paths (they say how the server's disk is laid out, to anyone)."""
    return {k: v for k, v in manifest.items() if not k.endswith("_path")}


async def _follow_published(live: _Live, lock: threading.Lock, every_s: float) -> None:
    """Poll for a newly published (skills, titles) pair and swap to it. The pair must read the same twice,
    half a second apart, so a build caught between its two switches is not taken."""
    while True:
        await asyncio.sleep(every_s)
        try:
            r = live.current
            pair = await asyncio.to_thread(_published_pair, r)
            if pair == r.versions or pair[0] is None:
                continue
            await asyncio.sleep(0.5)
            if await asyncio.to_thread(_published_pair, r) != pair:
                continue
            new = await asyncio.to_thread(_reopen, r)
            live.swap(new)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken new index must not take the server down: keep serving the pinned pair
            logger.warning("could not move to the newly published index; still serving %s", live.current.versions,
                           exc_info=True)


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` / ``serve --workers N``: settings from the environment (each worker
    process loads its own model and reads the shared index through its own views)."""
    from jobskills.config import load_settings

    return create_app(settings=load_settings())
