"""THE ConTeXT-match math. Every caller (reranker, evaluator, calibration, training loss) imports it from here.

For a sentence with real token vectors x_j (last-layer token embeddings, special tokens included,
padding excluded, not normalised) and a skill vector s (the model's pooled label embedding)::

    alpha_j = softmax_j(l_j / T)            l_j = x_j . s  (default) or cos(x_j, s)
    score   = sum_j alpha_j * cos(x_j, s)

alpha is a convex combination, so ``score <= max_j cos(x_j, s)`` (:func:`token_bound`): a candidate stage
that returns every skill some token reaches with cosine >= t loses nothing above threshold t.

Lexical evidence (``ScoreConfig.lexical`` = lambda > 0) adds the skill's label-word coverage
``c in [0, 1]`` (:class:`jobskills.lexical.LabelLexicon`: the IDF-weighted share of a label's words that the
sentence contains, best label of the skill)::

    final = score + lambda * c

Since ``c <= 1`` is known before any exact score, the bound stays lossless: a skill can reach ``final >= t``
only if its token bound is ``>= t - lambda * c`` (:func:`candidate_floor`).

Shapes: ``tokens (n_sentences, n_tokens, dim)``, ``mask (n_sentences, n_tokens)`` with True for a real
token, ``skills (n_skills, dim)``. Padding is masked explicitly, never by testing for zero products.

Reference: Decorte et al. 2025, "Efficient Text Encoders for Labor Market Analysis" (ConTeXT-match),
arXiv:2505.24640; the redundancy filter is from the same paper.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping

import torch
from torch import Tensor

__all__ = [
    "SCORER_VERSION",
    "ScoreConfig",
    "token_cosines",
    "score_all",
    "score_pairwise",
    "score_pairs",
    "token_bound",
    "token_bound_rows",
    "LowRankBound",
    "SCREEN_MARGIN",
    "BF16_MARGIN",
    "attention",
    "redundancy_keep",
    "redundancy_keep_pairs",
    "best_label",
    "fuse",
    "candidate_floor",
]

#: Bumped whenever the formula or its conventions change; stored with every index and model.
SCORER_VERSION = "contextmatch-1"

citation = """@article{decorte2025efficient,
  title={Efficient Text Encoders for Labor Market Analysis},
  author={Decorte, Jens-Joris and Van Hautte, Jeroen and Develder, Chris and Demeester, Thomas},
  journal={arXiv preprint arXiv:2505.24640}, year={2025}}"""

_EPS = 1e-12


@dataclass(frozen=True)
class ScoreConfig:
    """Scorer settings that travel with a model and its index.

    Args:
        logits: what goes inside the softmax: raw dot products ("dot", the published convention)
            or cosines ("cos").
        temperature: divides the logits; 1.0 at inference in the published convention.
        lexical: weight of the label-word coverage added to the score (0: the published score alone). Chosen
            on development data per model, so it travels with the model like the temperature.
    """

    logits: Literal["dot", "cos"] = "dot"
    temperature: float = 1.0
    lexical: float = 0.0

    def __post_init__(self) -> None:
        if self.logits not in ("dot", "cos"):
            raise ValueError(f"ScoreConfig.logits must be 'dot' or 'cos', got {self.logits!r}")
        if not self.temperature > 0:
            raise ValueError(f"ScoreConfig.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.lexical <= 10.0:
            raise ValueError(f"ScoreConfig.lexical must be between 0 and 10, got {self.lexical}")

    @property
    def version(self) -> str:
        """A string that changes whenever a score could change."""
        lexical = f"/L{self.lexical:g}" if self.lexical else ""  # absent at 0: older indexes keep their version
        return f"{SCORER_VERSION}/{self.logits}/T{self.temperature:g}{lexical}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "ScoreConfig":
        data = dict(data or {})
        return cls(logits=data.get("logits", "dot"), temperature=float(data.get("temperature", 1.0)),
                   lexical=float(data.get("lexical", 0.0)))


def fuse(scores: Tensor, coverage: Tensor | None, cfg: ScoreConfig) -> Tensor:
    """The final score: ConTeXT ``scores`` plus ``cfg.lexical`` times the label-word ``coverage`` (same shape).
    With no lexical weight or no coverage the scores come back unchanged.

    >>> cfg = ScoreConfig(lexical=0.3)
    >>> [round(v, 4) for v in fuse(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.25]), cfg).tolist()]
    [0.8, 0.575]
    """
    if not cfg.lexical or coverage is None:
        return scores
    return scores + cfg.lexical * coverage.to(scores.dtype)


def candidate_floor(threshold: float, coverage: Tensor | None, cfg: ScoreConfig) -> Tensor | float:
    """The token bound a skill needs to possibly reach ``threshold`` after :func:`fuse`: ``t - lambda * c``
    per skill (a scalar ``t`` without lexical evidence). Screening ``bound >= floor`` loses nothing.

    >>> [round(v, 4) for v in candidate_floor(0.6, torch.tensor([0.0, 0.5, 1.0]), ScoreConfig(lexical=0.3)).tolist()]
    [0.6, 0.45, 0.3]
    """
    if not cfg.lexical or coverage is None:
        return threshold
    return threshold - cfg.lexical * coverage.float()


def token_cosines(tokens: Tensor, mask: Tensor, skills: Tensor) -> tuple[Tensor, Tensor]:
    """Dot products and cosines of every real token with every skill.

    Returns:
        ``(dots, cos)``, each ``(n_sentences, n_tokens, n_skills)``; both are 0 at padded tokens.
    """
    dots = torch.einsum("nld,md->nlm", tokens, skills)
    tok_norm = tokens.norm(dim=-1).clamp_min(_EPS)  # (n, l)
    skill_norm = skills.norm(dim=-1).clamp_min(_EPS)  # (m,)
    cos = dots / (tok_norm.unsqueeze(-1) * skill_norm)
    real = mask.unsqueeze(-1)
    return dots.masked_fill(~real, 0.0), cos.masked_fill(~real, 0.0)


def _combine(dots: Tensor, cos: Tensor, mask: Tensor, cfg: ScoreConfig, token_dim: int) -> Tensor:
    logits = (dots if cfg.logits == "dot" else cos) / cfg.temperature
    logits = logits.masked_fill(~mask, float("-inf"))
    alpha = torch.softmax(logits, dim=token_dim)
    return (alpha * cos).sum(dim=token_dim)


def score_all(
    tokens: Tensor, mask: Tensor, skills: Tensor, cfg: ScoreConfig = ScoreConfig(), chunk_size: int = 4096
) -> Tensor:
    """ConTeXT score of every sentence against every skill.

    Args:
        tokens: ``(n_sentences, n_tokens, dim)`` token embeddings (padding rows are ignored).
        mask: ``(n_sentences, n_tokens)`` bool, True for real tokens; every row needs one.
        skills: ``(n_skills, dim)`` pooled skill embeddings.
        cfg: scorer settings.
        chunk_size: skills per step, to bound the ``(n, n_tokens, chunk)`` intermediate.

    Returns:
        ``(n_sentences, n_skills)`` scores.

    >>> x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])   # one sentence, two tokens
    >>> m = torch.tensor([[True, True]])
    >>> s = torch.tensor([[1.0, 0.0]])                 # one skill
    >>> round(score_all(x, m, s).item(), 4)            # softmax(1, 0) = (0.7311, 0.2689); cos = (1, 0)
    0.7311
    >>> round(score_all(x, torch.tensor([[True, False]]), s).item(), 4)  # second token masked out
    1.0
    """
    mask = mask.bool()
    out = []
    for start in range(0, skills.shape[0], chunk_size):
        dots, cos = token_cosines(tokens, mask, skills[start : start + chunk_size])
        out.append(_combine(dots, cos, mask.unsqueeze(-1), cfg, token_dim=1))
    if not out:
        return tokens.new_zeros((tokens.shape[0], 0))
    return torch.cat(out, dim=1)


def score_pairwise(tokens: Tensor, mask: Tensor, skills: Tensor, cfg: ScoreConfig = ScoreConfig()) -> Tensor:
    """ConTeXT score of sentence i against skill i.

    Args:
        tokens: ``(n, n_tokens, dim)``; mask: ``(n, n_tokens)``; skills: ``(n, dim)``.

    Returns:
        ``(n,)`` scores.

    >>> x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 2.0]]])
    >>> m = torch.ones(2, 2, dtype=torch.bool)
    >>> s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> [round(v, 4) for v in score_pairwise(x, m, s).tolist()]   # second: softmax(0, 2) . (0, 1)
    [0.7311, 0.8808]
    """
    mask = mask.bool()
    dots = torch.einsum("nld,nd->nl", tokens, skills)
    cos = dots / (tokens.norm(dim=-1).clamp_min(_EPS) * skills.norm(dim=-1).clamp_min(_EPS).unsqueeze(-1))
    return _combine(dots.masked_fill(~mask, 0.0), cos.masked_fill(~mask, 0.0), mask, cfg, token_dim=1)


@dataclass
class PairScores:
    """What :func:`score_pairs` computes once per (sentence, skill) pair, for reuse by the caller.

    Attributes:
        scores: ``(P,)`` ConTeXT scores.
        cos: ``(P, n_tokens)`` token-by-skill cosines of the pair's sentence, 0 at padding.
        alpha: ``(P, n_tokens)`` attention weights, 0 at padding, sum 1 per pair.
        mask: ``(P, n_tokens)`` True at the pair's real tokens.
    """

    scores: Tensor
    cos: Tensor
    alpha: Tensor
    mask: Tensor


def score_pairs(
    tokens: Tensor, mask: Tensor, skills: Tensor, owner: Tensor, rows: Tensor, cfg: ScoreConfig = ScoreConfig(),
    block_size: int = 64,
) -> PairScores:
    """Segmented ConTeXT: the score of sentence ``owner[p]`` against skill ``rows[p]``, for every pair p at once.

    The candidates of a whole batch are scored together (no loop over sentences): each sentence's pairs are
    cut into blocks of ``block_size`` skills, and one batched matmul gives every block's token-by-skill
    products. The work is that of the pairs (plus at most one partial block per sentence), not of
    ``n_sentences x max candidates``. The cosines and weights come back too, so the redundancy filter and
    the evidence reuse them instead of recomputing.

    Args:
        tokens: ``(n_sentences, n_tokens, dim)``; mask: ``(n_sentences, n_tokens)``.
        skills: ``(n_skills, dim)``; owner, rows: ``(P,)`` long, sentence and skill row of each pair.
        cfg: scorer settings.

    Returns:
        :class:`PairScores`; ``scores[p]`` equals ``score_all(tokens, mask, skills)[owner[p], rows[p]]``.

    >>> x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, 0.0]]])   # 2nd sentence: one real token
    >>> m = torch.tensor([[True, True], [True, False]])
    >>> s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> out = score_pairs(x, m, s, owner=torch.tensor([0, 0, 1]), rows=torch.tensor([0, 1, 0]))
    >>> [round(v, 4) for v in out.scores.tolist()]   # = score_all(x, m, s)[[0, 0, 1], [0, 1, 0]]
    [0.7311, 0.8808, 0.0]
    >>> out.cos[2].tolist(), out.alpha[2].tolist()
    ([0.0, 0.0], [1.0, 0.0])
    """
    mask = mask.bool()
    n, length = mask.shape
    owner = torch.as_tensor(owner, dtype=torch.long, device=tokens.device)
    rows = torch.as_tensor(rows, dtype=torch.long, device=tokens.device)
    n_pairs = owner.shape[0]
    pmask = mask[owner]  # (P, L)
    if n_pairs == 0:
        empty = tokens.new_zeros((0, length))
        return PairScores(tokens.new_zeros(0), empty, empty, pmask)
    order = torch.argsort(owner, stable=True)
    so = owner[order]
    counts = torch.bincount(so, minlength=n)
    n_blocks = (counts + block_size - 1) // block_size
    first_pair = torch.cumsum(counts, 0) - counts
    first_block = torch.cumsum(n_blocks, 0) - n_blocks
    pos = torch.arange(n_pairs, device=tokens.device) - first_pair[so]
    blk = torch.empty_like(owner)
    slot = torch.empty_like(owner)
    blk[order] = first_block[so] + torch.div(pos, block_size, rounding_mode="floor")
    slot[order] = pos % block_size
    block_owner = torch.repeat_interleave(torch.arange(n, device=tokens.device), n_blocks)
    pair_skills = skills[rows]  # (P, dim)
    packed = skills.new_zeros((block_owner.shape[0], block_size, skills.shape[1]))
    packed[blk, slot] = pair_skills
    block_dots = torch.bmm(tokens[block_owner], packed.transpose(1, 2))  # (n_blocks, L, block_size)
    dots = block_dots[blk, :, slot]  # (P, L)
    tok_norm = tokens.norm(dim=-1).clamp_min(_EPS)[owner]  # (P, L)
    skill_norm = pair_skills.norm(dim=-1).clamp_min(_EPS).unsqueeze(-1)  # (P, 1)
    cos = (dots / (tok_norm * skill_norm)).masked_fill(~pmask, 0.0)
    dots = dots.masked_fill(~pmask, 0.0)
    logits = (dots if cfg.logits == "dot" else cos) / cfg.temperature
    alpha = torch.softmax(logits.masked_fill(~pmask, float("-inf")), dim=1)
    return PairScores((alpha * cos).sum(dim=1), cos, alpha, pmask)


#: Safe slack for :func:`token_bound` in bfloat16. Unit vectors rounded to bf16 (unit roundoff u = 2^-8) give
#: |dot error| <= (2u + u^2) * ||x|| * ||s|| ~= 0.0079 (Cauchy-Schwarz); the fp32-accumulated product is
#: rounded once more to bf16 (<= u * |cos| <= 0.0039). 0.02 covers both with room to spare, so screening at
#: ``t - BF16_MARGIN`` keeps every skill whose true bound is >= t.
BF16_MARGIN = 0.02


def token_bound(
    tokens: Tensor, mask: Tensor, skills: Tensor, chunk_size: int = 1024, skills_unit: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Upper bound of the score: ``max_j cos(x_j, s)`` over real tokens, ``(n_sentences, n_skills)``.

    Computed as one matrix product of the batch's *real* tokens (padding dropped, unit length) with the
    unit skill vectors, then a max per sentence: the cheapest exact form of the bound. Pass
    ``skills_unit`` (``skills`` scaled to unit length) to reuse it across calls. With ``dtype=torch.bfloat16``
    the product runs in bf16 (about 2.7x faster on CPUs with AVX512-BF16/AMX) and each value is within
    :data:`BF16_MARGIN` of the exact bound. The skills go in blocks of ``chunk_size`` so each block's
    products stay in cache: one product of every token with 13,891 skills writes ~100 MB and the memory traffic
    costs as much as the arithmetic (1,024-row blocks were 1.3-1.4x faster than 8,192 on 2 CPU cores).

    >>> x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    >>> token_bound(x, torch.tensor([[True, True]]), torch.tensor([[1.0, 1.0]])).tolist()
    [[0.7071067690849304]]
    """
    if skills_unit is None:
        skills_unit = skills / skills.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    flat, owner = _real_unit_tokens(tokens, mask)
    flat = flat.to(dtype)
    skills_unit = skills_unit.to(dtype)
    out = tokens.new_full((tokens.shape[0], skills_unit.shape[0]), float("-inf"))
    for start in range(0, skills_unit.shape[0], chunk_size):
        cos = (flat @ skills_unit[start : start + chunk_size].T).float()  # (n_real_tokens, chunk)
        out[:, start : start + cos.shape[1]] = _segment_max(cos, owner, tokens.shape[0])
    return out


