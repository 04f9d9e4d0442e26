"""Lexical evidence: BM25 sparse vectors for job titles, and label-word coverage for skills.

Skills (:class:`LabelLexicon`): a sentence that contains the words of a skill label ("Python",
"PostgreSQL", "project management") is strong evidence for that skill, and the encoder alone misses many of
them. Coverage is the IDF-weighted share of a label's words found in the sentence, best label of the skill,
in [0, 1]; :func:`jobskills.scoring.fuse` adds it to the ConTeXT score with the model's weight.

Titles:

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

import math
import re
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["BM25", "Bm25Settings", "SparseVec", "Bm25Encoder", "words", "LabelLexicon"]

# A word: starts with a letter or digit, may hold + and # ("c++", "c#") and inner dots ("node.js", "asp.net").
_WORD = re.compile(r"[^\W_](?:[\w+#]|\.(?=[^\W_]))*")
# Qualifiers in parentheses ("Python (computer programming)") say which sense is meant; ads never write them.
_QUALIFIER = re.compile(r"\s*\([^)]*\)")
#: Words that carry no skill on their own. Kept short on purpose: IDF already discounts frequent words.
STOPWORDS = frozenset(
    "a an the and or of in on at to for with by from as is are be been will would can could should may "
    "your you our we us they their its it this that these those such other etc e.g i.e".split()
)


def words(text: str, label: bool = False) -> list[str]:
    """The lower-cased content words of ``text``; a skill ``label`` also loses its parenthesised qualifiers.

    >>> words("You will write Python code and manage PostgreSQL / Node.js / C++ databases.")
    ['write', 'python', 'code', 'manage', 'postgresql', 'node.js', 'c++', 'databases']
    >>> words("Python (computer programming)", label=True)
    ['python']
    """
    if label:
        text = _QUALIFIER.sub("", text)
    return [w for w in _WORD.findall(text.casefold()) if w not in STOPWORDS]


class LabelLexicon:
    """Label-word coverage of every skill for a batch of sentences, as one dense ``(n, n_skills)`` tensor.

    Built from each skill's labels (preferred and alternative). A word's weight in a label is its IDF over all
    distinct labels divided by the label's total, so a label's weights sum to 1 and rare words ("postgresql")
    count more than common ones ("management"). A sentence's coverage of a label is the sum of the weights of
    the label words it contains; a skill takes its best label.
    """

    def __init__(self, skill_labels: Sequence[Sequence[str]]) -> None:
        import torch

        labels: list[tuple[int, tuple[str, ...]]] = []
        for row, texts in enumerate(skill_labels):
            seen: set[frozenset[str]] = set()
            for text in texts:
                ws = tuple(dict.fromkeys(words(text, label=True)))
                if ws and frozenset(ws) not in seen:
                    seen.add(frozenset(ws))
                    labels.append((row, ws))
        df: dict[str, int] = {}
        for _, ws in labels:
            for w in ws:
                df[w] = df.get(w, 0) + 1
        self.vocab = {w: i for i, w in enumerate(sorted(df))}
        n = len(labels)
        idf = {w: math.log(1.0 + n / (1.0 + c)) for w, c in df.items()}
        # word -> (label, weight) entries in CSR form over the vocabulary
        entries: list[list[tuple[int, float]]] = [[] for _ in self.vocab]
        for li, (_, ws) in enumerate(labels):
            total = sum(idf[w] for w in ws)
            for w in ws:
                entries[self.vocab[w]].append((li, idf[w] / total))
        counts = torch.tensor([len(e) for e in entries], dtype=torch.long)
        self._crow = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
        self._label = torch.tensor([li for e in entries for li, _ in e], dtype=torch.long)
        self._weight = torch.tensor([wt for e in entries for _, wt in e], dtype=torch.float32)
        self._owner = torch.tensor([row for row, _ in labels], dtype=torch.long)
        self.n_skills = len(skill_labels)
        self.n_labels = n

    @classmethod
    def for_points(cls, payloads: Sequence[Mapping[str, Any]], uris: Sequence[str]) -> "LabelLexicon":
        """The lexicon of an index's skills, columns in ``uris`` order, from its point payloads: each point's
        ``text`` and ``label``, and the ``alt_labels`` the preferred point carries."""
        column = {u: i for i, u in enumerate(uris)}
        labels: list[list[str]] = [[] for _ in uris]
        for p in payloads:
            i = column.get(p.get("uri", ""))
            if i is not None:
                labels[i].extend([p.get("label", ""), p.get("text", ""), *(p.get("alt_labels") or ())])
        return cls(labels)

    def coverage(self, texts: Sequence[str]) -> "Tensor":
        """``(len(texts), n_skills)`` coverage in [0, 1]; 0 where a skill shares no word with the sentence."""
        import torch

        out = torch.zeros(len(texts), self.n_skills)
        ids = [sorted({self.vocab[w] for w in words(t) if w in self.vocab}) for t in texts]
        sent = torch.tensor([i for i, row in enumerate(ids) for _ in row], dtype=torch.long)
        word = torch.tensor([w for row in ids for w in row], dtype=torch.long)
        if not len(word):
            return out
        start, length = self._crow[word], self._crow[word + 1] - self._crow[word]
        total = int(length.sum())  # > 0: every vocabulary word is in some label
        # every (sentence, label entry) pair of the batch, without a Python loop over entries
        pair_sent = torch.repeat_interleave(sent, length)
        offset = torch.arange(total) - torch.repeat_interleave(torch.cumsum(length, 0) - length, length)
        entry = torch.repeat_interleave(start, length) + offset
        key = pair_sent * self.n_labels + self._label[entry]
        uniq, inverse = torch.unique(key, return_inverse=True)
        per_label = torch.zeros(uniq.shape[0]).index_add_(0, inverse, self._weight[entry])
        rows = torch.div(uniq, self.n_labels, rounding_mode="floor")
        skills = self._owner[uniq % self.n_labels]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # index_reduce is marked beta (as in jobskills.scoring)
            out.view(-1).index_reduce_(0, rows * self.n_skills + skills, per_label.clamp(max=1.0), "amax")
        return out


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
