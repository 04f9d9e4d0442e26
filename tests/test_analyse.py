"""Whole-ad analysis: deduplication across sentences, occupation ranking on a case known from ESCO."""

from __future__ import annotations

import json

import pytest

from indexer.build import build_index
from jobskills.config import load_settings
from jobskills.store import open_store
from retriever.analyse import analyse_ad
from retriever.pipeline import Retriever

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def case(tmp_path_factory, encoder, esco):
    """An occupation among the indexed titles, and an index holding its essential skills plus others."""
    occupations = list(esco.occupations.values())[:25]
    target = max(occupations, key=lambda o: sum(1 for v in esco.occupation_skills.get(o.uri, {}).values() if v == "essential"))
    essential = [u for u, v in esco.occupation_skills[target.uri].items() if v == "essential"]
    others = [u for u in list(esco.skills)[::50] if u not in essential][:250]
    settings = load_settings({"home": tmp_path_factory.mktemp("ad-home"), "engine": "edge"}, env={})
    store = open_store(settings)
    build_index(settings, store, encoder, esco=esco, kinds=("skills",), skill_uris=essential + others)
    build_index(settings, store, encoder, esco=esco, kinds=("titles",), limit=25)
    r = Retriever(settings, store=store, encoder=encoder)
    yield r, target, essential
    store.close()


def test_skills_are_deduplicated_across_sentences(case, esco):
    r, target, essential = case
    label = esco.skills[essential[0]].label
    ad = f"You will {label}.\nWe expect you to {label} every day.\nBenefits: free coffee."
    result = analyse_ad(r, ad, threshold=0.5)
    entries = [s for s in result.skills if s.uri == essential[0]]
    assert len(entries) == 1 and entries[0].sentences == 2 and len(entries[0].evidence) == 2
    assert len({s.uri for s in result.skills}) == len(result.skills)
    assert entries[0].pillar in ("skills/competences", "knowledge", "language skills and knowledge", "transversal skills and competences")


def test_occupation_from_its_own_essential_skills(case, esco):
    r, target, essential = case
    ad = "\n".join(f"- {esco.skills[u].label}" for u in essential[:8])
    skills_only = analyse_ad(r, ad, threshold=0.6)
    assert skills_only.occupations[0].uri == target.uri
    assert skills_only.occupations[0].title_score is None and len(skills_only.occupations[0].shared_essential) >= 5
    with_title = analyse_ad(r, ad, title=target.label, threshold=0.6)
    assert with_title.occupations[0].uri == target.uri and with_title.occupations[0].matched_title
    # the essential skills the ad left out are the expected-but-missing ones
    missing = {m["uri"] for m in with_title.expected_missing}
    found = {s.uri for s in with_title.skills}
    assert missing == {u for u in essential if u not in found}
    assert json.dumps(with_title.to_dict())  # serialisable


def test_a_long_ad_reports_progress_and_gets_the_same_answer(case, esco, monkeypatch):
    """Issue 16.16: a 1 MB ad ran for minutes with no output. Its sentences now go through in chunks, each
    reported; chunking does not change what is found."""
    import retriever.analyse as analyse_mod

    r, target, essential = case
    ad = "\n".join(f"- You will {esco.skills[u].label}." for u in essential[:12]) + "\nFree coffee. Flexible hours."
    plain = analyse_ad(r, ad, threshold=0.5)
    monkeypatch.setattr(analyse_mod, "PROGRESS_CHUNK", 5)
    calls = []
    reported = analyse_ad(r, ad, threshold=0.5, progress=lambda task, done, total: calls.append((task, done, total)))
    n = plain.sentences
    assert n == 14 and calls == [("sentences", d, n) for d in (0, 5, 10, 14)]
    assert [(s.uri, s.sentences) for s in reported.skills] == [(s.uri, s.sentences) for s in plain.skills]
    assert [s.score for s in reported.skills] == pytest.approx([s.score for s in plain.skills], abs=1e-5)
    assert [o.uri for o in reported.occupations] == [o.uri for o in plain.occupations]


def test_cli_analyse(tmp_path, esco, monkeypatch):
    from typer.testing import CliRunner

    from jobskills import cli_common
    from jobskills.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["index", "--home", str(tmp_path), "--limit", "30"]).exit_code == 0
    occ = next(iter(esco.occupations.values()))
    res = runner.invoke(app, ["analyse", "--home", str(tmp_path), "--title", occ.label, "--json", "Manage musical staff. Free coffee."])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert {"skills", "occupations", "expected_missing", "provenance", "skills_by_pillar"} <= set(data)
    assert occ.uri in [o["uri"] for o in data["occupations"]]
    res = runner.invoke(app, ["analyse", "--home", str(tmp_path), "--title", occ.label, "Manage musical staff."])
    assert res.exit_code == 0 and "occupations:" in res.output
    res = runner.invoke(app, ["analyse", "--home", str(tmp_path), "  "])
    assert res.exit_code == 1 and "empty" in res.output
    # progress on stderr (plain lines off a terminal; one per interval, here every report), results on stdout
    monkeypatch.setattr(cli_common, "PROGRESS_EVERY", 0.0)
    ad = "\n".join(["Manage musical staff.", "Coordinate duties of musical staff."] * 3)
    res = runner.invoke(app, ["analyse", "--home", str(tmp_path), ad])
    assert res.exit_code == 0 and "sentences: 6/6 (100%)" in res.stderr and "sentences:" not in res.stdout
    res = runner.invoke(app, ["analyse", "--home", str(tmp_path), "--json", ad])
    assert res.exit_code == 0 and res.stderr == "" and json.loads(res.stdout)["sentences"] == 6


def test_corpus_mode_resume_and_summary(tmp_path, esco):
    import csv

    from typer.testing import CliRunner

    from jobskills.cli import app

    runner = CliRunner()
    home = tmp_path / "home"
    assert runner.invoke(app, ["index", "--home", str(home), "--limit", "30"]).exit_code == 0
    occ = list(esco.occupations.values())
    lines = [json.dumps({"id": i, "title": occ[i].label, "body": "Manage musical staff. Coordinate duties of musical staff."})
             for i in range(6)]
    lines.insert(3, json.dumps({"id": "x", "body": "no title here"}))
    src = tmp_path / "ads.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.csv"
    args = ["analyse", "--home", str(home), "--file", str(src), "--text-field", "body", "--title-field", "title",
            "--id-field", "id", "--out", str(out), "--summary", str(summary), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    assert stats["ads"] == 6 and stats["errors"] == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, 8))
    assert "title field 'title'" in rows[3]["error"]
    assert all(r["skills"] and r["occupations"] for r in rows if "error" not in r)
    table = list(csv.DictReader(summary.open()))
    assert table and set(table[0]) == {"occupation_uri", "occupation_label", "skill_uri", "skill_label", "ads"}
    assert sum(int(t["ads"]) for t in table) >= 6
    # rerun: everything already done, nothing duplicated, summary rebuilt from the file
    res = runner.invoke(app, args)
    assert json.loads(res.stdout)["skipped_done"] == 7
    assert len(out.read_text().splitlines()) == 7
