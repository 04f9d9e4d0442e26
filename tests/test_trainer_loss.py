"""The cached ConTeXT loss gives the same gradients as the uncached one; duplicates are not negatives."""

from __future__ import annotations

import copy

import pytest
import torch

from trainer.loss import ContextLossConfig, ContextMatchLoss, context_loss, ids_to_labels


def _features(model, texts):
    return model.preprocess(list(texts))


def embed(model, texts):
    """Token embeddings (padding zeroed), mask and pooled embeddings: the uncached reference's inputs."""
    out = model(_features(model, texts))
    mask = out["attention_mask"].bool()
    return {"tokens": out["token_embeddings"].masked_fill(~mask.unsqueeze(-1), 0.0), "mask": mask,
            "pooled": out["sentence_embedding"]}


def cached_backward(model, sentences, skill_labels, skill_ids, cfg, mini_batch_size=32) -> float:
    """One GradCache step outside the trainer, through the trainer's own ContextMatchLoss: accumulates the
    parameter gradients into ``model`` and returns the loss."""
    features = [_features(model, sentences), _features(model, skill_labels)]
    loss = ContextMatchLoss(model, cfg, mini_batch_size=mini_batch_size)(features, ids_to_labels(skill_ids))
    loss.backward()
    return float(loss.detach())


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(tiny_model_path, device="cpu")


SENTS = ["We need strong Python skills.", "You will manage a small team.", "Fluent German is required.",
         "Experience with Kubernetes clusters.", "You will cook for our guests every day.", "Teach Python to juniors."]
LABELS = ["Python", "lead a team", "German", "Kubernetes", "cook meals", "Python"]
IDS = ["py", "lead", "de", "k8s", "cook", "py"]  # a repeated skill


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("mini", [1, 2, 4])
def test_cached_equals_uncached_gradients(tiny, mini):
    cfg = ContextLossConfig(temperature=0.1)
    a, b = copy.deepcopy(tiny), copy.deepcopy(tiny)
    a.eval(), b.eval()  # no dropout: the two passes see the same network
    sent = embed(a, SENTS)
    skills = embed(a, LABELS)["pooled"]
    loss = context_loss(sent["tokens"], sent["mask"], skills, IDS, cfg)
    loss.backward()
    cached = cached_backward(b, SENTS, LABELS, IDS, cfg, mini_batch_size=mini)
    assert abs(cached - float(loss.detach())) < 1e-5
    ga, gb = _grads(a), _grads(b)
    assert ga.keys() == gb.keys() and ga
    for name in ga:
        torch.testing.assert_close(gb[name], ga[name], atol=1e-5, rtol=1e-4, msg=name)


def test_cached_with_dropout_replays_the_same_masks(tiny):
    cfg = ContextLossConfig(temperature=0.1)
    a, b = copy.deepcopy(tiny), copy.deepcopy(tiny)
    a.train(), b.train()
    torch.manual_seed(7)
    cached = cached_backward(b, SENTS, LABELS, IDS, cfg, mini_batch_size=len(SENTS))
    torch.manual_seed(7)
    sent = embed(a, SENTS)
    skills = embed(a, LABELS)["pooled"]
    loss = context_loss(sent["tokens"], sent["mask"], skills, IDS, cfg)
    loss.backward()
    assert abs(cached - float(loss.detach())) < 1e-5
    for name, g in _grads(a).items():
        torch.testing.assert_close(_grads(b)[name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_repeated_skill_is_not_a_negative():
    tokens = torch.randn(3, 4, 8)
    mask = torch.ones(3, 4, dtype=torch.bool)
    skills = torch.randn(3, 8)
    cfg = ContextLossConfig(temperature=0.5, symmetric=False)
    masked = context_loss(tokens, mask, skills, ["a", "b", "a"], cfg)
    plain = context_loss(tokens, mask, skills, ["a", "b", "c"], cfg)
    assert float(masked) < float(plain)  # removing a column only removes mass from the denominator
    # written out: row 0 ignores column 2 and row 2 ignores column 0 (the same skill "a")
    from jobskills.scoring import score_all

    lg = score_all(tokens, mask, skills, cfg.score) / cfg.temperature
    rows = [(0, [0, 1]), (1, [0, 1, 2]), (2, [1, 2])]
    manual = sum(-(lg[i, i] - torch.logsumexp(lg[i, cols], 0)) for i, cols in rows) / 3
    assert abs(float(masked) - float(manual)) < 1e-5
