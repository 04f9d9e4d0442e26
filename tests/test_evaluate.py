"""Metrics on hand-computed cases, benchmark loading errors, the two rankers agreeing, eval/calibrate end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobskills import evaluation as core
from jobskills.cli import app
from jobskills.errors import InputError
from retriever import evaluate as ev
from retriever.pipeline import Retriever
from tests.conftest import HOUSE_DEV, exact_scores, house_rows


def test_rp_and_mrr_hand_computed():
    ranked = ["a", "b", "c", "d", "e", "f"]
    assert core.rp_at_k(ranked, {"b", "e", "x"}, 1) == 0.0
    assert core.rp_at_k(ranked, {"b", "e", "x"}, 5) == pytest.approx(2 / 3)  # min(5, 3) = 3
    assert core.rp_at_k(ranked, {"a"}, 10) == 1.0  # min(10, 1) = 1
    assert core.reciprocal_rank(ranked, {"d", "f"}) == 0.25
    assert core.reciprocal_rank(ranked, {"z"}) == 0.0


def test_micro_prf_counts_false_positives_of_skill_free_sentences():
    out = core.micro_prf([{"a"}, {"x", "y"}, set()], [{"a", "b"}, set(), {"c"}])
    assert (out["tp"], out["fp"], out["fn"]) == (1, 2, 2)
    assert out["precision"] == pytest.approx(1 / 3) and out["recall"] == pytest.approx(1 / 3)
    assert core.micro_prf([set()], [set()])["f1"] == 0.0


def test_redundancy_definition():
    labels = {"p": "programming", "py": "Python (computer programming)", "a": "manage staff", "b": "manage staffs",
              "c": "cook", "d": "bake bread"}
    anc = core.skill_ancestors({"py": ["p"], "p": ["g"]})
    assert anc["py"] == frozenset({"p", "g"})
    assert core.redundant(["p", "py"], labels, anc) == {"p"}  # the broader one is redundant
    assert core.redundant(["a", "b"], labels, anc) == {"a", "b"}  # the same label up to plural
    assert core.redundant(["c", "d"], labels, anc) == set()


def test_redundancy_ancestors_survive_cycles():
    anc = core.skill_ancestors({"a": ["b"], "b": ["a"]})
    assert "b" in anc["a"] and "a" in anc["b"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ('{"text": "x", "skills": []}\n{not json}\n', ":2: not valid JSON"),
        ('{"text": "x", "skills": "http://u"}\n', ":1: expected"),
        ('{"text": "  ", "skills": []}\n', ":1: empty text"),
        ('{"text": "x", "skills": ["http://unknown"]}\n', ":1: unknown skill URI"),
        ('{"foo": 1}\n', "unknown benchmark format"),
    ],
)
def test_bench_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "b.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        core.bench_kind(path)
        core.load_extraction_bench(path, known_uris={"http://known"})


DATA = Path(__file__).parent / "data"


def test_bench_kinds_and_title_errors(tmp_path, esco):
    """Small benchmark files of both kinds ship with the tests (the shared dev sets are not always there)."""
    assert core.bench_kind(DATA / "bench_titles.jsonl") == "titles"
    assert core.bench_kind(DATA / "bench_skills.jsonl") == "extraction"
    titles = core.load_title_bench(DATA / "bench_titles.jsonl", set(esco.occupations))
    assert len(titles) == 3
    examples = core.load_extraction_bench(DATA / "bench_skills.jsonl", set(esco.skills))
    assert [len(e.skills) for e in examples] == [2, 1, 0]
    with pytest.raises(InputError, match=":1: unknown skill URI"):
        core.load_extraction_bench(DATA / "bench_skills.jsonl", {"http://other"})
    p = tmp_path / "t.jsonl"
    p.write_text('{"title": "cook", "occupation": "http://o1"}\n{"title": "", "occupation": "http://o1"}\n')
    assert core.bench_kind(p) == "titles"
    with pytest.raises(InputError, match=":2: empty title"):
        core.load_title_bench(p)
    p.write_bytes(b'{"title": "caf\xe9", "occupation": "x"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        core.load_title_bench(p)


@pytest.mark.integration
def test_sweep_agrees_with_the_extract_path(memory_index, encoder):
    """calibrate's fast sweep and eval's real extract path must give the same F1 at the same threshold."""
    settings, store = memory_index
    r = Retriever(settings, store=store, encoder=encoder)
    house_rows()  # skips when ../shared is absent
    examples = ev.load_extraction_bench(HOUSE_DEV)
    examples = [e for e in examples if all(u in r.skills.row_of_uri for u in e.skills)]
    for t in (0.35, 0.45):
        swept = ev.threshold_sweep(r, examples, [t])[0]
        preds = [[m.uri for m in s.skills] for s in r.extract_sentences([e.text for e in examples], threshold=t)]
        direct = ev.micro_prf(preds, [e.skills for e in examples])
        assert (swept["tp"], swept["fp"], swept["fn"]) == (direct["tp"], direct["fp"], direct["fn"])


@pytest.mark.integration
def test_mrr_matches_brute_force(memory_index, encoder):
    import torch


    settings, store = memory_index
    r = Retriever(settings, store=store, encoder=encoder)
    examples = [ev.ExtractionExample(row["text"], tuple(row["skills"]), i) for i, row in enumerate(house_rows()) if row["skills"]][:20]
    got = ev.ranking_metrics(r, examples)
    uris = [p["uri"] for p in r.skills.payloads]
    rr, rp5 = 0.0, 0.0
    for e in examples:
        order = torch.argsort(exact_scores(r, [e.text])[0], descending=True)
        ranked = [uris[int(j)] for j in order]
        rr += ev.reciprocal_rank(ranked, e.skills)
        rp5 += ev.rp_at_k(ranked, e.skills, 5)
    assert got["mrr"] == pytest.approx(rr / len(examples), abs=1e-9)
    assert got["rp@5"] == pytest.approx(rp5 / len(examples), abs=1e-9)


@pytest.mark.integration
def test_the_trainers_ranker_ranks_as_the_live_index(memory_index, encoder, esco, sample_uris):
    """The in-memory ranker the trainer scores checkpoints with (no index) and the live index are both a Ranker
    over the same vectors: the same skills in the same order, the same RP@K / MRR and the same sweep counts."""
    from indexer.build import skill_items
    from indexer.ranker import SkillRanker

    settings, store = memory_index
    r = Retriever(settings, store=store, encoder=encoder)
    live = ev.RetrieverRanker(r)
    offline = SkillRanker(encoder, skill_items(esco, uris=sample_uris, labels="all" if r.skills.expanded else "preferred"), r.score_config, batch_size=settings.batch_size)
    assert isinstance(live, core.Ranker) and isinstance(offline, core.Ranker) and not isinstance(r, core.Ranker)
    assert list(offline.uris) == list(live.uris) and len(offline) == len(r.skills)
    examples = [core.ExtractionExample(row["text"], tuple(row["skills"]), i) for i, row in enumerate(house_rows())
                if all(u in r.skills.row_of_uri for u in row["skills"])][:40]
    assert any(e.skills for e in examples)
    got, want = core.ranking_metrics(offline, examples), core.ranking_metrics(live, examples)
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k], abs=1e-9) for k in got)
    ts = [0.35, 0.45, 0.55]
    counts = [[(c["tp"], c["fp"], c["fn"]) for c in core.threshold_sweep(x, examples, ts)] for x in (offline, live)]
    assert counts[0] == counts[1] and counts[0][0] != counts[0][-1]  # the thresholds made a difference
    curve, best = core.calibration_curve(offline, examples, 0.3, 0.6, 0.05)
    assert [c["threshold"] for c in curve] == [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6] and best in curve
    with pytest.raises(InputError, match="no gold skills"):
        core.calibration_curve(offline, [core.ExtractionExample("We offer a car.", (), 1)])


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory, esco):
    """A 60-skill index and a benchmark written from those skills' own descriptions."""
    home = tmp_path_factory.mktemp("eval-home")
    runner = CliRunner()
    assert runner.invoke(app, ["index", "--home", str(home), "--limit", "60", "--only", "skills"]).exit_code == 0
    skills = list(esco.skills.values())[:60]
    lines = [json.dumps({"text": s.description.split(". ")[0], "skills": [s.uri]}) for s in skills[:40]]
    lines += [json.dumps({"text": t, "skills": []}) for t in ("We offer a company car.", "Apply before Friday.")]
    bench = home / "dev.jsonl"
    bench.write_text("\n".join(lines) + "\n")
    return home, bench


