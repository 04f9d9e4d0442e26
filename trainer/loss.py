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
from typing import Any, Sequence

import torch
from torch import Tensor

from jobskills.scoring import ScoreConfig, score_all

__all__ = ["ContextLossConfig", "context_loss", "masked_logits", "ids_to_labels", "ContextMatchLoss"]


@dataclass(frozen=True)
class ContextLossConfig:
    temperature: float = 0.05
    symmetric: bool = True
    score: ScoreConfig = ScoreConfig()


def ids_to_labels(skill_ids: Sequence[str]) -> Tensor:
    """``(B, 1)`` label tensor from per-row skill ids (equal ids -> equal integers)."""
    index: dict[str, int] = {}
    return torch.tensor([[index.setdefault(s, len(index))] for s in skill_ids], dtype=torch.long)


def masked_logits(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Mask the in-batch logits so that no positive becomes a negative.

    ``labels (B, K)``: column 0 is the row's target skill id (-1: a negative sentence, no target), the other
    columns are further skills present in the sentence (-1 padding). Column k of ``logits`` is row k's skill.
    Returns the masked logits and which rows have a target (row k's skill is column k: the same rows are the
    valid skill columns).
    """
    labels = labels.to(logits.device)
    col_skill = labels[:, 0]
    valid = col_skill >= 0
    present = (labels[:, :, None] == col_skill[None, None, :]).any(dim=1) & valid[None, :]  # (B, B)
    eye = torch.eye(len(col_skill), dtype=torch.bool, device=logits.device)
    drop = (present & ~eye) | ~valid[None, :]
    return logits.masked_fill(drop, float("-inf")), valid


def context_loss(
    tokens: Tensor, mask: Tensor, skills: Tensor, labels: Tensor | Sequence[str], cfg: ContextLossConfig
) -> Tensor:
    """In-batch ConTeXT loss. ``tokens (B, L, d)``, ``mask (B, L)``, ``skills (B, d)``; ``labels`` a ``(B, K)``
    tensor (see :func:`masked_logits`) or one skill id per row."""
    if not isinstance(labels, Tensor):
        labels = ids_to_labels(list(labels))
    logits = score_all(tokens.float(), mask, skills.float(), cfg.score) / cfg.temperature  # (B, B)
    logits, valid = masked_logits(logits, labels)
    target = torch.arange(logits.shape[0], device=logits.device)
    if not bool(valid.any()):
        raise ValueError("a training batch needs at least one sentence with a skill")
    loss = torch.nn.functional.cross_entropy(logits[valid], target[valid])
    if cfg.symmetric:
        loss = (loss + torch.nn.functional.cross_entropy(logits.T[valid], target[valid])) / 2
    return loss


def _outputs(model: Any, features: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """Token embeddings (padding zeroed), their mask and the pooled embedding, from tokenised features."""
    out = model(features)
    mask = out["attention_mask"].bool()
    return out["token_embeddings"].masked_fill(~mask.unsqueeze(-1), 0.0), mask, out["sentence_embedding"]


def _features(model: Any, texts: Sequence[str]) -> dict[str, Any]:
    device = next(model.parameters()).device
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in model.preprocess(list(texts)).items()}


def _pad(chunks: list[Tensor], length: int) -> Tensor:
    return torch.cat([torch.nn.functional.pad(c, (0, 0, 0, length - c.shape[1])) if c.dim() == 3
                      else torch.nn.functional.pad(c, (0, length - c.shape[1])) for c in chunks])


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


def _slice_features(features: dict[str, Any], a: int, b: int) -> dict[str, Any]:
    """Rows ``a:b`` of tokenised features, trailing all-padding columns dropped (short mini-batches stay short)."""
    am = features.get("attention_mask")
    width = am.shape[1] if isinstance(am, Tensor) and am.dim() == 2 else None
    keep = None
    if width is not None:
        active = am[a:b].bool().any(dim=0)
        keep = int(active.nonzero().max()) + 1 if bool(active.any()) else width
    out: dict[str, Any] = {}
    for k, v in features.items():
        if not isinstance(v, Tensor) or v.dim() == 0:
            out[k] = v
        elif keep is not None and v.dim() >= 2 and v.shape[1] == width:
            out[k] = v[a:b, :keep]
        else:
            out[k] = v[a:b]
    return out


class ContextMatchLoss(torch.nn.Module):
    """The ConTeXT objective as a sentence-transformers loss, for ``SentenceTransformerTrainer``.

    Dataset columns: ``sentence``, ``skill`` (the skill's label text) and ``label`` (a list of
    :data:`trainer.data.MAX_LABELS` skill ids, see :func:`masked_logits`). With ``mini_batch_size`` set the
    loss is gradient-cached the way sentence-transformers' ``CachedMultipleNegativesRankingLoss`` is: the
    forward pass embeds mini-batches without a graph and returns the loss; a hook on it re-embeds each
    mini-batch with a graph during ``backward()`` and pushes the cached gradients through (scaled by the
    incoming gradient, so gradient accumulation and loss scaling reach every mini-batch).
    """

    def __init__(self, model: Any, cfg: ContextLossConfig = ContextLossConfig(), mini_batch_size: int | None = 32) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.mini_batch_size = mini_batch_size

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.cfg.temperature, "symmetric": self.cfg.symmetric,
                "score": self.cfg.score.to_dict(), "mini_batch_size": self.mini_batch_size}

    def _embed(self, features: dict[str, Any], pooled: bool) -> tuple[Tensor, Tensor | None]:
        tokens, mask, sentence = _outputs(self.model, features)
        return (sentence, None) if pooled else (tokens, mask)

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor) -> Tensor:
        features = list(sentence_features)
        if len(features) != 2:
            raise ValueError(f"ContextMatchLoss needs exactly two text columns (sentence, skill), got {len(features)}")
        sent_f, skill_f = features
        if not self.mini_batch_size or not torch.is_grad_enabled():
            tokens, mask = self._embed(sent_f, pooled=False)
            skills, _ = self._embed(skill_f, pooled=True)
            return context_loss(tokens, mask, skills, labels, self.cfg)
        n = int(labels.shape[0])
        spans = [(a, min(a + self.mini_batch_size, n)) for a in range(0, n, self.mini_batch_size)]
        device_type = labels.device.type if labels.device.type != "cpu" else "cpu"
        autocast = (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        states: list[tuple[_RngState, _RngState]] = []
        tok_chunks, mask_chunks, skill_chunks = [], [], []
        with torch.no_grad():
            for a, b in spans:
                s1 = _RngState()
                t, m = self._embed(_slice_features(sent_f, a, b), pooled=False)
                s2 = _RngState()
                p, _ = self._embed(_slice_features(skill_f, a, b), pooled=True)
                states.append((s1, s2))
                tok_chunks.append(t)
                mask_chunks.append(m)
                skill_chunks.append(p)
        length = max(t.shape[1] for t in tok_chunks)
        tokens = _pad([t.float() for t in tok_chunks], length).requires_grad_(True)
        mask = _pad([m.long() for m in mask_chunks], length).bool()
        skills = torch.cat([p.float() for p in skill_chunks]).requires_grad_(True)
        with torch.enable_grad():
            loss = context_loss(tokens, mask, skills, labels, self.cfg)
            tok_grad, skill_grad = torch.autograd.grad(loss, [tokens, skills])
        out = loss.detach().requires_grad_(True)

        def replay(grad_output: Tensor) -> None:
            with torch.enable_grad(), torch.autocast(device_type, dtype=autocast[1], enabled=autocast[0]):
                for (a, b), (s1, s2) in zip(spans, states):
                    with s1:
                        t, _ = self._embed(_slice_features(sent_f, a, b), pooled=False)
                    surrogate = (t.float() * tok_grad[a:b, : t.shape[1]]).sum()
                    with s2:
                        p, _ = self._embed(_slice_features(skill_f, a, b), pooled=True)
                    surrogate = surrogate + (p.float() * skill_grad[a:b]).sum()
                    (surrogate * grad_output).backward()

        out.register_hook(replay)
        return out
