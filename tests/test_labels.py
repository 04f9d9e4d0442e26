"""Label expansion: every alternative label is a point of its skill, a skill scores its best label, and the
candidate bound stays lossless."""

from __future__ import annotations

import pytest
import torch

from retriever.pipeline import Retriever
from tests.conftest import exact_scores, house_rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def expanded(tmp_path_factory, encoder, esco, sample_uris):
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.store import open_store

    uris = sample_uris[:150]
    settings = load_settings({"home": tmp_path_factory.mktemp("labels-home"), "engine": "edge"}, env={})
    store = open_store(settings)
    report = build_index(settings, store, encoder, esco=esco, kinds=("skills",), skill_uris=uris, labels="all")
    yield settings, store, uris, report
    store.close()


def _truth(r: Retriever, esco, sentences: list[str], t: float) -> list[dict[str, float]]:
    """Per sentence, skill URI -> max exact score over all its labels, computed label by label."""
    out = []
    scores = exact_scores(r, sentences)
    for row in scores:
        best: dict[str, float] = {}
        for j, p in enumerate(r.skills.payloads):
            best[p["uri"]] = max(best.get(p["uri"], -1.0), float(row[j]))
        out.append({u: s for u, s in best.items() if s >= t})
    return out


def test_every_distinct_label_is_a_point(expanded, esco):
    settings, store, uris, report = expanded
    _, manifest = store.current_manifest("skills")
    expected = sum(1 + len({a.strip().casefold() for a in esco.skills[u].alt_labels if a.strip()} - {esco.skills[u].label.casefold()})
                   for u in uris)
    assert manifest["labels"] == "all" and manifest["skills"] == len(uris) and manifest["count"] == expected > len(uris)


@pytest.mark.parametrize("mode", ["bound", "exhaustive"])
def test_a_skill_scores_its_best_label_and_the_bound_loses_nothing(expanded, encoder, esco, mode):
    settings, store, uris, _ = expanded
    r = Retriever(settings, store=store, encoder=encoder, candidates=mode)
    assert r.skills.expanded and len(r.skills) == len(uris) and r.skills.n_rows > len(uris)
    sentences = [row["text"] for row in house_rows()]
    truth = _truth(r, esco, sentences, 0.45)
    assert sum(map(len, truth)) > 0
    got = r.extract_sentences(sentences, threshold=0.45, redundancy=False, evidence_words=0)
    for res, want in zip(got, truth):
        assert {m.uri: m.score for m in res.skills}.keys() == want.keys()
        for m in res.skills:
            assert abs(m.score - want[m.uri]) < 1e-5
            assert m.label == esco.skills[m.uri].label  # results show the preferred label ...
            assert m.matched_label  # ... and say which label matched


def test_an_alternative_label_can_carry_a_skill(expanded, encoder, esco):
    settings, store, uris, _ = expanded
    r = Retriever(settings, store=store, encoder=encoder)
    # a skill whose alternative label is far from its preferred one: querying with it must rank the skill first
    skill = next(esco.skills[u] for u in uris if esco.skills[u].alt_labels)
    alt = max(skill.alt_labels, key=lambda a: len(set(a.lower().split()) - set(skill.label.lower().split())))
    top = r.search(alt, k=3)
    assert top[0].uri == skill.uri and top[0].matched_label == alt.strip()
    assert len({m.uri for m in r.search("manage a team", k=20)}) == 20  # one entry per skill, never per label


def test_evaluation_ranks_skills_not_labels(expanded, encoder):
    from retriever.evaluate import ExtractionExample, ranking_metrics

    settings, store, uris, _ = expanded
    r = Retriever(settings, store=store, encoder=encoder)
    rows = [row for row in house_rows() if row["skills"] and all(u in uris for u in row["skills"])][:10]
    assert rows
    examples = [ExtractionExample(row["text"], tuple(row["skills"]), i) for i, row in enumerate(rows)]
    m = ranking_metrics(r, examples)
    # by hand: rank skills by their best label
    scores = exact_scores(r, [e.text for e in examples])
    owner = r.skills.owner
    rp1 = 0.0
    for i, e in enumerate(examples):
        per_skill = torch.full((len(r.skills),), -float("inf")).scatter_reduce(0, owner, scores[i], "amax")
        top = r.skills.uris[int(per_skill.argmax())]
        rp1 += float(top in e.skills)
    assert abs(m["rp@1"] - rp1 / len(examples)) < 1e-9