@pytest.mark.integration
def test_calibrate_then_eval_warns_and_extract_uses_it(cli_home):
    home, bench = cli_home
    runner = CliRunner()
    res = runner.invoke(app, ["calibrate", str(bench), "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    best = out["best"]
    assert best["f1"] == max(c["f1"] for c in out["curve"]) and len(out["curve"]) == 71  # 0.20..0.90 step 0.01
    info = json.loads(runner.invoke(app, ["info", "--home", str(home), "--json"]).stdout)["skills"]["manifest"]
    assert info["threshold"] == best["threshold"] and info["calibrated_on"]["sha256"] == ev.file_sha256(bench)
    assert (home / "calibration").is_dir()
    res = runner.invoke(app, ["eval", str(bench), "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["warnings"] and "same file" in res.output
    assert report["threshold"] == best["threshold"]
    assert report["extraction"]["f1"] == pytest.approx(best["f1"], abs=1e-9)
    assert report["candidate_recall"] == 1.0 and 0 <= report["redundancy_rate"] <= 1
    res = runner.invoke(app, ["extract", "--home", str(home), "--json", "We offer a company car."])
    assert json.loads(res.stdout)["provenance"]["threshold"] == best["threshold"]
    # a new build of the same model keeps the calibrated threshold (stored for the model in this home)
    assert runner.invoke(app, ["index", "--home", str(home), "--limit", "60", "--only", "skills"]).exit_code == 0
    info = json.loads(runner.invoke(app, ["info", "--home", str(home), "--json"]).stdout)["skills"]["manifest"]
    assert info["threshold"] == best["threshold"] and info["threshold_source"].startswith("calibrate")


@pytest.mark.integration
def test_eval_dump_and_errors(cli_home, tmp_path):
    home, bench = cli_home
    runner = CliRunner()
    dump = tmp_path / "per_sentence.jsonl"
    res = runner.invoke(app, ["eval", str(bench), "--home", str(home), "--dump", str(dump), "-t", "0.5"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(rows) == 42 and {"gold", "predicted", "top10", "missed"} <= set(rows[0])
    assert "RP@5" in res.output and "F1" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "skills": ["http://data.europa.eu/esco/skill/nope"]}\n')
    res = runner.invoke(app, ["eval", str(bad), "--home", str(home)])
    assert res.exit_code == 1 and "bad.jsonl:1: unknown skill URI" in res.output
