"""Index -> extract round trips on a real ESCO slice, candidate recall, evidence, bad input."""

from __future__ import annotations

import pytest
import torch

from jobskills.errors import IndexNotFoundError, InputError
from retriever.pipeline import Retriever
from tests.conftest import exact_scores, house_rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def retrievers(edge_index, memory_index, encoder):
    out = {}
    for name, (settings, store) in (("edge", edge_index), ("memory", memory_index)):
        for mode in ("bound", "bound-bf16", "qdrant", "maxsim", "exhaustive"):
            out[(name, mode)] = Retriever(settings, store=store, encoder=encoder, candidates=mode)
        # the slice is under the screen's size limit: this one screens anyway (LowRankBound, then the exact bound)
        screened = Retriever(settings, store=store, encoder=encoder, candidates="bound")
        screened.stage.screen_min_rows = 0
        out[(name, "bound-screened")] = screened
    return out


def _exhaustive_above(r: Retriever, sentences: list[str], t: float) -> list[set[str]]:
    scores = exact_scores(r, sentences)
    return [{r.skills.payloads[int(j)]["uri"] for j in torch.nonzero(row >= t).flatten()} for row in scores]


@pytest.mark.parametrize("t", [0.35, 0.45, 0.55])
@pytest.mark.parametrize("engine", ["edge", "memory"])
def test_candidate_stage_loses_nothing_above_threshold(retrievers, engine, t):
    sentences = [row["text"] for row in house_rows()]
    truth = _exhaustive_above(retrievers[(engine, "exhaustive")], sentences, t)
    assert sum(map(len, truth)) > 0, "the slice must give the test something to find"
    assert retrievers[(engine, "bound-screened")].stage._screen() is not None
    assert retrievers[(engine, "bound")].stage._screen() is None
    for mode in ("bound", "bound-screened", "bound-bf16", "qdrant"):
        got = retrievers[(engine, mode)].extract_sentences(sentences, threshold=t, redundancy=False, evidence_words=0)
        assert [{m.uri for m in s.skills} for s in got] == truth, mode
        # and the bound really prunes: far fewer candidates than skills
        assert sum(s.candidates for s in got) < 0.5 * len(sentences) * len(retrievers[(engine, mode)].skills)


def test_maxsim_candidates_are_measured_not_assumed(retrievers):
    """MAX_SIM top-100 has no guarantee; record its recall so a regression is visible."""
    sentences = [row["text"] for row in house_rows()]
    truth = _exhaustive_above(retrievers[("edge", "exhaustive")], sentences, 0.45)
    got = retrievers[("edge", "maxsim")].extract_sentences(sentences, threshold=0.45, redundancy=False, evidence_words=0)
    found = sum(len({m.uri for m in s.skills} & t) for s, t in zip(got, truth))
    total = sum(map(len, truth))
    assert found / total > 0.5
    assert all({m.uri for m in s.skills} <= t for s, t in zip(got, truth))  # never invents a skill


def test_round_trip_finds_gold_skills(retrievers):
    r = retrievers[("edge", "bound")]
    rows = [row for row in house_rows() if row["skills"]]
    results = r.extract_sentences([row["text"] for row in rows], threshold=0.4)
    hits = sum(len({m.uri for m in res.skills} & set(row["skills"])) for res, row in zip(results, rows))
    assert hits >= 10  # zero-shot MiniLM on a 500-skill slice finds a fair share of the gold
    for res in results:
        scores = [m.score for m in res.skills]
        assert scores == sorted(scores, reverse=True) and all(s >= 0.4 for s in scores)


def test_redundancy_filter_only_removes(retrievers):
    r = retrievers[("memory", "bound")]
    sentences = [row["text"] for row in house_rows()]
    full = r.extract_sentences(sentences, threshold=0.3, redundancy=False, evidence_words=0)
    filtered = r.extract_sentences(sentences, threshold=0.3, redundancy=True, evidence_words=0)
    removed = 0
    for a, b in zip(full, filtered):
        ua, ub = [m.uri for m in a.skills], [m.uri for m in b.skills]
        assert set(ub) <= set(ua) and (not ua or ub)  # a non-empty set keeps at least one skill
        removed += len(ua) - len(ub)
    assert removed > 0


def test_evidence_points_into_the_input(retrievers):
    r = retrievers[("edge", "bound")]
    text = "  We are hiring!\n\n- Strong knowledge of Python and SQL databases.\n- Manage a small team of engineers; fluent German."
    results = r.extract(text, threshold=0.35)
    assert [text[s.start : s.end] for s in results] == [s.text for s in results]
    assert len(results) == 4
    any_evidence = False
    for s in results:
        for m in s.skills:
            assert m.evidence and m.uri.startswith("http://data.europa.eu/esco/skill/")
            weights = [e.weight for e in m.evidence]
            assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1.0 + 1e-6
            for e in m.evidence:
                assert text[e.start : e.end] == e.text and s.start <= e.start < e.end <= s.end
            any_evidence = True
    assert any_evidence


def test_engines_give_identical_extractions(retrievers):
    sentences = [row["text"] for row in house_rows()[:25]]
    a = retrievers[("edge", "bound")].extract_sentences(sentences, threshold=0.4)
    b = retrievers[("memory", "bound")].extract_sentences(sentences, threshold=0.4)
    assert [[m.uri for m in s.skills] for s in a] == [[m.uri for m in s.skills] for s in b]
    assert all(abs(x.score - y.score) < 1e-6 for sa, sb in zip(a, b) for x, y in zip(sa.skills, sb.skills))


