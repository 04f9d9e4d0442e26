"""Candidate stages: which skill points of a sentence the exact ConTeXT rerank scores.

Each stage is a small class; :data:`STAGES` names them (the ``--candidates`` option, ``Retriever(candidates=)``)
and :func:`candidate_stage` builds one. All answer the same question, per sentence of an encoded batch: the
rows of the in-memory skill table (:class:`retriever.skills.SkillTable`) worth scoring exactly at threshold ``t``.
With lexical evidence, ``floor`` (per sentence and row, :func:`jobskills.scoring.candidate_floor`:
``t - lambda * coverage``) is the lower bar a row's exact score must reach; ``None`` means ``t`` everywhere.

- ``bound`` (the default, lossless): the ConTeXT score never exceeds ``max_j cos(x_j, s)``
  (:func:`jobskills.scoring.token_bound`), so every skill some token reaches with cosine >= ``t`` is scored
  and no skill above the threshold is missed. On a large table it first screens with a cheaper bound of that
  bound in a third of the dimensions (:class:`jobskills.scoring.LowRankBound`) and computes the exact one
  for the rows that pass only: the same rows, at about a third of the cost.
- ``bound-bf16``: the same bound in bfloat16, screened with a proven margin (faster on CPUs with native
  bf16, still lossless).
- ``qdrant``: the same bound as exact per-token threshold searches inside Qdrant.
- ``maxsim``: Qdrant's multivector MAX_SIM top-100: faster to reason about, no recall guarantee.
- ``exhaustive``: every skill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from jobskills.errors import InputError
from jobskills.scoring import BF16_MARGIN, SCREEN_MARGIN, LowRankBound, token_bound, token_bound_rows

if TYPE_CHECKING:
    from jobskills.encoder import Encoded
    from jobskills.store import Store
    from retriever.skills import SkillTable

__all__ = ["CandidateStage", "Bound", "BoundBf16", "QdrantThreshold", "MaxSim", "Exhaustive", "STAGES",
           "CANDIDATE_MODES", "candidate_stage"]

FLOAT_SLACK = 1e-5  # engines and torch round differently at the threshold boundary


class CandidateStage:
    """Row indices into the skill table to score exactly, per sentence of an encoded batch."""

    name: ClassVar[str]
    #: True when no skill scoring at or above the threshold can be left out
    lossless: ClassVar[bool] = True

    def __init__(self, skills: "SkillTable", store: "Store") -> None:
        self.skills = skills
        self.store = store

    def rows(self, enc: "Encoded", t: float, floor: Any = None) -> list[np.ndarray]:
        raise NotImplementedError


class Exhaustive(CandidateStage):
    """Every row: the reference the other stages are measured against."""

    name = "exhaustive"

    def rows(self, enc: "Encoded", t: float, floor: Any = None) -> list[np.ndarray]:
        return [np.arange(self.skills.n_rows)] * len(enc)


class Bound(CandidateStage):
    """The rows whose token bound reaches ``t`` (or the row's floor), in float32 over the in-memory unit matrix.

    Tables of at least :attr:`screen_min_rows` rows are screened first by :class:`~jobskills.scoring.LowRankBound`
    (rank ``dim // 3``, fitted once per table); only the rows it passes get the exact bound, so the answer is
    the same rows the exact bound alone gives."""

    name = "bound"
    margin: ClassVar[float] = FLOAT_SLACK
    #: below this many rows the full product is cheap and a screen would only add work
    screen_min_rows: int = 4096

    def _unit(self) -> tuple[Any, Any]:
        import torch

        return torch.float32, self.skills.unit

    def _screen(self) -> LowRankBound | None:
        dim = int(self.skills.unit.shape[1])
        if self.skills.n_rows < self.screen_min_rows or dim < 3:
            return None
        if self.skills.low_rank is None:  # fitted on first use, kept with the table
            self.skills.low_rank = LowRankBound.fit(self.skills.unit, dim // 3)
        return self.skills.low_rank

    def rows(self, enc: "Encoded", t: float, floor: Any = None) -> list[np.ndarray]:
        import torch

        bar = t if floor is None else floor
        screen = self._screen()
        if screen is None:
            dtype, unit = self._unit()
            bound = token_bound(enc.tokens, enc.mask, self.skills.matrix, dtype=dtype, skills_unit=unit)
            keep = bound >= bar - self.margin
            return [torch.nonzero(keep[i]).flatten().numpy() for i in range(len(enc))]
        passed = screen.upper(enc.tokens, enc.mask) >= bar - self.margin - SCREEN_MARGIN
        rows = [torch.nonzero(passed[i]).flatten() for i in range(len(enc))]
        exact = token_bound_rows(enc.tokens, enc.mask, self.skills.unit, rows)
        out = []
        for i, (r, b) in enumerate(zip(rows, exact)):
            lim = bar if floor is None else floor[i, r]
            out.append(r[b >= lim - self.margin].numpy())
        return out


class BoundBf16(Bound):
    """The same bound in bfloat16, with a margin that covers bf16 rounding (:data:`jobskills.scoring.BF16_MARGIN`)."""

    name = "bound-bf16"
    margin = BF16_MARGIN

    def _screen(self) -> LowRankBound | None:
        return None  # the whole product in bf16, as measured

    def _unit(self) -> tuple[Any, Any]:
        import torch

        if self.skills.unit_bf16 is None:  # made on first use, kept with the table
            self.skills.unit_bf16 = self.skills.unit.to(torch.bfloat16)
        return torch.bfloat16, self.skills.unit_bf16


class _PerSentence(CandidateStage):
    """Stages that ask the store, one sentence at a time; points come back as ids, mapped to table rows."""

    def rows(self, enc: "Encoded", t: float, floor: Any = None) -> list[np.ndarray]:
        import torch

        out = []
        for i in range(len(enc)):
            ids = self.point_ids(enc.token_rows(i).cpu().numpy(), t)
            rows = {self.skills.row_of[p] for p in ids}
            if floor is not None:  # the store searches at t; rows with lexical evidence (a lower bar) are scored too
                rows.update(torch.nonzero(floor[i] < t).flatten().tolist())
            out.append(np.asarray(sorted(rows), dtype=np.int64))
        return out

    def point_ids(self, tokens: np.ndarray, t: float) -> set[int] | list[int]:
        raise NotImplementedError


class MaxSim(_PerSentence):
    """Qdrant's multivector MAX_SIM top-100 (no recall guarantee: measured, not assumed)."""

    name = "maxsim"
    lossless = False

    def point_ids(self, tokens: np.ndarray, t: float) -> list[int]:
        hits = self.store.query_maxsim(self.skills.kind, self.skills.version, tokens, limit=100)
        return [h.id for h in hits]


class QdrantThreshold(_PerSentence):
    """The token bound as exact per-token threshold searches on ``mean``: cos = dot with a unit token when the
    skill vectors are unit length, so the model must normalise its embeddings."""

    name = "qdrant"

    def point_ids(self, tokens: np.ndarray, t: float) -> set[int]:
        if not self.skills.meta.normalized:
            raise InputError("candidates='qdrant' needs a model with normalised embeddings; use 'bound'")
        unit = tokens / np.linalg.norm(tokens, axis=1, keepdims=True).clip(1e-12)
        return self.threshold_search(unit, t - FLOAT_SLACK)

    def threshold_search(self, queries: np.ndarray, t: float, limit: int = 128) -> set[int]:
        """Every point with dot >= t for some query row; re-asks lists that came back full."""
        found: set[int] = set()
        pending = list(range(len(queries)))
        while pending:
            lists = self.store.query_mean(self.skills.kind, self.skills.version, queries[pending], limit=limit, threshold=t)
            full = []
            for q, hits in zip(pending, lists):
                found.update(h.id for h in hits)
                if len(hits) >= limit and limit < self.skills.n_rows:
                    full.append(q)
            pending, limit = full, limit * 8
        return found


#: Every candidate stage by name, the default first.
STAGES: dict[str, type[CandidateStage]] = {c.name: c for c in (Bound, BoundBf16, QdrantThreshold, MaxSim, Exhaustive)}
CANDIDATE_MODES = tuple(STAGES)


def check_stage(name: str) -> str:
    """``name`` if a stage has it, else the error that lists them (before anything is opened)."""
    if name not in STAGES:
        raise InputError(f"unknown candidate mode {name!r}; choose one of {', '.join(CANDIDATE_MODES)}")
    return name


def candidate_stage(name: str, skills: "SkillTable", store: "Store") -> CandidateStage:
    """The stage called ``name`` over this skill table and store."""
    return STAGES[check_stage(name)](skills, store)
