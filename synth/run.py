"""Synthetic (sentence, skills) data through any OpenAI-compatible endpoint, resumably.

Each *task* (one skill, one Level-2 group draw, or one negative topic draw) has a stable id. Rows are
appended to the output JSONL as tasks finish, flushed and fsynced; a task that exhausted its retries or
never gave valid JSON goes to the rejects file with the reason. On restart the output's and the rejects'
task ids are skipped (a torn last line from a kill is dropped first), so nothing is lost or written twice.
Exact and near-duplicate sentences (word-set Jaccard >= 0.8 with an earlier sentence) are dropped.

Output row, one sentence each (what ``jobskills train --data`` reads)::

    {"sentence": "...", "skills": [{"uri": ..., "label": ...}], "kind": "skill" | "multi" | "negative",
     "task": "...", "prompt_version": "synth-2", "model": "...", "seed": 0, "named": [uris named literally]}

This module must not import torch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from pydantic import BaseModel, ValidationError

from jobskills.errors import InputError, JobskillsError
from synth import prompts

__all__ = ["SynthError", "Task", "SynthConfig", "names_skill", "skill_tasks", "multi_tasks", "negative_tasks", "run_tasks"]

logger = logging.getLogger(__name__)


class SynthError(JobskillsError):
    """The LLM endpoint cannot be used (bad URL, bad key, no model)."""


class _Sentences(BaseModel):
    sentences: list[str]


class _Item(BaseModel):
    sentence: str
    skills: list[int]


class _Items(BaseModel):
    items: list[_Item]


@dataclass(frozen=True)
class Task:
    id: str
    kind: str  # skill | multi | negative
    prompt: str
    skills: tuple[tuple[str, str], ...]  # (uri, label) in prompt order
    n: int
    names: tuple[tuple[str, ...], ...] = ()  # per skill, the labels that count as naming it literally


@dataclass(frozen=True)
class SynthConfig:
    base_url: str | None = None
    api_key: str | None = None
    model: str = "gpt-4o-mini"
    concurrency: int = 4
    temperature: float = 0.9
    seed: int = 0
    max_retries: int = 5
    timeout: float = 60.0
    backoff: float = 1.0  # first retry wait in seconds; doubles, with jitter


# ------------------------------------------------------------------------------------------- tasks
def skill_tasks(esco: Any, per_skill: int, uris: Sequence[str] | None = None, limit: int | None = None,
                order: str = "demand") -> list[Task]:
    """One prompt per skill. ``order="demand"`` puts the skills most occupations ask for first (ESCO's
    occupation-skill relations), so a budget-limited run (``limit``) covers the skills job ads need most."""
    skills = [esco.skills[u] for u in uris] if uris else list(esco.skills.values())
    if order == "demand":
        demand = esco.skill_demand
        skills.sort(key=lambda s: -demand.get(s.uri, 0.0))  # stable: ties keep the taxonomy's order
    elif order != "taxonomy":
        raise InputError(f"unknown --order {order!r}; use demand or taxonomy")
    out = [
        Task(f"skill:{s.uri}", "skill", prompts.skill_prompt(s.label, s.description, s.alt_labels, per_skill),
             ((s.uri, s.label),), per_skill, ((s.label, *s.alt_labels),))
        for s in skills
    ]
    return out[:limit]


def multi_tasks(esco: Any, per_group: int, seed: int = 0, draws: int = 1, limit: int | None = None) -> list[Task]:
    """Per ESCO Level-2 group, ``draws`` prompts, each offering 6 of the group's skills to combine 2-4 at a time."""
    rng = random.Random(seed)
    members: dict[str, list[Any]] = {}
    for s in esco.skills.values():
        for g in s.level2:
            members.setdefault(g.uri, []).append(s)
    demand = esco.skill_demand
    out = []
    # groups whose skills occupations ask for most come first (a --limit keeps those); draws favour in-demand
    # skills too: 6 of the group's 12 most demanded
    for g_uri, skills in sorted(members.items(), key=lambda kv: (-sum(demand.get(s.uri, 0.0) for s in kv[1]), kv[0])):
        if len(skills) < 2:
            continue
        label = esco.level2_groups[g_uri].label
        top = sorted(skills, key=lambda s: -demand.get(s.uri, 0.0))[:12]
        for d in range(draws):
            pick = rng.sample(top, min(6, len(top)))
            out.append(Task(f"multi:{g_uri}:{seed}:{d}", "multi",
                            prompts.multi_prompt(label, [(s.label, s.description) for s in pick], per_group),
                            tuple((s.uri, s.label) for s in pick), per_group,
                            tuple((s.label, *s.alt_labels) for s in pick)))
    return out[:limit]


