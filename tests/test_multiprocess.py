"""Issue 16's done-when: `serve` (two workers), `extract` and `search` use one home at the same time, and an
`index` beside them switches the server to the new (skills, titles) pair; none of them fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _cli(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jobskills.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_serve_extract_search_and_index_share_one_home(tmp_path, model_path):
    env = {**os.environ, "JOBSKILLS_HOME": str(tmp_path), "JOBSKILLS_MODEL": model_path, "JOBSKILLS_RELOAD_S": "0.5"}
    first = subprocess.run([sys.executable, "-m", "jobskills.cli", "index", "--limit", "60", "--json"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    v1 = json.loads(first.stdout)["versions"]
    port = _free_port()
    server = _cli("serve", "--port", str(port), "--workers", "2", env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                health = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
        assert (health["index_version"], health["titles_version"]) == (v1["skills"], v1["titles"])
        # three more processes on the same home at once: two readers and a builder
        jobs = [_cli("extract", "Manage musical staff and orchestras.", "--json", env=env),
                _cli("search", "music", "-k", "3", "--json", env=env),
                _cli("index", "--limit", "60", "--json", env=env)]
        outs = [j.communicate(timeout=600) for j in jobs]
        for j, (out, err) in zip(jobs, outs):
            assert j.returncode == 0, err[-2000:]
        assert json.loads(outs[0][0])["provenance"]["index_version"] == v1["skills"]
        assert json.loads(outs[1][0])["skills"]
        v2 = json.loads(outs[2][0])["versions"]
        assert v2["skills"] != v1["skills"]
        # every worker moves to the new pair; requests keep working meanwhile and never mix the two pairs
        deadline = time.monotonic() + 120
        in_a_row = 0
        while in_a_row < 6:
            assert time.monotonic() < deadline, "the server did not move to the new index"
            req = urllib.request.Request(f"http://127.0.0.1:{port}/extract", data=b'{"text": "Manage musical staff."}',
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                prov = json.loads(resp.read())["provenance"]
            pair = (prov["index_version"], prov["titles_version"])
            assert pair in {(v1["skills"], v1["titles"]), (v2["skills"], v2["titles"])}
            in_a_row = in_a_row + 1 if pair == (v2["skills"], v2["titles"]) else 0
            time.sleep(0.1)
        assert server.poll() is None
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
