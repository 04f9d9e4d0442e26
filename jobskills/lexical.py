"""BM25 sparse vectors for the job-title index: the lexical half of the hybrid title search.

Titles are short and users often type words of an ESCO label ("data engineer", "RN"): exact word overlap is
strong, cheap evidence there. Each title point carries a sparse BM25 document vector (term-frequency
weights, saturated with ``k`` and normalised by length with ``b`` over the titles' average length); the
query side gives each distinct word weight 1. The IDF factor is not in the vectors: the engine applies it
at query time from the collection (a sparse vector with ``modifier=IDF``), so it always matches the index.

Both engines get the same numbers: qdrant-edge-py's ``Bm25`` tokenises, stems and hashes words for the
embedded engine and for qdrant-client (a server, local mode, ``:memory:``) alike. The configuration is
recorded in the titles manifest, so a query tokenises exactly as the index was built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

__all__ = ["BM25", "Bm25Settings", "SparseVec", "Bm25Encoder"]

#: The sparse vector's name on a title point.
BM25 = "bm25"

#: (indices, values) of a sparse vector, engine-neutral.
SparseVec = tuple[list[int], list[float]]


@dataclass(frozen=True)
class Bm25Settings:
    """What the manifest records: BM25's ``k``/``b``, the titles' average length in words, and the
    tokenisation (English stemmer and stopwords, lower-cased, accents folded so "cafe" meets "café")."""

    k: float = 1.2
    b: float = 0.75
    avg_len: float = 3.0
    language: str = "english"
    ascii_folding: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Bm25Settings":
        data = data or {}
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class Bm25Encoder:
    """Documents and queries to sparse vectors with one fixed :class:`Bm25Settings`."""

    def __init__(self, settings: Bm25Settings | None = None) -> None:
        import qdrant_edge as qe

        self.settings = settings or Bm25Settings()
        s = self.settings
        self._model = qe.Bm25(qe.Bm25Config(k=s.k, b=s.b, avg_len=s.avg_len, language=s.language,
                                            ascii_folding=s.ascii_folding))

    @classmethod
    def fitted(cls, texts: Sequence[str], **overrides: Any) -> "Bm25Encoder":
        """An encoder whose ``avg_len`` is the mean number of distinct indexed words of ``texts``: BM25's
        default (256, for passages) would make every title look short and flatten the length normalisation."""
        probe = cls(Bm25Settings(**overrides))
        lengths = [len(probe.query(t)[0]) for t in texts]
        avg = sum(lengths) / len(lengths) if lengths else 1.0
        return cls(Bm25Settings(**{**overrides, "avg_len": round(max(avg, 1.0), 4)}))

    def document(self, text: str) -> SparseVec:
        v = self._model.embed_document(text)
        return list(v.indices), list(v.values)

    def query(self, text: str) -> SparseVec:
        v = self._model.embed_query(text)
        return list(v.indices), list(v.values)
