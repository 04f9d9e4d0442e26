"""Redraw docs/page.png: the analysis page on a real home, in headless Chromium (Debian's, through playwright).

    python docs/screenshot.py [--home DIR] [--out docs/page.png]

Needs `pip install -e ".[browser]"`, Debian's chromium and a built index (`jobskills index`). Serves the page on
127.0.0.1 only, fills in the README's data-engineer ad, and waits for the result before the screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from pathlib import Path

AD = """We are looking for a Data Engineer to join our analytics team.
- Build and maintain ETL pipelines in Python and SQL.
- Design data warehouse models and manage our cloud databases.
- Work with data scientists to deploy machine learning models.
- Fluent English; German is a plus.
We offer flexible hours and a yearly training budget."""


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from jobskills.config import load_settings
    from retriever.api import create_app

    ap = argparse.ArgumentParser()
    ap.add_argument("--home")
    ap.add_argument("--out", default=str(Path(__file__).with_name("page.png")))
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is not installed (apt-get install chromium)")
    settings = load_settings({"home": args.home} if args.home else {})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    deadline = time.time() + 120
    while not srv.started and time.time() < deadline:
        time.sleep(0.1)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#title", "Data engineer")
            page.fill("#text", AD)
            page.click("#go")
            page.wait_for_selector("tr.skill", timeout=120_000)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        srv.should_exit = True
    print(args.out)


if __name__ == "__main__":
    main()