def test_batch_size_does_not_change_results(edge_index, encoder):
    from dataclasses import replace

    settings, store = edge_index
    sentences = [row["text"] for row in house_rows()[:20]]
    out = []
    for bs in (1, 7, 64):
        r = Retriever(replace(settings, batch_size=bs), store=store, encoder=encoder)
        out.append([[(m.uri, m.score) for m in s.skills] for s in r.extract_sentences(sentences, threshold=0.4)])
    for other in out[1:]:
        assert [[u for u, _ in s] for s in other] == [[u for u, _ in s] for s in out[0]]
        for s_other, s_ref in zip(other, out[0]):
            assert all(abs(a[1] - b[1]) < 1e-4 for a, b in zip(s_other, s_ref))  # padding changes float order only


def test_search_is_exact_top_k(retrievers):
    r = retrievers[("edge", "bound")]
    res = r.search("manage a team of software developers", k=15)
    assert len(res) == 15
    scores = [m.score for m in res]
    assert scores == sorted(scores, reverse=True)
    full = exact_scores(r, ["manage a team of software developers"])[0]
    assert abs(float(full.max()) - scores[0]) < 1e-5
    assert abs(float(full.topk(15).values[-1]) - scores[-1]) < 1e-5


def test_titles_group_by_occupation(retrievers, esco):
    r = retrievers[("edge", "bound")]
    occ = next(iter(esco.occupations.values()))
    for method in ("maxsim", "mean", "hybrid", "rrf", "lexical"):
        res = r.titles(occ.label, k=5, method=method)
        assert res[0].occupation_uri == occ.uri and res[0].matched_title == occ.label
        if method != "lexical":  # rrf's score is a fused rank score; the cosine it carries is the label's own
            assert res[0].semantic_score > 0.99 and (method == "rrf" or res[0].score > 0.99)
        assert len({m.occupation_uri for m in res}) == len(res) <= 5
        assert res[0].isco_group == occ.isco_group


def test_long_text_is_split_not_truncated(retrievers):
    r = retrievers[("edge", "bound")]
    long_sentence = " ".join(["python programming"] * 400)  # ~800 tokens, over MiniLM's 256
    res = r.extract(long_sentence, threshold=0.3, evidence_words=1)
    assert len(res) >= 3
    assert res[-1].end == len(long_sentence)


@pytest.mark.parametrize("bad", ["", "   \n\t ", "... --- ..."])
def test_empty_text_is_a_clear_error(retrievers, bad):
    with pytest.raises(InputError):
        retrievers[("edge", "bound")].extract(bad)


def test_huge_text_is_refused(retrievers):
    with pytest.raises(InputError, match="limit"):
        retrievers[("edge", "bound")].extract("a" * 2_000_001)


def test_no_index_is_a_clear_error(tmp_path, encoder):
    from jobskills.config import load_settings

    with pytest.raises(IndexNotFoundError, match="jobskills index"):
        Retriever(load_settings({"home": tmp_path, "engine": "edge"}, env={}), encoder=encoder)


def _threshold_between_scores(scores: torch.Tensor, rank: int, gap: float = 1e-4) -> float:
    """A threshold just under the ``rank``-th best score, halfway to the next distinct one: no score sits within
    ``gap`` of it, so float noise between batched and per-sentence scoring cannot move a skill across it."""
    ordered = torch.sort(scores.flatten(), descending=True).values
    for k in range(rank, len(ordered) - 1):
        if float(ordered[k] - ordered[k + 1]) > 2 * gap:
            return float(ordered[k] + ordered[k + 1]) / 2
    raise AssertionError("no clear gap in the scores")


@pytest.mark.slow
def test_the_bound_is_lossless_over_every_esco_skill(tmp_path_factory, tiny_model_path, esco):
    """The whole taxonomy (13,891 skills) instead of a slice: the bound's candidates hold every skill that exhaustive
    scoring puts at or above the threshold, for real job-ad sentences, at several thresholds."""
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.encoder import Encoder
    from jobskills.store import open_store

    encoder = Encoder(tiny_model_path)
    settings = load_settings({"home": tmp_path_factory.mktemp("full-esco"), "engine": "memory"}, env={})
    with open_store(settings) as store:
        build_index(settings, store, encoder, esco=esco, kinds=("skills",))
        bound = Retriever(settings, store=store, encoder=encoder, candidates="bound")
        assert len(bound.skills) == len(esco.skills) == 13_891
        sentences = [row["text"] for row in house_rows()[:80]] + [
            "You will write Python services and tune our SQL queries.",
            "Experience managing musical staff and planning rehearsals.",
            "Fluent German and English; a driving licence is a plus.",
        ]
        scores = exact_scores(bound, sentences)
        for rank in (len(sentences), 10 * len(sentences), 100 * len(sentences)):  # about 1, 10, 100 skills a sentence
            t = _threshold_between_scores(scores, rank)
            truth = [{bound.skills.payloads[int(j)]["uri"] for j in torch.nonzero(row >= t).flatten()} for row in scores]
            got = bound.extract_sentences(sentences, threshold=t, redundancy=False, evidence_words=0)
            assert [{m.uri for m in s.skills} for s in got] == truth, f"threshold {t}"
            assert sum(map(len, truth)) >= rank
            assert all(s.candidates >= len(tr) for s, tr in zip(got, truth))