def negative_tasks(n: int, per_prompt: int = 10, seed: int = 0) -> list[Task]:
    rng = random.Random(seed)
    count = -(-n // per_prompt)
    return [Task(f"negative:{seed}:{i}", "negative", prompts.negative_prompt(rng.choice(prompts.NEGATIVE_TOPICS), per_prompt),
                 (), per_prompt) for i in range(count)]


# ------------------------------------------------------------------------------------------ parsing
def _parse(task: Task, content: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(sentence, skills) pairs from one answer; raises ValueError with a short reason."""
    try:
        data = json.loads(_strip_fences(content))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    try:
        if task.kind == "multi":
            items = _Items.model_validate(data).items
            out = []
            for it in items:
                idx = sorted({i for i in it.skills if 1 <= i <= len(task.skills)})
                if 2 <= len(idx) <= 4 and it.sentence.strip():
                    out.append((it.sentence.strip(), [task.skills[i - 1] for i in idx]))
        else:
            sents = _Sentences.model_validate(data).sentences
            out = [(s.strip(), list(task.skills)) for s in sents if s and s.strip()]
    except ValidationError as exc:
        raise ValueError(f"wrong shape: {exc.errors()[0]['msg']}") from None
    if not out:
        raise ValueError("no usable sentence")
    return out


def _plain(text: str) -> str:
    """Case-folded words joined by single spaces: what "the same sentence" and "names the label" compare."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def names_skill(sentence: str, labels: Iterable[str]) -> bool:
    """True when the sentence contains one of the labels as whole words (case and plural "s" folded)."""
    text = f" {_plain(sentence)} "
    for label in labels:
        words = _plain(label)
        if words and (f" {words} " in text or f" {words}s " in text):
            return True
    return False


def _strip_fences(text: str) -> str:
    m = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return m.group(1) if m else text


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text.casefold()))


@dataclass
class _Dedupe:
    exact: set[str] = field(default_factory=set)
    shingles: list[frozenset[str]] = field(default_factory=list)
    index: dict[str, list[int]] = field(default_factory=dict)

    def seen(self, sentence: str) -> bool:
        key = _plain(sentence)
        if key in self.exact:
            return True
        words = _words(sentence)
        cands: set[int] = set()
        for w in words:
            cands.update(self.index.get(w, ()))
        for i in cands:
            other = self.shingles[i]
            if words and len(words & other) / len(words | other) >= 0.8:
                return True
        return False

    def add(self, sentence: str) -> None:
        self.exact.add(_plain(sentence))
        words = _words(sentence)
        self.shingles.append(words)
        for w in words:
            self.index.setdefault(w, []).append(len(self.shingles) - 1)


def _done_tasks(path: Path, dedupe: _Dedupe | None) -> set[str]:
    """Task ids already in ``path`` (a torn last line is truncated first). A reject marked ``transient`` (the
    endpoint timed out or failed until the retries ran out) does not count: the next run asks again."""
    from jobskills.fileio import repair_jsonl_tail

    done: set[str] = set()
    for row in repair_jsonl_tail(path, require="task", what="a synth output or rejects file"):
        if not row.get("transient"):
            done.add(row.get("task", ""))
        if dedupe is not None and row.get("sentence"):
            dedupe.add(row["sentence"])
    return done


# ------------------------------------------------------------------------------------------ running
def max_tokens(task: Task) -> int:
    """An answer budget per task: a sentence of a job ad is 15-40 tokens, plus the JSON around it. Without a cap a
    small local model under a JSON grammar can emit whitespace until its context is full (minutes on a CPU)."""
    return 60 * task.n + (30 * task.n if task.kind == "multi" else 0) + 64


