"""Label-word coverage (the skills' lexical evidence) and its fusion with the ConTeXT score."""

from __future__ import annotations

import math

import pytest
import torch

from jobskills.lexical import LabelLexicon, words
from jobskills.scoring import ScoreConfig, candidate_floor, fuse

SKILLS = [
    ["Python (computer programming)", "Python"],
    ["manage databases", "database management"],
    ["inspect pipelines"],
    ["project management"],
]


def test_words_keep_technology_names_and_drop_qualifiers():
    assert words("Strong C++, C#, Node.js and .NET skills; e.g. SQL.") == ["strong", "c++", "c#", "node.js", "net", "skills", "sql"]
    assert words("Python (computer programming)", label=True) == ["python"]
    assert words("Python (computer programming)") == ["python", "computer", "programming"]  # sentences keep them


def test_coverage_is_the_idf_weighted_share_of_the_best_label():
    lex = LabelLexicon(SKILLS)
    cov = lex.coverage(["You will write Python code and manage our databases.", "Nothing relevant here."])
    assert cov.shape == (2, len(SKILLS))
    assert cov[0, 0].item() == pytest.approx(1.0)  # "Python" is a whole label
    assert cov[0, 1].item() == pytest.approx(1.0)  # "manage databases": both words
    assert cov[0, 2].item() == 0.0 and cov[0, 3].item() == 0.0
    assert cov[1].abs().sum().item() == 0.0
    # a partial match: "management" alone covers its IDF share of "project management" (5 distinct labels:
    # python, manage databases, database management, inspect pipelines, project management)
    n = 5
    idf = lambda df: math.log(1 + n / (1 + df))  # noqa: E731
    partial = lex.coverage(["Good management skills."])[0, 3].item()
    assert partial == pytest.approx(idf(2) / (idf(1) + idf(2)), abs=1e-6)


def test_fusion_and_the_candidate_floor_keep_the_bound_lossless():
    torch.manual_seed(0)
    cfg = ScoreConfig(lexical=0.3)
    exact = torch.rand(4, 50) * 0.8
    bound = exact + torch.rand(4, 50) * 0.2  # a valid upper bound of the exact score
    cov = (torch.rand(4, 50) > 0.7).float() * torch.rand(4, 50)
    final = fuse(exact, cov, cfg)
    for t in (0.3, 0.5, 0.7, 0.9):
        above = final >= t
        kept = bound >= candidate_floor(t, cov, cfg)
        assert bool((kept | ~above).all()), "a skill above the threshold fell out of the candidates"
    assert torch.equal(fuse(exact, cov, ScoreConfig()), exact)
    assert candidate_floor(0.5, cov, ScoreConfig()) == 0.5
    assert ScoreConfig(lexical=0.3).version.endswith("/L0.3") and "/L" not in ScoreConfig().version
    assert ScoreConfig.from_dict(cfg.to_dict()) == cfg


def test_the_offline_ranker_adds_exactly_the_weighted_coverage(encoder, esco):
    """The trainer's ranker (and through exact_batches every Ranker) fuses the ConTeXT score with the labels'
    word coverage; the preferred-label point's alt_labels are part of the lexicon."""
    from indexer.build import skill_items
    from indexer.ranker import SkillRanker

    python = next(s for s in esco.skills.values() if s.label == "Python (computer programming)")
    others = [u for u in list(esco.skills)[:40] if u != python.uri]
    items = skill_items(esco, uris=[python.uri, *others])
    texts = ["You will write Python code.", "Fluent German is a plus."]
    plain = SkillRanker(encoder, items, ScoreConfig("dot", 2.0))
    fused = SkillRanker(encoder, items, ScoreConfig("dot", 2.0, lexical=0.3))
    assert plain.lexicon is None and fused.lexicon is not None
    a = next(iter(plain.score_batches(texts))).scores
    b = next(iter(fused.score_batches(texts))).scores
    cov = fused.lexicon.coverage(texts)
    assert cov[0, 0].item() == pytest.approx(1.0) and cov[1, 0].item() == 0.0
    assert torch.allclose(b, a + 0.3 * cov, atol=1e-6)
    assert int(b[0].argmax()) == 0  # with the word "Python" in the sentence, Python ranks first
