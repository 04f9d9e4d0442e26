"""The ConTeXT training objective, with gradient caching so that large batches fit in memory.

For a batch of (sentence_i, skill_i) pairs, ``logits[i, k] = ConTeXT(sentence_i tokens, skill_k vector) / T``
through :func:`jobskills.scoring.score_all` (the same function the retriever ranks with). The loss is the
cross-entropy against the diagonal (in-batch negatives), averaged with the symmetric direction (skill ->
sentence). A skill repeated in the batch is masked out of the other rows, never a false negative.

Gradient caching (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup"; the shape of sentence-transformers' CachedMultipleNegativesRankingLoss and PyLate's cached
contrastive loss, here over token embeddings with masks): embed mini-batches without a graph, compute the
loss and its gradient with respect to the embeddings, then re-embed each mini-batch with a graph and push
the cached gradient through it. Parameter gradients equal the uncached ones (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from jobskills.scoring import ScoreConfig, score_all

__all__ = ["ContextLossConfig", "context_loss", "embed", "cached_backward"]


@dataclass(frozen=True)
class ContextLossConfig:
    temperature: float = 0.05
    symmetric: bool = True
    score: ScoreConfig = ScoreConfig()


def context_loss(tokens: Tensor, mask: Tensor, skills: Tensor, skill_ids: Sequence[str], cfg: ContextLossConfig) -> Tensor:
    """In-batch ConTeXT loss. ``tokens (B, L, d)``, ``mask (B, L)``, ``skills (B, d)``, ``skill_ids`` length B."""
    logits = score_all(tokens, mask, skills, cfg.score) / cfg.temperature  # (B, B)
    ids = list(skill_ids)
    same = torch.tensor([[a == b for b in ids] for a in ids], device=logits.device)
    eye = torch.eye(len(ids), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))  # a repeated skill is not a negative
    target = torch.arange(len(ids), device=logits.device)
    loss = torch.nn.functional.cross_entropy(logits, target)
    if cfg.symmetric:
        loss = (loss + torch.nn.functional.cross_entropy(logits.T, target)) / 2
    return loss


def embed(model: Any, texts: Sequence[str]) -> dict[str, Tensor]:
    """Token embeddings, mask and pooled embeddings of ``texts`` through a sentence-transformers model."""
    features = model.preprocess(list(texts))
    device = next(model.parameters()).device
    features = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in features.items()}
    out = model(features)
    mask = out["attention_mask"].bool()
    return {"tokens": out["token_embeddings"].masked_fill(~mask.unsqueeze(-1), 0.0), "mask": mask,
            "pooled": out["sentence_embedding"]}


def _pad(chunks: list[Tensor], length: int) -> Tensor:
    return torch.cat([torch.nn.functional.pad(c, (0, 0, 0, length - c.shape[1])) if c.dim() == 3
                      else torch.nn.functional.pad(c, (0, length - c.shape[1])) for c in chunks])


def cached_backward(
    model: Any,
    sentences: Sequence[str],
    skill_labels: Sequence[str],
    skill_ids: Sequence[str],
    cfg: ContextLossConfig,
    mini_batch_size: int = 32,
    embed_fn: Callable[[Any, Sequence[str]], dict[str, Tensor]] = embed,
) -> float:
    """One GradCache step: accumulates parameter gradients of :func:`context_loss` into ``model``; returns the loss.

    Memory is bounded by ``mini_batch_size`` whatever the batch size; dropout is replayed with the same RNG
    state in the second pass, so the result equals the uncached gradient.
    """
    n = len(sentences)
    spans = [(s, min(s + mini_batch_size, n)) for s in range(0, n, mini_batch_size)]
    states, tok_chunks, mask_chunks, skill_chunks = [], [], [], []
    with torch.no_grad():
        for a, b in spans:
            states.append(_RngState())
            e = embed_fn(model, sentences[a:b])
            tok_chunks.append(e["tokens"])
            mask_chunks.append(e["mask"])
            states.append(_RngState())
            skill_chunks.append(embed_fn(model, skill_labels[a:b])["pooled"])
    length = max(t.shape[1] for t in tok_chunks)
    tokens = _pad(tok_chunks, length).detach().requires_grad_(True)
    mask = _pad([m.long() for m in mask_chunks], length).bool()
    skills = torch.cat(skill_chunks).detach().requires_grad_(True)
    loss = context_loss(tokens, mask, skills, skill_ids, cfg)
    loss.backward()
    tok_grad, skill_grad = tokens.grad, skills.grad
    for i, (a, b) in enumerate(spans):
        with states[2 * i]:
            e = embed_fn(model, sentences[a:b])
        l_i = e["tokens"].shape[1]
        surrogate = (e["tokens"] * tok_grad[a:b, :l_i]).sum()
        with states[2 * i + 1]:
            pooled = embed_fn(model, skill_labels[a:b])["pooled"]
        surrogate = surrogate + (pooled * skill_grad[a:b]).sum()
        surrogate.backward()
    return float(loss.detach())


class _RngState:
    """Captures the CPU (and CUDA) RNG state at creation; ``with`` replays it (dropout masks match)."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def __enter__(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)

    def __exit__(self, *exc: object) -> None:
        """The generator stays where the replayed pass left it, as after the uncached pass."""
