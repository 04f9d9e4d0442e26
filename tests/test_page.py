"""The analysis page in a real headless browser (Debian's chromium driven by playwright), on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time

import pytest

from retriever.api import create_app
from retriever.pipeline import Retriever

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "no chromium binary on PATH: install the system's chromium (apt-get install chromium), as .ci/run does"


@contextlib.contextmanager
def _serving(retriever):
    """A real uvicorn server for ``retriever`` on a free loopback port; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(retriever=retriever), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(edge_index, encoder):
    settings, store = edge_index
    with _serving(Retriever(settings, store=store, encoder=encoder)) as url:
        yield url


def test_analyse_endpoint(server):
    import json
    import urllib.request

    req = urllib.request.Request(server + "/analyse", data=json.dumps({"text": "Manage musical staff.", "title": "musician"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        data = json.loads(resp.read())
    assert data["skills"][0]["label"] == "manage musical staff" and data["occupations"] and data["sentence_spans"]


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_page_shows_skills_and_highlights(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    ad = ("We are looking for a conductor to manage musical staff.\n"
          "You will hire background musicians for our tours.\n"
          "We offer free coffee.")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server + "/")
        page.fill("#title", "conductor")
        page.fill("#text", ad)
        page.click("#go")
        page.wait_for_selector("tr.skill", timeout=60_000)
        skills = page.locator("tr.skill").all_inner_texts()
        assert any("manage musical staff" in s for s in skills)
        marks = page.locator("#sentences mark")
        assert marks.count() > 0
        assert "musical" in " ".join(marks.all_inner_texts()) or "staff" in " ".join(marks.all_inner_texts())
        assert page.locator("tr.occupation").count() > 0
        assert page.locator("#error").inner_text() == ""
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        target = os.environ.get("JOBSKILLS_DOCS_SCREENSHOT")
        if target:
            page.screenshot(path=target, full_page=True)
        browser.close()
    assert (tmp_path / "page.png").stat().st_size > 10_000


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_page_asks_for_the_api_key_and_then_works(edge_index, encoder):
    """Issue 16.9: with JOBSKILLS_API_KEY set the page's request gets a 401, the page asks for the key once, and
    the retried request succeeds."""
    import dataclasses

    playwright = pytest.importorskip("playwright.sync_api")
    settings, store = edge_index
    r = Retriever(dataclasses.replace(settings, api_key="k-123"), store=store, encoder=encoder)
    asked = []
    with _serving(r) as url:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.on("dialog", lambda d: (asked.append(d.message), d.accept("k-123")))
            page.goto(url + "/")
            page.fill("#text", "We are looking for a conductor to manage musical staff.")
            page.click("#go")
            page.wait_for_selector("tr.skill", timeout=60_000)
            assert page.locator("#error").inner_text() == ""
            browser.close()
    assert asked == ["This server needs an API key:"]