async def _call(client: Any, cfg: SynthConfig, messages: list[dict[str, str]], stats: dict[str, Any], limit: int | None = None) -> str:
    import openai

    wait = cfg.backoff
    for attempt in range(cfg.max_retries + 1):
        try:
            resp = await client.chat.completions.create(
                model=cfg.model, messages=messages, temperature=cfg.temperature, seed=cfg.seed,
                response_format={"type": "json_object"}, timeout=cfg.timeout, max_tokens=limit,
            )
            usage = getattr(resp, "usage", None)
            if usage is not None:
                stats["tokens"] += int(getattr(usage, "total_tokens", 0) or 0)
                stats["completion_tokens"] += int(getattr(usage, "completion_tokens", 0) or 0)
            stats["answers"] += 1
            return resp.choices[0].message.content or ""
        except (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError) as exc:
            stats["retries"] += 1
            if attempt == cfg.max_retries:
                raise
            logger.info("%s; retrying in %.1f s", type(exc).__name__, wait)
            await asyncio.sleep(wait * (0.5 + random.random()))
            wait *= 2
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                stats["retries"] += 1
                if attempt == cfg.max_retries:
                    raise
                await asyncio.sleep(wait * (0.5 + random.random()))
                wait *= 2
                continue
            if exc.status_code in (401, 403, 404):
                raise SynthError(f"the endpoint refused the request ({exc.status_code}): {exc.message}; "
                                 "check --base-url, --api-key and --model") from None
            raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _run(tasks: Sequence[Task], cfg: SynthConfig, out: Path, rejects: Path, progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    from openai import AsyncOpenAI

    dedupe = _Dedupe()
    done = _done_tasks(out, dedupe) | _done_tasks(rejects, None)
    todo = [t for t in tasks if t.id not in done]
    stats: dict[str, Any] = {"tasks": len(tasks), "skipped_done": len(tasks) - len(todo), "rows": 0, "duplicates": 0,
                             "rejects": 0, "retries": 0, "tokens": 0, "repairs": 0,
                             "answers": 0, "invalid_json": 0, "completion_tokens": 0, "skill_rows": 0, "named_rows": 0}
    client = AsyncOpenAI(base_url=cfg.base_url, api_key=cfg.api_key or "not-needed", max_retries=0, timeout=cfg.timeout)
    sem = asyncio.Semaphore(cfg.concurrency)
    lock = asyncio.Lock()
    out.parent.mkdir(parents=True, exist_ok=True)
    finished = 0
    with open(out, "a", encoding="utf-8") as sink, open(rejects, "a", encoding="utf-8") as rej:

        def write(fh: Any, rows: Iterable[dict[str, Any]]) -> None:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            if text:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())

        async def one(task: Task) -> None:
            nonlocal finished
            messages = [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": task.prompt}]
            error = ""
            transient = False  # the endpoint failed (timeouts, 5xx), not the answer: a rerun tries again
            pairs: list[tuple[str, list[tuple[str, str]]]] = []
            async with sem:
                try:
                    for attempt in range(2):  # the answer, then one repair
                        content = await _call(client, cfg, messages, stats, max_tokens(task))
                        try:
                            pairs = _parse(task, content)
                            break
                        except ValueError as exc:
                            error = str(exc)
                            stats["invalid_json"] += error.startswith("not JSON")
                            if attempt == 0:
                                stats["repairs"] += 1
                                messages += [{"role": "assistant", "content": content},
                                             {"role": "user", "content": prompts.repair_prompt(error)}]
                except SynthError:
                    raise
                except Exception as exc:  # retries exhausted: record, never drop silently
                    error = f"{type(exc).__name__}: {exc}"
                    transient = True
            async with lock:
                if pairs:
                    rows = []
                    names = dict(zip((u for u, _ in task.skills), task.names))
                    for sentence, skills in pairs:
                        if dedupe.seen(sentence):
                            stats["duplicates"] += 1
                            continue
                        dedupe.add(sentence)
                        named = [u for u, _ in skills if names_skill(sentence, names.get(u, ()))]
                        if task.kind == "skill":
                            stats["skill_rows"] += 1
                            stats["named_rows"] += bool(named)
                        rows.append({"sentence": sentence, "skills": [{"uri": u, "label": lab} for u, lab in skills],
                                     "kind": task.kind, "task": task.id, "prompt_version": prompts.PROMPT_VERSION,
                                     "model": cfg.model, "seed": cfg.seed, "named": named})
                    if not rows:  # all duplicates: remember the task as done all the same
                        rows = []
                        write(rej, [{"task": task.id, "kind": task.kind, "reason": "all sentences were duplicates"}])
                    write(sink, rows)
                    stats["rows"] += len(rows)
                else:
                    write(rej, [{"task": task.id, "kind": task.kind, "reason": error or "no answer", "transient": transient}])
                    stats["rejects"] += 1
                finished += 1
                if progress:
                    progress(finished, len(todo))

        started = time.perf_counter()
        try:
            await asyncio.gather(*(one(t) for t in todo))
        finally:
            await client.close()
        minutes = (time.perf_counter() - started) / 60
    stats["seconds"] = round(minutes * 60, 2)
    stats["sentences_per_minute"] = round(stats["rows"] / minutes, 1) if minutes > 0 else 0.0
    stats["tokens_per_second"] = round(stats["completion_tokens"] / (minutes * 60), 1) if minutes > 0 else 0.0
    stats["valid_json_rate"] = _rate(stats["answers"] - stats["invalid_json"], stats["answers"])
    stats["named_rate"] = _rate(stats["named_rows"], stats["skill_rows"])  # skill rows that name it literally
    stats["duplicate_rate"] = _rate(stats["duplicates"], stats["rows"] + stats["duplicates"])
    stats["out"], stats["rejects_file"] = str(out), str(rejects)
    return stats


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def run_tasks(tasks: Sequence[Task], cfg: SynthConfig, out: Path, rejects: Path | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run ``tasks`` against the endpoint, appending rows to ``out``; returns a summary."""
    out = Path(out)
    rejects = Path(rejects) if rejects else out.with_name(out.stem + ".rejects.jsonl")
    return asyncio.run(_run(tasks, cfg, out, rejects, progress))
