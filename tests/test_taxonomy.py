"""Bring-your-own taxonomy: import, index, extract, search, eval and calibrate on its ids only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobskills.cli import app
from jobskills.models import shipped_dir
from jobskills.errors import InputError
from jobskills.modelconfig import calibration_path
from jobskills.taxonomy import (
    DEFAULT_TAXONOMY, check_taxonomy_name, import_csv, list_taxonomies, load_taxonomy, remove_taxonomy, skills_kind, taxonomy_dir,
)

pytestmark = pytest.mark.integration

IT = Path(__file__).parent / "data" / "it_skills.csv"
COLS = ["--id-column", "code", "--label-column", "name", "--description-column", "definition",
        "--alt-labels-column", "synonyms", "--group-column", "area"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("tax-home")
    runner = CliRunner()
    res = runner.invoke(app, ["taxonomy", "add", "it-skills", str(IT), *COLS, "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    meta = json.loads(res.stdout)
    assert meta["skills"] == 200 and meta["with_alt_labels"] == 40 and meta["groups"] == 8
    assert runner.invoke(app, ["index", "--taxonomy", "it-skills", "--home", str(home)]).exit_code == 0
    assert runner.invoke(app, ["index", "--home", str(home), "--limit", "40"]).exit_code == 0  # ESCO beside it
    return home


def test_extract_and_search_return_only_its_ids(home):
    runner = CliRunner()
    res = runner.invoke(app, ["extract", "--taxonomy", "it-skills", "--home", str(home), "-t", "0.3", "--json",
                              "You will administer our Kubernetes clusters and write Python services."])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    uris = [s["uri"] for sent in data["sentences"] for s in sent["skills"]]
    assert uris and all(u.startswith("IT-") for u in uris)
    assert data["provenance"]["taxonomy"] == "it-skills" and data["provenance"]["taxonomy_fingerprint"]
    res = runner.invoke(app, ["search", "--taxonomy", "it-skills", "--home", str(home), "Kubernetes administration", "-k", "3", "--json"])
    top = json.loads(res.stdout)["skills"]
    assert top[0]["uri"] == "IT-022" and all(s["uri"].startswith("IT-") for s in top)  # Kubernetes administration
    # ESCO beside it answers with ESCO ids
    res = runner.invoke(app, ["search", "--home", str(home), "manage musical staff", "-k", "3", "--json"])
    assert all(s["uri"].startswith("http://data.europa.eu/esco/skill/") for s in json.loads(res.stdout)["skills"])


def test_benchmark_with_its_ids_evaluates_and_calibrates(home, tmp_path):
    rows = [{"text": "Our team writes services in Python every day.", "skills": ["IT-001"]},
            {"text": "You keep the Docker hosts running and patched.", "skills": ["IT-032"]},  # Docker administration
            {"text": "We offer free lunches.", "skills": []}]
    bench = tmp_path / "it.jsonl"
    bench.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(bench), "--taxonomy", "it-skills", "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sentences_with_gold"] == 2
    res = runner.invoke(app, ["calibrate", str(bench), "--taxonomy", "it-skills", "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    best = json.loads(res.stdout)["best"]["threshold"]
    info = json.loads(runner.invoke(app, ["info", "--home", str(home), "--json"]).stdout)
    assert info["skills_it-skills"]["manifest"]["threshold"] == best
    shipped = json.loads((shipped_dir() / "jobskills_config.json").read_text())
    assert info["skills"]["manifest"]["threshold"] == shipped["threshold"]  # ESCO's threshold untouched
    assert list((home / "calibration").glob("*-it-skills.json"))
    # ESCO ids against the custom index: a clear, line-numbered error
    esco_bench = tmp_path / "esco.jsonl"
    esco_bench.write_text(json.dumps({"text": "x", "skills": ["http://data.europa.eu/esco/skill/0005c151-5b5a-4a66-8aac-60e734beb1ab"]}) + "\n")
    res = runner.invoke(app, ["eval", str(esco_bench), "--taxonomy", "it-skills", "--home", str(home)])
    assert res.exit_code == 1 and ":1: unknown skill URI" in res.output


def test_alt_labels_and_groups_are_kept(home):
    tax = load_taxonomy(home, "it-skills")
    py = tax.skills["IT-001"]
    assert py.label == "Python programming" and py.alt_labels == ("Python development", "coding in Python")
    assert py.level2[0].label == "development"


@pytest.mark.parametrize(
    "content, message",
    [
        ("code,name\nA,alpha\nA,beta\n", ":3: duplicate id 'A' (first on line 2)"),
        ("code,name\nA,alpha\nB,  \n", ":3: empty label"),
        ("code,name\n,alpha\n", ":2: empty id"),
        ("id,label\nA,alpha\n", ":1: no column 'code'"),
        ("code,name\n", "has no skills"),
    ],
)
def test_bad_csv_names_the_line(tmp_path, content, message):
    src = tmp_path / "bad.csv"
    src.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_csv(tmp_path, "bad", src, id_column="code", label_column="name")


def test_non_utf8_and_bad_names(tmp_path):
    src = tmp_path / "latin.csv"
    src.write_bytes("code,name\nA,alpha\nB,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=":3: not UTF-8"):
        import_csv(tmp_path, "latin", src, id_column="code", label_column="name")
    with pytest.raises(InputError, match="built-in"):
        import_csv(tmp_path, "esco-1.1.0", IT)
    with pytest.raises(InputError, match="lowercase"):
        import_csv(tmp_path, "Bad Name", IT)


def test_remove_drops_only_its_collections(home, tmp_path):
    """On a copy of the module's home: removing must not change what the other tests see, in any order."""
    home = Path(shutil.copytree(home, tmp_path / "home"))
    runner = CliRunner()
    before = json.loads(runner.invoke(app, ["info", "--home", str(home), "--json"]).stdout)
    assert before["skills_it-skills"]["live"]
    res = runner.invoke(app, ["taxonomy", "remove", "it-skills", "--home", str(home)])
    assert res.exit_code == 0, res.output
    after = json.loads(runner.invoke(app, ["info", "--home", str(home), "--json"]).stdout)
    assert "skills_it-skills" not in after
    assert after["skills"]["live"] == before["skills"]["live"] and after["titles"]["live"] == before["titles"]["live"]
    res = runner.invoke(app, ["extract", "--taxonomy", "it-skills", "--home", str(home), "python"])
    assert res.exit_code == 1 and "it-skills" in res.output and "Traceback" not in res.output


