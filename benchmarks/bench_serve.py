"""Load test of `jobskills serve` on loopback: requests/s and latency at 1, 4 and 16 concurrent clients.

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
        with urllib.request.urlopen(base + "/info", timeout=10) as r:
            prov = json.loads(r.read())["provenance"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    result = {"benchmark": "bench_serve", "endpoint": "POST /extract (one dev sentence per request)", "levels": levels,
              "provenance": prov, "command": " ".join(["python", *sys.argv])}
    print(write_result("bench_serve", result, args.quick))


if __name__ == "__main__":
    main()
