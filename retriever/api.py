"""HTTP API (FastAPI): ``POST /extract``, ``POST /analyse``, ``GET /search``, ``GET /titles``, ``GET /healthz``,
``GET /info``, and a page at ``/`` to paste an ad and see its analysis with the evidence highlighted.

The model and the index are loaded once, in the app's lifespan. Concurrent ``/extract`` requests are
micro-batched: a worker collects the texts that arrive within a few milliseconds (up to one encoder batch of
sentences) and runs them through the encoder together, so throughput grows with concurrency instead of each
request paying for its own forward pass. One lock serialises model use; the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, model_validator

from jobskills import __version__
from jobskills.errors import InputError, JobskillsError

if TYPE_CHECKING:
    from jobskills.config import Settings
    from retriever.pipeline import Retriever

__all__ = ["create_app", "MAX_TEXT_CHARS_API", "MAX_BATCH"]

logger = logging.getLogger(__name__)

_PAGE = Path(__file__).resolve().parent / "static" / "index.html"
MAX_TEXT_CHARS_API = 100_000  # one job ad is far below this; corpora go through `extract --file`
MAX_BATCH = 64


class ExtractRequest(BaseModel):
    """Either ``text`` (one text) or ``texts`` (a batch)."""

    text: Optional[str] = Field(None, max_length=MAX_TEXT_CHARS_API, description="One text: a sentence or a whole ad.")
    texts: Optional[list[str]] = Field(None, max_length=MAX_BATCH, description=f"Up to {MAX_BATCH} texts.")
    threshold: Optional[float] = Field(None, ge=-1.0, le=1.0, description="Override the calibrated threshold.")
    redundancy: bool = Field(True, description="Apply the redundancy filter.")
    evidence: int = Field(3, ge=0, le=20, description="Evidence words per skill.")

    @model_validator(mode="after")
    def _one_of(self) -> "ExtractRequest":
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        for t in self.texts or []:
            if len(t) > MAX_TEXT_CHARS_API:
                raise ValueError(f"each text must be at most {MAX_TEXT_CHARS_API} characters")
        return self


class AnalyseRequest(BaseModel):
    """One whole ad and, optionally, its job title."""

    text: str = Field(..., min_length=1, max_length=MAX_TEXT_CHARS_API, description="The ad text.")
    title: Optional[str] = Field(None, max_length=300, description="The ad's job title.")
    k: int = Field(5, ge=1, le=50, description="How many occupations.")
    threshold: Optional[float] = Field(None, ge=-1.0, le=1.0)


@dataclass
class _Job:
    texts: list[str]
    spans: list[list[tuple[int, int]]]
    key: tuple[Any, ...]
    future: asyncio.Future

    @property
    def sentences(self) -> int:
        return sum(map(len, self.spans))


@dataclass
class _Batcher:
    """Collects extract jobs for ``wait_s`` or until ``max_sentences``; runs them in one worker thread."""

    retriever: "Retriever"
    lock: threading.Lock
    max_sentences: int = 64
    wait_s: float = 0.004
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    batches: int = 0

    async def submit(self, texts: list[str], threshold: float | None, redundancy: bool, evidence: int) -> list:
        # split up front: a bad text fails only its own request, and the batch reuses the spans
        spans = [self.retriever.split(t) for t in texts]
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put(_Job(texts, spans, (threshold, redundancy, evidence), fut))
        return await fut

    async def run(self) -> None:
        while True:
            first = await self.queue.get()
            jobs = [first]
            size = first.sentences
            deadline = time.perf_counter() + self.wait_s
            while size < self.max_sentences:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                jobs.append(job)
                size += job.sentences
            groups: dict[tuple, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, group in groups.items():
                await self._run_group(key, group)

    async def _run_group(self, key: tuple, group: list[_Job]) -> None:
        texts = [t for job in group for t in job.texts]
        spans = [s for job in group for s in job.spans]

        def work() -> list:
            with self.lock:
                return self.retriever.extract_many(texts, threshold=key[0], redundancy=key[1], evidence_words=key[2],
                                                   spans=spans)

        try:
            results = await asyncio.to_thread(work)
            self.batches += 1
        except Exception as exc:  # one bad batch fails its requests, never the worker
            for job in group:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        pos = 0
        for job in group:
            if not job.future.done():
                job.future.set_result(results[pos : pos + len(job.texts)])
            pos += len(job.texts)


def create_app(settings: "Settings | None" = None, retriever: "Retriever | None" = None) -> FastAPI:
    """The API app. Pass an open ``retriever`` (tests) or ``settings`` (opened in the lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        r = retriever
        own = r is None
        if r is None:
            from retriever.pipeline import Retriever

            r = Retriever(settings)  # type: ignore[arg-type]
        lock = threading.Lock()
        app.state.retriever = r
        app.state.lock = lock
        app.state.batcher = _Batcher(r, lock, max_sentences=r.settings.batch_size)
        task = asyncio.create_task(app.state.batcher.run())
        app.state.started = time.time()
        try:
            yield
        finally:
            task.cancel()
            if own:
                r.close()

    app = FastAPI(
        title="jobskills",
        version=__version__,
        description="ESCO skills in job-ad text and nearest ESCO job titles. "
        "This service uses the ESCO classification of the European Commission.",
        lifespan=lifespan,
    )

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

    def _r(request: Request) -> "Retriever":
        return request.app.state.retriever

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        r = _r(request)
        return {"status": "ok", "index_version": r.skills.version, "skills": len(r.skills),
                "uptime_s": round(time.time() - request.app.state.started, 1)}

    @app.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        r = _r(request)
        out = {"provenance": r.provenance(), "skills_manifest": r.skills.manifest, "engine": r.store.engine,
               "limits": {"max_text_chars": MAX_TEXT_CHARS_API, "max_batch": MAX_BATCH}}
        titles = r.store.current_manifest("titles")
        out["titles_manifest"] = titles[1] if titles else None
        return out

    @app.post("/extract")
    async def extract(request: Request, body: ExtractRequest) -> dict[str, Any]:
        r = _r(request)
        texts = [body.text] if body.text is not None else list(body.texts or [])
        if not texts:
            raise HTTPException(status_code=422, detail="'texts' is empty")
        results = await request.app.state.batcher.submit(texts, body.threshold, body.redundancy, body.evidence)
        prov = r.provenance()
        if body.threshold is not None:
            prov["threshold"] = body.threshold
        docs = [{"sentences": [s.to_dict() for s in res]} for res in results]
        return {"provenance": prov, **({"result": docs[0]} if body.text is not None else {"results": docs})}

    @app.post("/analyse")
    async def analyse(request: Request, body: AnalyseRequest) -> dict[str, Any]:
        from retriever.analyse import analyse_ad

        r = _r(request)
        result = await asyncio.to_thread(_locked, request, analyse_ad, r, body.text, body.title, body.k, body.threshold)
        return result.to_dict()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return _PAGE.read_text(encoding="utf-8")

    def _locked(request: Request, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        with request.app.state.lock:
            return fn(*args, **kwargs)

    @app.get("/search")
    async def search(
        request: Request,
        q: str = Query(..., min_length=1, max_length=2_000, description="Free text to match against skill labels."),
        k: int = Query(10, ge=1, le=200),
    ) -> dict[str, Any]:
        r = _r(request)
        matches = await asyncio.to_thread(_locked, request, r.search, q, k)
        return {"provenance": r.provenance(), "query": q, "skills": [m.to_dict() for m in matches]}

    @app.get("/titles")
    async def titles(
        request: Request,
        q: str = Query(..., min_length=1, max_length=300, description="A free-text job title."),
        k: int = Query(10, ge=1, le=100),
        method: str = Query("maxsim", pattern="^(maxsim|mean|hybrid)$"),
    ) -> dict[str, Any]:
        r = _r(request)
        matches = await asyncio.to_thread(_locked, request, r.titles, q, k, method)
        return {"provenance": r.provenance(), "query": q, "method": method, "occupations": [m.to_dict() for m in matches]}

    return app
