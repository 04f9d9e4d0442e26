"""Load test of `jobskills serve` on loopback: requests/s and latency at 1, 4 and 16 concurrent clients, then
the fairness check: the same 16 clients while one maximal request (MAX_REQUEST_CHARS of text) is in flight.
The small requests' p95 with the large one beside them, over their p95 without it, should stay under 2.

Starts the server itself on 127.0.0.1 (a free port), sends a bounded number of POST /extract requests
(one dev sentence each) per concurrency level, with a time cap, then stops the server. Loopback only.

    python benchmarks/bench_serve.py [--home DIR] [--requests N] [--quick]

Needs a built index. Writes benchmarks/results/bench_serve[.quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import house_sentences, pct, write_result  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=None)
    ap.add_argument("--requests", type=int, default=240, help="requests per concurrency level")
    ap.add_argument("--max-seconds", type=float, default=90, help="time cap per level")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.max_seconds = 24, 30
    port = _free_port()
    env = dict(os.environ)
    if args.home:
        env["JOBSKILLS_HOME"] = args.home
    server = subprocess.Popen([sys.executable, "-m", "jobskills.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit("server did not start: " + server.stderr.read().decode()[-2000:])
                time.sleep(0.3)
        sentences = [r["text"] for r in house_sentences()]

        def one(i: int) -> tuple[float, bool]:
            body = json.dumps({"text": sentences[i % len(sentences)]}).encode()
            req = urllib.request.Request(base + "/extract", data=body, headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    ok = r.status == 200 and "result" in json.loads(r.read())
            except Exception:
                ok = False
            return (time.perf_counter() - t0) * 1000, ok

        for i in range(8):  # warm-up
            one(i)
        levels = {}
        for conc in (1, 4, 16):
            lat, errors = [], 0
            t0 = time.perf_counter()
            with ThreadPoolExecutor(conc) as pool:
                futures = []
                for i in range(args.requests):
                    futures.append(pool.submit(one, i))
                for f in futures:
                    ms, ok = f.result()
                    lat.append(ms)
                    errors += not ok
                    if time.perf_counter() - t0 > args.max_seconds:
                        for g in futures:
                            g.cancel()
                        break
            wall = time.perf_counter() - t0
            levels[str(conc)] = {
                "requests": len(lat), "errors": errors, "requests_per_s": round(len(lat) / wall, 2),
                "p50_ms": round(pct(lat, 0.5), 1), "p95_ms": round(pct(lat, 0.95), 1),
            }
            print(f"concurrency {conc}: {levels[str(conc)]}", file=sys.stderr)
        mixed = _mixed(base, one, sentences, args, levels["16"])
        with urllib.request.urlopen(base + "/info", timeout=10) as r:
            prov = json.loads(r.read())["provenance"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    result = {"benchmark": "bench_serve", "endpoint": "POST /extract (one dev sentence per request)", "levels": levels,
              "with_one_maximal_request": mixed, "provenance": prov, "command": " ".join(["python", *sys.argv])}
    print(write_result("bench_serve", result, args.quick))


def _mixed(base: str, one, sentences: list[str], args: argparse.Namespace, alone: dict) -> dict:
    """16 clients of one-sentence requests while one maximal request runs; only the small requests that both
    started and finished while the large one was in flight count."""
    from retriever.api import MAX_REQUEST_CHARS, MAX_TEXT_CHARS_API

    budget = MAX_REQUEST_CHARS if not args.quick else 20_000
    texts, text = [], ""
    while sum(map(len, texts)) + len(text) < budget:
        s = sentences[(len(texts) * 7 + len(text)) % len(sentences)]
        if len(text) + len(s) + 1 > min(MAX_TEXT_CHARS_API, budget):
            texts.append(text.strip())
            text = ""
        text += s + " "
    if text.strip() and sum(map(len, texts)) + len(text) <= budget:
        texts.append(text.strip())
    big_state: dict = {}

    def big() -> None:
        req = urllib.request.Request(base + "/extract", data=json.dumps({"texts": texts}).encode(),
                                     headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=1800) as r:
                data = json.loads(r.read())
                big_state["sentences"] = sum(len(d["sentences"]) for d in data["results"])
                big_state["ok"] = r.status == 200
        except Exception as exc:  # reported, not raised: the figure says what happened
            big_state["ok"], big_state["error"] = False, repr(exc)[:300]
        big_state["seconds"] = round(time.perf_counter() - t0, 1)
        big_state["end"] = time.perf_counter()

    with ThreadPoolExecutor(1) as bigpool:
        big_started = time.perf_counter()
        running = bigpool.submit(big)
        while True:  # until the large request's sentences are queued
            with urllib.request.urlopen(base + "/info", timeout=10) as r:
                if json.loads(r.read())["queue"]["sentences_waiting"] > 0 or running.done():
                    break
            time.sleep(0.05)
        lat, errors, t0 = [], 0, time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            spans = []

            def timed(i: int) -> tuple[float, float, float, bool]:
                start = time.perf_counter()
                ms, ok = one(i)
                return start, time.perf_counter(), ms, ok

            futures = [pool.submit(timed, i) for i in range(args.requests)]
            for f in futures:
                spans.append(f.result())
                if time.perf_counter() - t0 > args.max_seconds:
                    for g in futures:
                        g.cancel()
                    break
        running.result()
    end = big_state.get("end", time.perf_counter())
    inside = [(ms, ok) for start, stop, ms, ok in spans if start >= big_started and stop <= end]
    lat = [ms for ms, _ in inside]
    errors = sum(not ok for _, ok in inside)
    out = {"large_request": {"texts": len(texts), "chars": sum(map(len, texts)), **{k: v for k, v in big_state.items() if k != "end"}},
           "small_requests_during": len(lat), "errors": errors}
    if lat:
        out["p50_ms"] = round(pct(lat, 0.5), 1)
        out["p95_ms"] = round(pct(lat, 0.95), 1)
        out["p95_ratio_to_alone"] = round(out["p95_ms"] / alone["p95_ms"], 2)
    print(f"16 clients beside one maximal request: {out}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