#: Slack of :class:`LowRankBound`'s screen. Its value is a sum of float32 dot products of unit-length operands
#: (|error| <= n * u ~ 385 * 6e-8 ~ 2.3e-5 each, Higham's bound) plus the projection's own rounding; 2e-4 covers
#: several times the worst case, so screening at ``bar - SCREEN_MARGIN`` drops no row whose exact bound reaches it.
SCREEN_MARGIN = 2e-4


@dataclass(frozen=True)
class LowRankBound:
    """A cheaper upper bound of :func:`token_bound`, for screening before the exact one.

    With ``B`` an orthonormal basis of ``r`` directions (the skills' top principal directions) every unit
    vector splits into its projection and an orthogonal residual, and by Cauchy-Schwarz::

        x . s = (B'x) . (B's) + x_r . s_r  <=  (B'x) . (B's) + |x_r| |s_r|

    That is one product in ``r + 1`` dimensions (:attr:`skills_aug` holds ``[B's, |s_r|]`` per row) instead of
    ``dim``: with ``r = dim / 3`` a third of the bound's work, and the few rows it lets through get the exact
    bound (:func:`token_bound_rows`). Skill vectors concentrate in few directions, so the residuals are small
    and the screen is tight: on the HOUSE development sentences with the 13,891 ESCO skills (MiniLM, r = 128,
    threshold 0.66 with lexical floors) about 150 rows per sentence pass the screen and 18 the exact bound.
    """

    basis: Tensor  # (dim, r), orthonormal columns
    skills_aug: Tensor  # (n_rows, r + 1): projection of each unit skill row, then its residual norm

    @classmethod
    def fit(cls, skills_unit: Tensor, rank: int) -> "LowRankBound":
        """The top-``rank`` eigenvectors of the rows' Gram matrix (float64, so the basis is orthonormal to
        float32 precision), and each row's coordinates and residual norm in it."""
        gram = skills_unit.double().T @ skills_unit.double()
        _, vecs = torch.linalg.eigh(gram)  # ascending eigenvalues
        basis = vecs[:, -rank:].flip(1).to(skills_unit.dtype).contiguous()
        return cls(basis, cls._augment(skills_unit, basis))

    @staticmethod
    def _augment(unit: Tensor, basis: Tensor) -> Tensor:
        proj = unit @ basis
        resid = (unit - proj @ basis.T).norm(dim=-1, keepdim=True)  # computed directly: sqrt(1 - |p|^2) loses digits near 0
        return torch.cat([proj, resid], dim=1)

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    def upper(self, tokens: Tensor, mask: Tensor, chunk_size: int = 512) -> Tensor:
        """``(n_sentences, n_rows)``, >= :func:`token_bound` of the same rows up to :data:`SCREEN_MARGIN`."""
        flat, owner = _real_unit_tokens(tokens, mask)
        aug = self._augment(flat, self.basis)
        out = tokens.new_empty((tokens.shape[0], self.skills_aug.shape[0]))
        for start in range(0, self.skills_aug.shape[0], chunk_size):  # blocks that stay in cache (see token_bound)
            block = self.skills_aug[start : start + chunk_size]
            out[:, start : start + block.shape[0]] = _segment_max(aug @ block.T, owner, tokens.shape[0])
        return out


