"""The CLI through typer's runner: exit codes, JSON that parses, one-line errors without tracebacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from jobskills.cli import app
from jobskills.models import shipped_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory, runner):
    home = tmp_path_factory.mktemp("cli-home")
    res = runner.invoke(app, ["index", "--home", str(home), "--limit", "60", "--json"])
    assert res.exit_code == 0, res.output
    return home


def test_help_does_not_import_torch():
    code = "import sys, jobskills.cli, synth.run; bad = [m for m in ('torch', 'sentence_transformers', 'qdrant_client', 'qdrant_edge') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_help_lists_commands(runner):
    """Each command has its own row in the Commands panel (the app's description also says "titles")."""
    import click
    import typer

    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    panel = res.output[res.output.index("Commands"):]
    rows = [m.group(1) for m in re.finditer(r"^\W (\S+)  +\S", panel, flags=re.MULTILINE)]
    group = typer.main.get_command(app)
    registered = group.list_commands(click.Context(group))
    assert sorted(rows) == sorted(registered)
    assert {"index", "info", "extract", "search", "titles", "eval", "calibrate", "analyse", "serve", "taxonomy"} <= set(rows)


def test_index_json_and_info(runner, home):
    res = runner.invoke(app, ["info", "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    m = info["skills"]["manifest"]
    assert m["count"] == 60 and m["dim"] == 384 and m["esco_version"] == "v1.1.0"
    assert m["scorer_version"] == "contextmatch-1" and 0 < m["threshold"] < 1
    shipped = json.loads((shipped_dir() / "jobskills_config.json").read_text())  # the packaged default's settings
    assert m["score_config"] == shipped["score"] and m["threshold"] == shipped["threshold"]
    assert m["model_name"] == "jobskills-minilm" and m["labels"] == shipped["labels"] and m["model_training"]["dev"]["rp@5"] > 0.55
    assert info["titles"]["manifest"]["count"] > 60
    human = runner.invoke(app, ["info", "--home", str(home)])
    assert "skills: 60 points" in human.output


def test_extract_json(runner, home, tmp_path):
    res = runner.invoke(app, ["extract", "--home", str(home), "--json", "-t", "0.3",
                              "We need someone to manage musical staff. Free coffee!"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["provenance"]["threshold"] == 0.3 and data["provenance"]["esco_version"] == "v1.1.0"
    assert len(data["sentences"]) == 2
    first = data["sentences"][0]["skills"]
    assert first and first[0]["label"] == "manage musical staff" and first[0]["evidence"]
    assert {"uri", "label", "skill_type", "score", "evidence"} <= set(first[0])
    ad = tmp_path / "ad.txt"
    ad.write_text("Manage musical staff.\n- Coordinate duties of musical staff\n", encoding="utf-8")
    res = runner.invoke(app, ["extract", "--home", str(home), "--file", str(ad), "--json"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)["sentences"]) == 2


def test_search_and_titles(runner, home, esco):
    res = runner.invoke(app, ["search", "--home", str(home), "music staff", "-k", "5", "--json"])
    assert res.exit_code == 0, res.output
    skills = json.loads(res.stdout)["skills"]
    assert len(skills) == 5 and skills[0]["score"] >= skills[-1]["score"]
    occ = next(iter(esco.occupations.values()))
    res = runner.invoke(app, ["titles", "--home", str(home), occ.label, "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["occupations"][0]["occupation_uri"] == occ.uri
    res = runner.invoke(app, ["titles", "--home", str(home), occ.label, "-k", "3"])
    assert occ.label in res.output and "ISCO" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["extract", "   "], "empty"),
        (["extract"], "either TEXT or --file"),
        (["extract", "x", "--model", "/nonexistent/model"], "does not exist"),
        (["extract", "x", "--candidates", "magic"], "unknown candidate mode"),
        (["titles", "  "], "empty"),
    ],
)
def test_errors_are_one_line(runner, home, args, message):
    res = runner.invoke(app, [*args, "--home", str(home)])
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert len([ln for ln in res.output.splitlines() if ln.strip()]) == 1


def test_non_utf8_file(runner, home, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Gestion de l'équipe".encode("latin-1"))
    res = runner.invoke(app, ["extract", "--home", str(home), "--file", str(bad)])
    assert res.exit_code == 1 and "not UTF-8" in res.output


def test_no_index_yet(runner, tmp_path):
    res = runner.invoke(app, ["extract", "--home", str(tmp_path), "hello"])
    assert res.exit_code == 1 and "jobskills index" in res.output


def test_mismatched_model(runner, home, tiny_model_path):
    res = runner.invoke(app, ["extract", "--home", str(home), "--model", tiny_model_path, "hello"])
    assert res.exit_code == 1 and "jobskills index" in res.output and "fingerprint" in res.output


def test_rebuild_and_rollback(runner, tmp_path):
    home = str(tmp_path)
    for _ in range(2):
        assert runner.invoke(app, ["index", "--home", home, "--limit", "5", "--only", "skills", "--json"]).exit_code == 0
    first = json.loads(runner.invoke(app, ["info", "--home", home, "--json"]).stdout)["skills"]
    assert len(first["versions"]) == 2 and first["live"] == first["versions"][1]
    res = runner.invoke(app, ["index", "--home", home, "--rollback", "--only", "skills", "--json"])
    assert res.exit_code == 0, res.output
    after = json.loads(runner.invoke(app, ["info", "--home", home, "--json"]).stdout)["skills"]
    assert after["live"] == first["versions"][0]
    # nothing older left to roll back to
    res = runner.invoke(app, ["index", "--home", home, "--rollback", "--only", "skills"])
    assert res.exit_code == 1 and "no previous" in res.output


def test_a_home_that_is_a_file_and_an_unknown_taxonomy_are_one_line_errors(tmp_path):
    """Issue 16.11 and 16.13: a file as --home gave a raw NotADirectoryError; `extract --taxonomy nosuch`
    advised indexing a taxonomy that does not exist."""
    runner = CliRunner()
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    res = runner.invoke(app, ["info", "--home", str(afile)])
    assert res.exit_code == 1 and "is a file, not a folder" in res.output and "Traceback" not in res.output
    assert afile.read_text() == "mine"
    res = runner.invoke(app, ["extract", "--home", str(tmp_path / "h"), "--taxonomy", "nosuch", "Python developer"])
    assert res.exit_code == 1 and "no taxonomy 'nosuch'" in res.output and "jobskills index" not in res.output


@pytest.mark.parametrize("command", ["extract", "analyse"])
def test_a_text_over_the_limit_is_refused_before_the_model_loads(runner, tmp_path, command):
    """Issue 16.14: a 2 MB --file waited for a 7.5 s model load, then advised --file. The size check now comes
    first (a model that does not exist is never reached) and points at corpus mode."""
    big = tmp_path / "ad.txt"
    big.write_text("We need Python developers. " * 80_000, encoding="utf-8")  # 2.16 M characters
    res = runner.invoke(app, [command, "--file", str(big), "--model", "/nonexistent/model", "--home", str(tmp_path / "h")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "2,160,000 characters" in lines[0] and "2,000,000-character limit" in lines[0]
    assert f"jobskills {command} --file ads.jsonl --text-field text --out results.jsonl" in lines[0]
    assert "does not exist" not in res.output and not (tmp_path / "h").exists()  # no store opened, no model loaded
    # stdin is bounded too, and a file too large to hold is refused by its size without reading it
    res = runner.invoke(app, [command, "--file", "-", "--model", "/nonexistent/model", "--home", str(tmp_path / "h")],
                        input="x " * 1_000_001)
    assert res.exit_code == 1 and "stdin has 2,000,002 characters" in res.output
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as fh:
        fh.truncate(8_000_001)  # sparse: 8 MB of zeros on paper
    res = runner.invoke(app, [command, "--file", str(huge), "--home", str(tmp_path / "h")])
    assert res.exit_code == 1 and "8,000,001 bytes" in res.output


def test_titles_refuses_a_text_without_words_like_extract(runner, tmp_path):
    """Issue 16.15: emoji alone got confident title hits while extract refused them."""
    for args in (["titles", "🚀🔥 ✨"], ["extract", "🚀🔥 ✨"], ["titles", "—!?"]):
        res = runner.invoke(app, [*args, "--model", "/nonexistent/model", "--home", str(tmp_path)])
        assert res.exit_code == 1 and "has no words to analyse" in res.output, res.output
        assert len([ln for ln in res.output.splitlines() if ln.strip()]) == 1


def test_the_titles_index_uses_the_packaged_title_model(home, runner):
    """`jobskills index` builds the job-title index with jobskills-minilm-titles (its own fingerprint, recorded in
    the titles manifest), the skills index with the skills model, and `titles` answers with the title model."""
    from jobskills.config import load_settings
    from jobskills.store import open_store

    with open_store(load_settings({"home": home}, env={})) as store:
        skills, titles = store.current_manifest("skills")[1], store.current_manifest("titles")[1]
    assert titles["model_name"] == "jobskills-minilm-titles" and skills["model_name"] == "jobskills-minilm"
    assert titles["model_fingerprint"] != skills["model_fingerprint"]
    res = runner.invoke(app, ["titles", "--home", str(home), "--json", "nurse"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["method"] == "hybrid" and data["occupations"]
