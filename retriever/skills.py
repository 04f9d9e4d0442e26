"""The skill side of a query held in memory: one row per indexed label point, grouped into skills.

With label expansion an index holds a point per label (the preferred label and each alternative label) and
several rows share a skill URI; a skill's score is its best label's score
(:func:`jobskills.scoring.best_label`). Without it every skill is one row and the grouping is the identity.
The live index (:class:`SkillTable`, read by :class:`retriever.pipeline.Retriever`) and the offline ranker
that scores a model with no index both hold one of these, so ranking, thresholds and evaluation treat labels
the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from jobskills.errors import IndexNotFoundError
from jobskills.schema import Manifest

if TYPE_CHECKING:
    from jobskills.store import Store

__all__ = ["SkillVectors", "SkillTable"]


class SkillVectors:
    """Rows (label points) with their exact ``mean`` vectors and payloads, and the skill each belongs to.

    Attributes:
        matrix: ``(n_rows, dim)`` float32, the pooled label vectors exactly as the model produced them.
        unit: the same rows scaled to unit length (the candidate bound's operand).
        payloads: per row; ``uri`` names the skill, ``text`` the label the row encodes (default: ``label``).
        owner: ``(n_rows,)`` long, the skill index of each row.
        uris: per skill, its URI (in first-row order); ``skill_of_uri`` the reverse.
        expanded: True when some skill has more than one row.
    """

    def __init__(self, matrix: Any, payloads: Sequence[dict[str, Any]]) -> None:
        import torch

        self.matrix = matrix
        self.unit = matrix / matrix.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        self.unit_bf16: Any = None  # made on first use by the bf16 candidate stage
        self.low_rank: Any = None  # the bound stage's screen (jobskills.scoring.LowRankBound), fitted on first use
        self.payloads = list(payloads)
        self.skill_of_uri: dict[str, int] = {}
        self.first_row: list[int] = []  # per skill, its first row (the preferred label)
        owner = []
        for row, p in enumerate(self.payloads):
            uri = p.get("uri", "")
            if uri not in self.skill_of_uri:
                self.skill_of_uri[uri] = len(self.first_row)
                self.first_row.append(row)
            owner.append(self.skill_of_uri[uri])
        self.owner = torch.tensor(owner, dtype=torch.long)
        self.uris = list(self.skill_of_uri)
        self.expanded = len(self.uris) < len(self.payloads)

    def __len__(self) -> int:
        """The number of skills (not rows)."""
        return len(self.uris)

    @property
    def n_rows(self) -> int:
        return len(self.payloads)

    @property
    def row_of_uri(self) -> dict[str, int]:
        """A URI's first row (its preferred label when expanded): what a caller that needs one vector per skill uses."""
        return {u: self.first_row[s] for u, s in self.skill_of_uri.items()}

    def by_skill(self, scores: Any, rows: Any = None) -> tuple[Any, Any]:
        """Per-skill scores from per-row scores ``(n, k)``; ``rows``: the row index of each of the k columns
        (default: all rows). Returns ``(skill_scores (n, n_skills), best_row (n, n_skills))``; a skill none of
        whose rows is among the columns gets -inf and row -1."""
        import torch

        from jobskills.scoring import best_label

        if rows is None:
            if not self.expanded:
                n = scores.shape[0]
                return scores, torch.arange(self.n_rows).unsqueeze(0).expand(n, -1)
            rows = torch.arange(self.n_rows)
        rows = torch.as_tensor(rows, dtype=torch.long)
        skill_scores, best_col = best_label(scores, self.owner[rows], len(self.uris))
        best_row = torch.where(best_col >= 0, rows[best_col.clamp_min(0)], best_col)
        return skill_scores, best_row


class SkillTable(SkillVectors):
    """The published skills version held in memory: payloads and the exact ``mean`` matrix, one row per point
    (rows in point-id order; ``row_of`` maps a point id to its row)."""

    def __init__(self, store: "Store", version: str, manifest: dict[str, Any], kind: str = "skills") -> None:
        import numpy as np
        import torch

        ids, payloads, vecs = [], [], []
        for pid, payload, vec in store.scroll(kind, version, with_mean=True):
            ids.append(pid)
            payloads.append(payload)
            vecs.append(vec)
        if not ids:
            raise IndexNotFoundError(f"the skills index {version} is empty; run `jobskills index`")
        order = np.argsort(ids)
        super().__init__(torch.from_numpy(np.stack([vecs[i] for i in order]).astype(np.float32)), [payloads[i] for i in order])
        self.kind = kind
        self.version = version
        self.manifest = manifest
        self.ids = np.asarray(ids)[order]
        self.row_of = {int(pid): row for row, pid in enumerate(self.ids)}

    @property
    def meta(self) -> Manifest:
        """The manifest, typed (``manifest`` stays the stored dict: ``calibrate`` replaces it, the API shows it)."""
        return Manifest.from_dict(self.manifest)
