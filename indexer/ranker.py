"""Rank sentences against a taxonomy's skills with no index: the skill vectors are encoded in memory exactly as
the indexer stores them (:func:`indexer.build.index_items`), and scored exactly through
:mod:`jobskills.scoring`.

The trainer ranks its dev set with the model being trained (best-checkpoint choice) and calibrates a new
model's threshold before any index of it exists. It is a :class:`jobskills.evaluation.Ranker`, like the live
index, so both feed the same metrics and sweeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from jobskills.evaluation import ScoredBatch, exact_batches
from jobskills.lexical import LabelLexicon

if TYPE_CHECKING:
    from jobskills.encoder import Encoder
    from jobskills.esco import Esco
    from jobskills.scoring import ScoreConfig

__all__ = ["SkillRanker"]


class SkillRanker:
    """Every skill point of ``items`` (``(text, payload)`` as :func:`indexer.build.skill_items` makes them),
    encoded by ``encoder``; a skill with several label points scores its best label.

    Attributes:
        matrix: ``(n_rows, dim)`` the pooled label vectors, on the CPU.
        payloads: per row; uris: per skill (score column), in first-row order.
    """

    def __init__(self, encoder: "Encoder", items: Sequence[tuple[str, Mapping[str, Any]]], score_config: "ScoreConfig",
                 batch_size: int = 128) -> None:
        import torch

        self.encoder = encoder
        self.score_config = score_config
        self.batch_size = batch_size
        texts = [t for t, _ in items]
        matrix = torch.empty(len(texts), encoder.dim)
        for idx, enc in encoder.iter_encode(texts, batch_size=batch_size):
            matrix[torch.tensor(idx)] = enc.pooled.cpu()
        self.matrix = matrix
        self.payloads = [dict(p) for _, p in items]
        column: dict[str, int] = {}
        owner = [column.setdefault(p.get("uri", ""), len(column)) for p in self.payloads]
        self._uris = list(column)
        self._owner = torch.tensor(owner, dtype=torch.long)
        self.lexicon = LabelLexicon.for_points(self.payloads, self._uris) if score_config.lexical else None

    @classmethod
    def for_taxonomy(cls, encoder: "Encoder", esco: "Esco", score_config: "ScoreConfig", batch_size: int = 128,
                     labels: str = "preferred") -> "SkillRanker":
        """Every skill of ``esco`` (``labels``: ``preferred`` or ``all``, as :func:`indexer.build.skill_items`)."""
        from indexer.build import skill_items

        return cls(encoder, skill_items(esco, labels=labels), score_config, batch_size)

    @property
    def uris(self) -> Sequence[str]:
        return self._uris

    def __len__(self) -> int:
        return len(self._uris)

    def _by_skill(self, scores: Any) -> tuple[Any, Any]:
        import torch

        from jobskills.scoring import best_label

        if len(self._uris) == self.matrix.shape[0]:  # one point per skill: the grouping is the identity
            return scores, torch.arange(self.matrix.shape[0]).unsqueeze(0).expand(scores.shape[0], -1)
        return best_label(scores, self._owner, len(self._uris))

    def score_batches(self, texts: Sequence[str]) -> Iterator[ScoredBatch]:
        return exact_batches(self.encoder, texts, self.matrix, self.score_config, self.batch_size, self._by_skill,
                             self.lexicon)
