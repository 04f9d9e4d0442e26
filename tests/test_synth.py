"""Synth against a scripted OpenAI-compatible server on 127.0.0.1, through the real openai client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from synth.run import SynthConfig, multi_tasks, negative_tasks, run_tasks, skill_tasks

pytestmark = pytest.mark.integration


class Script:
    """Per skill label, the behaviours of successive calls: 'ok', 429, 500, 'invalid', 'slow'. With
    ``hold_after`` = N, the call after the first N waits (``held`` is set) until ``release`` is set."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh script for each test: no plans, no call counts left over from another test."""
        self.plans: dict[str, list] = {}
        self.calls: dict[str, int] = defaultdict(int)
        self.delay = 0.0
        self.total = 0
        self.hold_after: int | None = None
        self.held = threading.Event()
        self.release = threading.Event()

    def next(self, key: str):
        plan = self.plans.get(key, ["ok"])
        i = self.calls[key]
        self.calls[key] += 1
        self.total += 1
        return plan[min(i, len(plan) - 1)]


def _fake_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        import asyncio

        body = await request.json()
        prompt = body["messages"][1]["content"]
        key = prompt.split("\n", 1)[0].removeprefix("Skill: ")
        action = script.next(key)
        if script.hold_after is not None and script.total > script.hold_after:
            script.held.set()
            await asyncio.get_running_loop().run_in_executor(None, script.release.wait, 60)
        if script.delay:
            await asyncio.sleep(script.delay)
        if action in (429, 500):
            return JSONResponse(status_code=action, content={"error": {"message": "scripted", "type": "x"}})
        if action == "slow":
            await asyncio.sleep(3)
        if action == "invalid":
            content = "Sure! Here are sentences: one, two"
        elif "ONE ESCO group" in prompt or "belong to one ESCO group" in prompt:
            content = json.dumps({"items": [{"sentence": f"Combine {key[:20]} item {i}.", "skills": [1, 2]} for i in range(3)]
                                  + [{"sentence": "Only one skill here.", "skills": [1]}]})
        else:
            templates = ["You will {} in a fast-paced environment.", "Experience to {} is required for this role.",
                         "Our clients expect you to {} every single week."]
            content = json.dumps({"sentences": [t.format(key) for t in templates] + ["We value teamwork above all."]})
        return {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        }

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def _server():
    import uvicorn

    script = Script()
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(_fake_app(script), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the fake endpoint did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", script
    script.release.set()
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def server(_server):
    """The module's endpoint with a fresh script: no test depends on what another one asked before it."""
    url, script = _server
    script.release.set()  # let go of anything a previous test held
    script.reset()
    yield url, script
    script.release.set()


def _cfg(url, **kw):
    return SynthConfig(base_url=url, api_key="test", model="fake", concurrency=3, backoff=0.01, timeout=1.0, **kw)


def test_retries_repairs_rejects_and_dedupe(server, esco, tmp_path):
    url, script = server
    picked = list(esco.skills.values())[:5]
    labels = [s.label for s in picked]
    script.plans = {labels[0]: [429, 500, "ok"], labels[1]: ["invalid", "ok"], labels[2]: ["invalid", "invalid"],
                    labels[3]: ["slow", "ok"], labels[4]: [500] * 20}
    tasks = skill_tasks(esco, 4, [s.uri for s in picked])
    out = tmp_path / "pairs.jsonl"
    stats = run_tasks(tasks, _cfg(url, max_retries=3), out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rejects = [json.loads(line) for line in (tmp_path / "pairs.rejects.jsonl").read_text().splitlines()]
    assert {r["task"] for r in rejects} == {f"skill:{picked[2].uri}", f"skill:{picked[4].uri}"}
    assert any("not JSON" in r["reason"] for r in rejects) and any("InternalServerError" in r["reason"] for r in rejects)
    assert {r["task"] for r in rows} == {f"skill:{picked[i].uri}" for i in (0, 1, 3)}
    assert stats["retries"] >= 2 + 1 + 3 and stats["repairs"] >= 2 and stats["rejects"] == 2
    assert sum(r["sentence"] == "We value teamwork above all." for r in rows) == 1  # exact duplicates dropped
    assert stats["duplicates"] >= 2 and stats["tokens"] > 0
    assert len({r["sentence"] for r in rows}) == len(rows)
    row = rows[0]
    assert set(row) == {"sentence", "skills", "kind", "task", "prompt_version", "model", "seed", "named"}
    assert row["skills"][0]["uri"] in {s.uri for s in picked} and row["model"] == "fake"
    # the scripted sentences name the skill in 3 templates of 4; "We value teamwork" names nothing
    named = [r for r in rows if r["named"]]
    assert named and all(r["named"] == [r["skills"][0]["uri"]] for r in named)
    assert stats["named_rate"] == round(len(named) / len(rows), 4)
    # not JSON: the first answer for labels[1], both answers for labels[2]
    assert stats["invalid_json"] == 3 and 0 < stats["valid_json_rate"] < 1
    assert stats["duplicate_rate"] == round(stats["duplicates"] / (stats["rows"] + stats["duplicates"]), 4)
    assert stats["completion_tokens"] == 20 * stats["answers"]
    # an answer that was never valid JSON is final; an endpoint that kept failing is marked transient
    by_task = {r["task"]: r for r in rejects}
    assert by_task[f"skill:{picked[2].uri}"]["transient"] is False and by_task[f"skill:{picked[4].uri}"]["transient"] is True
    # rerun: done tasks (rows or final rejects) are skipped, nothing is written twice; the transient one is asked again
    again = run_tasks(tasks, _cfg(url), out)
    assert again["skipped_done"] == 4 and again["rows"] == 0 and again["rejects"] == 1
    assert len(out.read_text().splitlines()) == len(rows)


def test_demand_order_and_literal_names(esco):
    from synth.run import names_skill

    tasks = skill_tasks(esco, 4, limit=50)
    demand = [esco.skill_demand.get(t.skills[0][0], 0.0) for t in tasks]
    assert demand == sorted(demand, reverse=True) and demand[0] > demand[-1] > 0
    assert [t.id for t in skill_tasks(esco, 4, order="taxonomy", limit=3)] == [f"skill:{u}" for u in list(esco.skills)[:3]]
    assert names_skill("We need Python developers.", ["Python (computer programming)", "python"])
    assert names_skill("You will manage budgets.", ["manage budget"])  # plural folded
    assert not names_skill("You will write pythonic code.", ["python"])  # whole words only


def test_near_duplicates_are_dropped():
    from synth.run import _Dedupe

    d = _Dedupe()
    d.add("You will design and maintain robust data pipelines for our analytics platform team")
    assert d.seen("you will design and maintain robust data pipelines for our analytics platform team!")
    assert d.seen("You will design and maintain robust data pipelines for our analytics platform teams")
    assert not d.seen("You will cook Italian food for our guests")


def test_multi_and_negative_tasks(server, esco, tmp_path):
    url, script = server
    script.plans = {}
    tasks = multi_tasks(esco, 4, seed=1, limit=3)
    assert all(2 <= len(t.skills) <= 6 for t in tasks)
    # every skill offered in one prompt shares its Level-2 group
    for t in tasks:
        groups = [{g.uri for g in esco.skills[u].level2} for u, _ in t.skills]
        assert set.intersection(*groups)
    out = tmp_path / "multi.jsonl"
    run_tasks(tasks, _cfg(url), out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(2 <= len(r["skills"]) <= 4 for r in rows)  # the 1-skill item is not kept
    neg = tmp_path / "neg.jsonl"
    run_tasks(negative_tasks(25, per_prompt=10), _cfg(url), neg)
    rows = [json.loads(line) for line in neg.read_text().splitlines()]
    assert rows and all(r["skills"] == [] and r["kind"] == "negative" for r in rows)


def test_resume_after_kill(server, esco, tmp_path):
    """A SIGKILL after exactly 5 answered prompts (the 6th is held by the endpoint, no sleeps): the rerun skips
    those 5, asks the other 7, loses none of them and writes nothing twice."""
    url, script = server
    script.hold_after = 5
    uris = [s.uri for s in list(esco.skills.values())[10:22]]
    out = tmp_path / "killed.jsonl"
    args = [sys.executable, "-m", "jobskills.cli", "synth", "skills", "--out", str(out), "--per-skill", "3",
            "--base-url", url, "--api-key", "x", "--model", "fake", "--concurrency", "1", "--json"]
    for u in uris:
        args += ["--skills", u]
    env = {**os.environ, "JOBSKILLS_HOME": str(tmp_path)}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def tasks_in(path):
        return {json.loads(line)["task"] for line in path.read_text().splitlines()} if path.exists() else set()

    deadline = time.monotonic() + 120
    while not (script.held.is_set() and len(tasks_in(out)) == 5):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not reach the held 6th prompt"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    script.hold_after = None
    script.release.set()
    partial = out.read_text()
    done_before = tasks_in(out)
    assert len(done_before) == 5
    with open(out, "a") as fh:
        fh.write('{"sentence": "torn')
    res = subprocess.run(args, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    assert stats["tasks"] == 12 and stats["skipped_done"] == 5 and stats["rejects"] == 0
    rejects = tmp_path / "killed.rejects.jsonl"
    assert not rejects.exists() or rejects.read_text() == ""
    assert out.read_text().startswith(partial)  # the first run's rows kept as they were, the torn line cut
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(partial.splitlines()) + stats["rows"]
    assert {r["task"] for r in rows} == {f"skill:{u}" for u in uris}  # every prompt answered, none dropped
    assert {r["task"] for r in rows[len(partial.splitlines()):]} == {f"skill:{u}" for u in uris} - done_before
    assert len({r["sentence"] for r in rows}) == len(rows)


def test_endpoint_down_is_retried_then_recorded_for_a_rerun(server, esco, tmp_path):
    """Nothing listens at the endpoint: the client really connects, retries, records a transient reject; a rerun
    against a live endpoint asks again and succeeds."""
    url, script = server
    picked = list(esco.skills.values())[30]
    tasks = skill_tasks(esco, 3, [picked.uri])
    out = tmp_path / "down.jsonl"
    stats = run_tasks(tasks, _cfg(f"http://127.0.0.1:{_free_port()}/v1", max_retries=2), out)
    assert stats["retries"] == 3 and stats["answers"] == 0 and stats["rows"] == 0 and stats["rejects"] == 1
    [reject] = [json.loads(line) for line in (tmp_path / "down.rejects.jsonl").read_text().splitlines()]
    assert reject["task"] == f"skill:{picked.uri}" and reject["transient"] is True
    assert reject["reason"].startswith("APIConnectionError")
    again = run_tasks(tasks, _cfg(url), out)
    assert again["skipped_done"] == 0 and again["rows"] > 0 and script.calls[picked.label] == 1


def test_an_unknown_skill_uri_is_a_one_line_error(tmp_path, esco):
    from typer.testing import CliRunner

    from jobskills.cli import app

    res = CliRunner().invoke(app, ["synth", "skills", "--out", str(tmp_path / "x.jsonl"), "--skills", "http://nope",
                                   "--base-url", "http://127.0.0.1:9/v1", "--home", str(tmp_path)])
    assert res.exit_code == 1 and "unknown skill URI" in res.output