BAD_NAMES = ["../../x", "evil\n", "a/b", "..", ".hidden", "", "Bad", "x" * 42, "-lead", "it skills", "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_one_name_check_guards_every_path_built_from_a_name(tmp_path, name):
    """Issue 16.10: `--taxonomy ../../x` read a taxonomy outside the home; a trailing newline passed `$`."""
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / "taxonomy.json").write_text(json.dumps({"name": "x", "fingerprint": "f"}))
    home = tmp_path / "a" / "b"  # ../../x from <home>/taxonomies is tmp_path/a/x; from home itself it is tmp_path/x
    for call in (lambda: check_taxonomy_name(name), lambda: load_taxonomy(home, name), lambda: skills_kind(name),
                 lambda: taxonomy_dir(home, name), lambda: remove_taxonomy(home, name),
                 lambda: import_csv(home, name, IT, *COLS[1::2][:2]), lambda: calibration_path(home, "fp", name)):
        with pytest.raises(InputError, match="taxonomy name"):
            call()
    assert not home.exists()


def test_good_names_and_the_builtin_one():
    assert check_taxonomy_name(None) == check_taxonomy_name(DEFAULT_TAXONOMY) == DEFAULT_TAXONOMY
    assert check_taxonomy_name("it-skills") == "it-skills" and check_taxonomy_name("x" * 41) == "x" * 41
    assert skills_kind(None) == "skills" and skills_kind("it-skills") == "skills_it-skills"
    with pytest.raises(InputError, match="built-in"):
        check_taxonomy_name(DEFAULT_TAXONOMY, builtin_ok=False)


@pytest.mark.parametrize("command", [
    ["index"], ["extract", "Python developer"], ["search", "python"], ["calibrate", str(IT)], ["eval", str(IT)],
    ["taxonomy", "remove"], ["synth", "skills", "--out", "o.jsonl"], ["train", "--no-reindex"],
])
@pytest.mark.parametrize("name", ["../../x", "evil\n"])
def test_every_command_refuses_a_bad_name_in_one_line(tmp_path, command, name):
    home = tmp_path / "home"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "taxonomy.json").write_text(json.dumps({"name": "x", "fingerprint": "f"}))
    args = [*command, name] if command == ["taxonomy", "remove"] else [*command, "--taxonomy", name]
    res = CliRunner().invoke(app, [*args, "--home", str(home)])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: taxonomy name") and "Traceback" not in res.output


def test_a_name_with_a_newline_is_refused_and_a_bad_folder_does_not_break_the_listing(tmp_path):
    runner = CliRunner()
    home = tmp_path / "home"
    res = runner.invoke(app, ["taxonomy", "add", "evil\n", str(IT), *COLS, "--home", str(home)])
    assert res.exit_code == 1 and "taxonomy name 'evil\\n'" in res.output
    assert not (home / "taxonomies").exists() or not any((home / "taxonomies").iterdir())
    # a folder made by hand (or by an older jobskills that let the name in) is skipped, not fatal
    bad = home / "taxonomies" / "evil\n"
    bad.mkdir(parents=True)
    (bad / "taxonomy.json").write_text(json.dumps({"name": "evil\n", "fingerprint": "f", "skills": 1}))
    assert [t["name"] for t in list_taxonomies(home)] == [DEFAULT_TAXONOMY]
    res = runner.invoke(app, ["taxonomy", "list", "--home", str(home), "--json"])
    assert res.exit_code == 0 and [t["name"] for t in json.loads(res.stdout)] == [DEFAULT_TAXONOMY]
    res = runner.invoke(app, ["info", "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