def token_bound_rows(tokens: Tensor, mask: Tensor, skills_unit: Tensor, rows: list[Tensor]) -> list[Tensor]:
    """:func:`token_bound` of only ``rows[i]`` (indices into ``skills_unit``) for sentence ``i``: the exact
    check after a screen, one small product per sentence over its slice of the batch's unit tokens (normalised
    once for the batch, as in :func:`token_bound`)."""
    flat, _ = _real_unit_tokens(tokens, mask)
    ends = torch.cumsum(mask.bool().sum(dim=1), 0).tolist()
    out = []
    start = 0
    for i, r in enumerate(rows):
        end = ends[i]
        out.append(torch.mm(flat[start:end], skills_unit.index_select(0, r).T).amax(dim=0) if len(r)
                   else tokens.new_empty(0))
        start = end
    return out


def _real_unit_tokens(tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The batch's real tokens at unit length, sentence-major ``(n_real_tokens, dim)``, and each one's sentence."""
    mask = mask.bool()
    flat = tokens[mask]
    owner = torch.repeat_interleave(torch.arange(tokens.shape[0], device=tokens.device), mask.sum(dim=1))
    return flat / flat.norm(dim=-1, keepdim=True).clamp_min(_EPS), owner


def _segment_max(values: Tensor, owner: Tensor, n: int) -> Tensor:
    """Row-wise max of ``values`` per owner index: ``(n, values.shape[1])``, -inf for an owner with no row."""
    out = values.new_full((n, values.shape[1]), float("-inf"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # index_reduce is marked beta; it is ~25x faster than a Python loop
        return out.index_reduce_(0, owner, values, "amax")


def attention(tokens: Tensor, mask: Tensor, skills: Tensor, cfg: ScoreConfig = ScoreConfig()) -> tuple[Tensor, Tensor]:
    """Per-token weights and cosines of one sentence for a few skills: the evidence behind a score.

    Args:
        tokens: ``(n_tokens, dim)`` of one sentence; mask: ``(n_tokens,)``; skills: ``(k, dim)``.

    Returns:
        ``(alpha, cos)``, each ``(k, n_tokens)``; alpha is 0 on padding and sums to 1 per skill,
        and ``(alpha * cos).sum(-1)`` equals :func:`score_all` for those skills.
    """
    mask = mask.bool()
    dots, cos = token_cosines(tokens.unsqueeze(0), mask.unsqueeze(0), skills)  # (1, l, k)
    dots, cos = dots[0].T, cos[0].T  # (k, l)
    logits = (dots if cfg.logits == "dot" else cos) / cfg.temperature
    alpha = torch.softmax(logits.masked_fill(~mask.unsqueeze(0), float("-inf")), dim=-1)
    return alpha, cos


def redundancy_keep(tokens: Tensor, mask: Tensor, skills: Tensor) -> Tensor:
    """Redundancy filter: keep a skill only if some real token likes it best among ``skills``.

    Args:
        tokens: ``(n_tokens, dim)`` of one sentence; mask: ``(n_tokens,)``; skills: ``(k, dim)``,
            the skills that passed the threshold.

    Returns:
        ``(k,)`` bool.

    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> s = torch.tensor([[1.0, 0.1], [0.9, 0.2], [0.1, 1.0]])   # the 2nd is nobody's favourite
    >>> redundancy_keep(x, torch.tensor([True, True]), s).tolist()
    [True, False, True]
    """
    mask = mask.bool()
    keep = torch.zeros(skills.shape[0], dtype=torch.bool, device=skills.device)
    if skills.shape[0] == 0 or not bool(mask.any()):
        return keep
    _, cos = token_cosines(tokens.unsqueeze(0), mask.unsqueeze(0), skills)
    best = cos[0][mask].argmax(dim=-1)  # (n_real_tokens,)
    keep[best] = True
    return keep


def redundancy_keep_pairs(cos: Tensor, mask: Tensor, owner: Tensor) -> Tensor:
    """:func:`redundancy_keep` for many sentences at once, from cosines already computed (:func:`score_pairs`).

    Args:
        cos: ``(k, n_tokens)`` token cosines of the pairs that passed the threshold; mask: ``(k, n_tokens)``
            True at real tokens; owner: ``(k,)`` the sentence of each pair. Within a sentence, pairs are in
            the order that breaks ties (as :func:`redundancy_keep`'s argmax: the first one wins).

    Returns:
        ``(k,)`` bool: the pair is the best of its sentence's pairs for at least one real token.

    >>> c = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.5, 0.5], [0.5, 0.5]])
    >>> m = torch.ones(5, 2, dtype=torch.bool)
    >>> redundancy_keep_pairs(c, m, torch.tensor([0, 0, 0, 1, 1])).tolist()   # a tie goes to the first
    [True, False, True, True, False]
    """
    mask = mask.bool()
    k = cos.shape[0]
    if k == 0:
        return torch.zeros(0, dtype=torch.bool, device=cos.device)
    owner = torch.as_tensor(owner, dtype=torch.long, device=cos.device)
    n = int(owner.max()) + 1
    vals = cos.masked_fill(~mask, float("-inf"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # index_reduce is marked beta (see _segment_max)
        best = vals.new_full((n, cos.shape[1]), float("-inf")).index_reduce_(0, owner, vals, "amax")  # (n, L)
        hit = (vals == best[owner]) & mask
        pos = torch.arange(k, device=cos.device).unsqueeze(1).expand_as(hit)
        first = torch.where(hit, pos, torch.full_like(pos, k))
        winner = torch.full((n, cos.shape[1]), k, dtype=torch.long, device=cos.device).index_reduce_(0, owner, first, "amin")
    keep = torch.zeros(k + 1, dtype=torch.bool, device=cos.device)
    keep[winner.flatten()] = True
    return keep[:k]


def best_label(scores: Tensor, owner: Tensor, n_skills: int) -> tuple[Tensor, Tensor]:
    """Label expansion: a skill's score is the best score over its labels (points).

    Args:
        scores: ``(n, n_labels)`` exact scores of each label point; owner: ``(n_labels,)`` the skill index of
            each label; n_skills: the number of skills.

    Returns:
        ``(skill_scores, best_row)``, each ``(n, n_skills)``: the max over each skill's labels and the label
        row that reached it (-inf / -1 for a skill with no label among ``scores``' columns). The candidate
        bound stays lossless: it holds for every label, so for the best one.

    >>> s, r = best_label(torch.tensor([[0.2, 0.7, 0.4]]), torch.tensor([0, 0, 1]), 2)
    >>> s.tolist(), r.tolist()
    ([[0.699999988079071, 0.4000000059604645]], [[1, 2]])
    """
    n = scores.shape[0]
    idx = owner.to(scores.device).unsqueeze(0).expand(n, -1)
    skill_scores = scores.new_full((n, n_skills), float("-inf")).scatter_reduce(1, idx, scores, "amax")
    rows = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0).expand(n, -1)
    hit = scores >= skill_scores.gather(1, idx)
    best_row = torch.full((n, n_skills), -1, dtype=torch.long, device=scores.device)
    best_row = best_row.scatter_reduce(1, idx, torch.where(hit, rows, torch.full_like(rows, -1)), "amax")
    return skill_scores, best_row
