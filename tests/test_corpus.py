"""Corpus mode: one output line per input line, bad lines recorded, resume after a kill without duplicates."""

from __future__ import annotations

import json

import pytest

from jobskills.errors import InputError
from retriever.corpus import extract_corpus, resume_point
from retriever.pipeline import Retriever
from tests.conftest import house_rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def retriever(memory_index, encoder):
    settings, store = memory_index
    return Retriever(settings, store=store, encoder=encoder)


def _corpus(path, n=12):
    rows = house_rows()
    lines = []
    for i in range(n):
        ad = " ".join(r["text"] for r in rows[3 * i : 3 * i + 3])
        lines.append(json.dumps({"id": f"ad{i}", "body": ad}).encode())
    lines.insert(2, b"{not json")
    lines.insert(5, json.dumps({"id": "nofield", "text": "wrong field"}).encode())
    lines.insert(7, json.dumps({"id": "empty", "body": "   "}).encode())
    lines.insert(9, b'{"id": "latin", "body": "caf\xe9 manager"}')
    lines.insert(10, b"")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def test_every_line_gets_one_result_in_order(retriever, tmp_path):
    src, out = tmp_path / "ads.jsonl", tmp_path / "out.jsonl"
    n = _corpus(src)
    stats = extract_corpus(retriever, src, out, text_field="body", id_field="id", threshold=0.4, chunk_sentences=8)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, n + 1))
    errors = {r["line"]: r["error"] for r in rows if "error" in r}
    assert set(errors) == {3, 6, 8, 10, 11} and stats["errors"] == 5 and stats["ads"] == n - 5
    assert "not valid JSON" in errors[3] and "'body'" in errors[6] and "empty" in errors[8] and "UTF-8" in errors[10]
    # the same answer as extracting each ad alone
    first = json.loads(src.read_bytes().splitlines()[0])["body"]
    alone = retriever.extract(first, threshold=0.4, evidence_words=3)
    assert [[s["uri"] for s in sent["skills"]] for sent in rows[0]["sentences"]] == [[m.uri for m in s.skills] for s in alone]
    assert rows[0]["id"] == "ad0"


def test_resume_after_kill_and_torn_line(retriever, tmp_path):
    src, out = tmp_path / "ads.jsonl", tmp_path / "out.jsonl"
    n = _corpus(src)
    calls = []

    def killer(task, done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run

    with pytest.raises(KeyboardInterrupt):
        extract_corpus(retriever, src, out, text_field="body", id_field="id", threshold=0.4, chunk_sentences=8, progress=killer)
    written = out.read_text().splitlines()
    assert 0 < len(written) < n
    with open(out, "a") as fh:  # a kill during a write leaves half a line
        fh.write('{"line": 99, "sentences": [{"te')
    assert resume_point(out) == json.loads(written[-1])["line"]
    stats = extract_corpus(retriever, src, out, text_field="body", id_field="id", threshold=0.4, chunk_sentences=8)
    assert stats["skipped_done"] == len(written)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, n + 1))  # complete, no duplicates


def test_cli_corpus_mode(tmp_path, memory_index):
    from typer.testing import CliRunner

    from jobskills.cli import app

    res = CliRunner().invoke(app, ["extract", "--file", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl"), "--home", str(tmp_path)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["extract", "--text-field", "body", "--home", str(tmp_path), "x"])
    assert res.exit_code == 1 and "corpus mode needs" in res.output


def test_cli_corpus_mode_runs_and_resumes(tmp_path, tiny_model_path):
    """`extract --file ads.jsonl --out results.jsonl` end to end through the CLI: every line answered, bad lines
    recorded, the human summary line, then a rerun that resumes instead of redoing."""
    from typer.testing import CliRunner

    from jobskills.cli import app

    runner = CliRunner()
    home = tmp_path / "home"
    res = runner.invoke(app, ["index", "--home", str(home), "--model", tiny_model_path, "--only", "skills", "--limit", "50", "--json"])
    assert res.exit_code == 0, res.output
    src, out = tmp_path / "ads.jsonl", tmp_path / "out.jsonl"
    n = _corpus(src, n=4)
    args = ["extract", "--home", str(home), "--model", tiny_model_path, "--file", str(src), "--text-field", "body",
            "--id-field", "id", "--out", str(out), "-t", "0.0"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    assert stats["ads"] == n - 5 and stats["errors"] == 5 and stats["skipped_done"] == 0 and stats["out"] == str(out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, n + 1))
    good = [r for r in rows if "error" not in r]
    assert len(good) == n - 5 and all(r["sentences"] and r["id"].startswith("ad") for r in good)
    assert any(s["skills"] for r in good for s in r["sentences"])  # threshold 0: every sentence has skills
    # the human summary of a rerun: nothing redone, the file as it was
    before = out.read_text()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("0 ads, ") and f"-> {out}" in res.stdout and f"resumed after line {n}" in res.stdout
    assert out.read_text() == before


def test_an_unrelated_out_file_is_refused_and_left_untouched(retriever, tmp_path):
    """Issue 16.1: `--out notes.txt` once replaced the notes; a JSONL with one bad line was truncated."""
    src = tmp_path / "ads.jsonl"
    _corpus(src)
    notes = tmp_path / "notes.txt"
    notes.write_text("My notes\nline 2\n")
    with pytest.raises(InputError, match="left untouched"):
        extract_corpus(retriever, src, notes, text_field="body", id_field="id", threshold=0.4)
    assert notes.read_text() == "My notes\nline 2\n"
    other = tmp_path / "other.jsonl"
    body = '{"line": 1, "sentences": []}\nnot json\n{"line": 3, "sentences": []}\n'
    other.write_text(body)
    with pytest.raises(InputError, match="line 2"):
        extract_corpus(retriever, src, other, text_field="body", id_field="id", threshold=0.4)
    assert other.read_text() == body
    unterminated = tmp_path / "u.txt"
    unterminated.write_text("just some words")  # a file of one unterminated line is not a torn results file
    with pytest.raises(InputError):
        resume_point(unterminated)
    assert unterminated.read_text() == "just some words"


def test_a_resume_must_read_the_same_input(retriever, tmp_path):
    """Issue 16.2: resuming out.jsonl with another corpus mixed the two and skipped the new one's first lines."""
    a, b, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "out.jsonl"
    _corpus(a)
    b.write_text("".join(json.dumps({"body": f"Manage a team of {i} cooks.", "id": i}) + "\n" for i in range(20)))
    extract_corpus(retriever, a, out, text_field="body", id_field="id", threshold=0.4)
    before = out.read_text()
    with pytest.raises(InputError, match="a.jsonl"):
        extract_corpus(retriever, b, out, text_field="body", id_field="id", threshold=0.4)
    with pytest.raises(InputError, match="text_field"):
        extract_corpus(retriever, a, out, text_field="text", id_field="id", threshold=0.4)
    assert out.read_text() == before
    stats = extract_corpus(retriever, a, out, text_field="body", id_field="id", threshold=0.4)  # same input: resumes
    assert stats["ads"] == 0 and out.read_text() == before
    # the record beside a new --out is ours to write only if nothing of somebody else's sits there
    fresh = tmp_path / "fresh.jsonl"
    theirs = tmp_path / "fresh.jsonl.source.json"
    theirs.write_text("somebody's file")
    with pytest.raises(InputError, match="not written by this command"):
        extract_corpus(retriever, a, fresh, text_field="body", id_field="id", threshold=0.4)
    assert theirs.read_text() == "somebody's file" and not fresh.exists()
