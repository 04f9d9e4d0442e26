"""Golden tests for the ConTeXT scorer on a real model: batched == per-pair == the formula written out."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jobskills.scoring import ScoreConfig, attention, redundancy_keep, score_all, score_pairwise, token_bound
from tests.conftest import house_rows


def _brute(tokens: np.ndarray, s: np.ndarray, cfg: ScoreConfig) -> float:
    """The formula, one token at a time, in float64 with plain Python loops."""
    dots = [float(np.dot(x.astype(np.float64), s.astype(np.float64))) for x in tokens]
    coss = [d / (np.linalg.norm(x.astype(np.float64)) * np.linalg.norm(s.astype(np.float64))) for d, x in zip(dots, tokens)]
    logits = [(d if cfg.logits == "dot" else c) / cfg.temperature for d, c in zip(dots, coss)]
    mx = max(logits)
    ex = [math.exp(v - mx) for v in logits]
    z = sum(ex)
    return sum(e / z * c for e, c in zip(ex, coss))


@pytest.fixture(scope="module")
def real_batch(encoder, esco):
    sentences = [r["text"] for r in house_rows()[:12]]
    labels = [s.label for s in list(esco.skills.values())[:40]] + [esco.skills[u].label for r in house_rows()[:12] for u in r["skills"]]
    sent = encoder.encode(sentences)
    skills = encoder.encode(labels).pooled
    return sent, skills


@pytest.mark.parametrize("cfg", [ScoreConfig(), ScoreConfig("cos", 1.0), ScoreConfig("dot", 2.0), ScoreConfig("cos", 0.05)])
def test_batched_equals_pairwise_equals_formula(real_batch, cfg):
    sent, skills = real_batch
    batched = score_all(sent.tokens, sent.mask, skills, cfg)
    assert batched.shape == (len(sent), skills.shape[0])
    for i in range(len(sent)):
        real = sent.token_rows(i).numpy()
        rows = torch.arange(skills.shape[0])
        pair = score_pairwise(sent.tokens[i].expand(len(rows), -1, -1), sent.mask[i].expand(len(rows), -1), skills, cfg)
        torch.testing.assert_close(pair, batched[i], atol=1e-5, rtol=0)
        for k in range(0, skills.shape[0], 7):
            assert abs(_brute(real, skills[k].numpy(), cfg) - float(batched[i, k])) < 1e-5


def test_padding_and_chunking_do_not_change_scores(real_batch, encoder):
    """A padded row scores as its real tokens alone do (scorer), and as the sentence encoded alone, without any
    padding, does (encoder + scorer)."""
    sent, skills = real_batch
    full = score_all(sent.tokens, sent.mask, skills)
    lengths = sent.mask.sum(1)
    padded = [i for i in range(len(sent)) if lengths[i] < sent.mask.shape[1]]
    assert len(padded) >= 2, "the batch must hold padded rows for this test to mean anything"
    texts = [r["text"] for r in house_rows()[:12]]
    for i in padded[:3]:
        real = sent.token_rows(i)
        assert real.shape[0] == int(lengths[i]) < sent.tokens.shape[1]
        unpadded = score_all(real[None], torch.ones(1, real.shape[0], dtype=torch.bool), skills)
        torch.testing.assert_close(unpadded[0], full[i], atol=1e-6, rtol=0)
        alone = encoder.encode([texts[i]])
        assert bool(alone.mask.all()) and alone.tokens.shape[1] == int(lengths[i])  # no padding at all
        torch.testing.assert_close(score_all(alone.tokens, alone.mask, skills)[0], full[i], atol=1e-4, rtol=0)
    for chunk in (1, 3, 1000):
        torch.testing.assert_close(score_all(sent.tokens, sent.mask, skills, chunk_size=chunk), full, atol=1e-6, rtol=0)


def test_score_never_exceeds_best_token_cosine(real_batch):
    sent, skills = real_batch
    for cfg in (ScoreConfig(), ScoreConfig("cos", 0.5)):
        scores = score_all(sent.tokens, sent.mask, skills, cfg)
        bound = token_bound(sent.tokens, sent.mask, skills)
        assert bool((scores <= bound + 1e-6).all())
        # and it is not a loose bound: some pairs come close
        assert float((bound - scores).min()) < 0.05


def test_attention_weights_reproduce_the_score(real_batch):
    sent, skills = real_batch
    toks = sent.token_rows(2)
    alpha, cos = attention(toks, torch.ones(toks.shape[0], dtype=torch.bool), skills[:10])
    torch.testing.assert_close(alpha.sum(-1), torch.ones(10), atol=1e-6, rtol=0)
    torch.testing.assert_close((alpha * cos).sum(-1), score_all(sent.tokens[2:3], sent.mask[2:3], skills[:10])[0], atol=1e-6, rtol=0)


def test_redundancy_filter_matches_brute_force(real_batch):
    sent, skills = real_batch
    for i in range(len(sent)):
        toks = sent.token_rows(i).numpy().astype(np.float64)
        cand = skills[::3].numpy().astype(np.float64)
        keep = redundancy_keep(torch.from_numpy(toks).float(), torch.ones(len(toks), dtype=torch.bool), torch.from_numpy(cand).float())
        expected = [False] * len(cand)
        for x in toks:
            sims = [np.dot(x, s) / (np.linalg.norm(x) * np.linalg.norm(s)) for s in cand]
            expected[int(np.argmax(sims))] = True
        assert keep.tolist() == expected
        assert 1 <= sum(expected) <= len(toks)


def test_masked_padding_is_ignored_even_when_dot_is_zero():
    # a real token orthogonal to the skill (dot exactly 0) must still count in the softmax
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    s = torch.tensor([[1.0, 0.0]])
    with_real_zero = score_all(x, torch.tensor([[True, True, False]]), s)
    expected = math.exp(1) / (math.exp(1) + 1)
    assert abs(float(with_real_zero) - expected) < 1e-6


def test_score_config_validation_and_version():
    with pytest.raises(ValueError):
        ScoreConfig("max")
    with pytest.raises(ValueError):
        ScoreConfig(temperature=0)
    assert ScoreConfig().version != ScoreConfig("cos").version
    assert ScoreConfig.from_dict(ScoreConfig("cos", 2.0).to_dict()) == ScoreConfig("cos", 2.0)


def test_bf16_bound_stays_within_its_margin(real_batch):
    from jobskills.scoring import BF16_MARGIN

    sent, skills = real_batch
    exact = token_bound(sent.tokens, sent.mask, skills)
    half = token_bound(sent.tokens, sent.mask, skills, dtype=torch.bfloat16)
    err = float((half - exact).abs().max())
    assert 0 < err < BF16_MARGIN / 2  # rounding happens, and stays well inside the margin


def test_low_rank_screen_bounds_the_token_bound_and_the_exact_rows_match(real_batch):
    """LowRankBound.upper never falls below the exact token bound (beyond SCREEN_MARGIN) at any rank, tightens as
    the rank grows, and equals it at full rank; token_bound_rows gives the exact bound of the rows asked."""
    from jobskills.scoring import SCREEN_MARGIN, LowRankBound, token_bound_rows

    sent, skills = real_batch
    unit = skills / skills.norm(dim=-1, keepdim=True)
    exact = token_bound(sent.tokens, sent.mask, skills)
    slack = []
    for rank in (4, 32, 128, 384):
        screen = LowRankBound.fit(unit, rank)
        assert screen.rank == rank
        torch.testing.assert_close(screen.basis.T @ screen.basis, torch.eye(rank), atol=1e-5, rtol=0)
        for chunk in (7, 1024):
            upper = screen.upper(sent.tokens, sent.mask, chunk_size=chunk)
            assert bool((upper >= exact - SCREEN_MARGIN).all()), (rank, chunk)
        slack.append(float((upper - exact).mean()))
    assert slack == sorted(slack, reverse=True) and slack[0] > 0.05 and slack[-1] < 1e-4
    rows = [torch.tensor([0, 5, 9]), torch.tensor([], dtype=torch.long)] + [torch.arange(i, skills.shape[0], 3) for i in range(len(sent) - 2)]
    for i, got in enumerate(token_bound_rows(sent.tokens, sent.mask, unit, rows)):
        torch.testing.assert_close(got, exact[i, rows[i]], atol=1e-6, rtol=0)
