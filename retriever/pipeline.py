"""Read path: sentence -> token embeddings -> candidate skills -> exact ConTeXT rerank -> threshold ->
redundancy filter -> results with evidence; plus ranked skill search and job-title neighbours.

The candidate stage is lossless by default (``candidates="bound"``): the ConTeXT score never exceeds
``max_j cos(x_j, s)`` (see :func:`jobskills.scoring.token_bound`), so every skill some token reaches with
cosine >= threshold is scored exactly, and no skill above threshold is missed. The skill matrix (each
point's stored ``mean`` vector) is read once from the store into memory for that bound and for the exact
rerank. ``bound-bf16`` evaluates the same bound in bfloat16 and screens with a proven margin (faster on CPUs
with native bf16, still lossless). Other modes: ``qdrant`` (the same bound as exact per-token threshold searches inside Qdrant),
``maxsim`` (Qdrant's multivector MAX_SIM top-N: faster to reason about, no recall guarantee) and
``exhaustive`` (score every skill).
"""

from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from jobskills.config import Settings
from jobskills.encoder import Encoded, Encoder
from jobskills.errors import IndexMismatchError, IndexNotFoundError, InputError
from jobskills.schema import Manifest, SkillPayload, TitlePayload, check_manifest
from jobskills.scoring import (
    BF16_MARGIN, ScoreConfig, attention, redundancy_keep_pairs, score_all, score_pairs, token_bound,
)
from jobskills.store import BM25, MEAN, TITLE_SCHEMA, TOKENS, Fusion, Hit, Source, Store, open_store
from jobskills.taxonomy import DEFAULT_TAXONOMY, skills_kind
from jobskills.threshold import Threshold, resolve_threshold
from retriever.skills import SkillVectors
from retriever.text import MAX_TEXT_CHARS, require_words, split_sentences

__all__ = ["Evidence", "SkillMatch", "SentenceResult", "TitleMatch", "Retriever", "CANDIDATE_MODES", "check_manifest",
           "TITLE_METHODS", "DEFAULT_TITLE_METHOD", "HYBRID", "TitleFusion"]

logger = logging.getLogger(__name__)

CANDIDATE_MODES = ("bound", "bound-bf16", "qdrant", "maxsim", "exhaustive")
_FLOAT_SLACK = 1e-5  # engines and torch round differently at the threshold boundary


@dataclass(frozen=True)
class TitleFusion:
    """What ``titles(method="hybrid")`` asks Qdrant: a prefetch of ``prefetch`` points per source
    (``lexical`` = BM25, ``mean`` = pooled cosine, ``maxsim`` = late interaction), fused by ``fusion``. A
    source named twice counts twice in RRF (sum of 1 / (k + rank) over the prefetches): a weight that every
    Qdrant with parametrised RRF (>= 1.16) applies, unlike RRF ``weights`` (>= 1.17, and they scale ranks)."""

    sources: tuple[str, ...]
    fusion: Fusion
    prefetch: int = 100


#: Job-title methods; the default was chosen on the JobBERT development titles (benchmarks/README.md).
TITLE_METHODS = ("hybrid", "mean", "maxsim", "lexical")
DEFAULT_TITLE_METHOD = "hybrid"
#: Chosen on 2,000 JobBERT development titles (benchmarks/README.md): semantic evidence counts twice, k=20.
HYBRID = TitleFusion(("lexical", "mean", "mean"), Fusion("rrf", k=20))


@dataclass
class Evidence:
    """A word of the input that carried a match: its text, character span in the input, attention weight."""

    text: str
    start: int
    end: int
    weight: float


@dataclass
class SkillMatch:
    uri: str
    label: str
    skill_type: str
    score: float
    evidence: list[Evidence] = field(default_factory=list)
    reuse_level: str = ""
    matched_label: str = ""  # the label that scored best: the preferred one or, with label expansion, an alternative

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SentenceResult:
    text: str
    start: int
    end: int
    skills: list[SkillMatch]
    candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end, "candidates": self.candidates,
                "skills": [s.to_dict() for s in self.skills]}


@dataclass
class TitleMatch:
    """An ESCO occupation near a job title, and why: the ESCO title that matched (``matched_title``, the
    occupation's best-ranked title point) and the evidence that carried it: ``lexical`` (BM25 ranked that
    title among its best: it shares words with the query), ``semantic`` (the embedding ranked it among its
    best), or ``both``. ``lexical_score`` is its BM25 score (IDF-weighted), ``semantic_score`` its cosine
    with the query (``maxsim``: MAX_SIM per query token); each is None where that evidence did not reach it.
    ``score`` is the method's ranking score: for ``hybrid`` the fused rank score (RRF), comparable only
    within one answer."""

    occupation_uri: str
    label: str
    isco_group: str
    score: float
    matched_title: str
    evidence: str = "semantic"
    lexical_score: float | None = None
    semantic_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_unicode(text: str) -> None:
    """A lone surrogate (e.g. JSON "\\ud800") is not text: refuse it with its position instead of failing deep
    inside the tokenizer."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"the text holds an unpaired surrogate (U+{ord(text[exc.start]):04X}) at character {exc.start}; "
                         "send valid Unicode") from None


def _model_for(settings: Settings, manifest: Manifest) -> str:
    """The model to query with: the one set explicitly (``--model``, env, config file), else the one the live
    index was built with when its folder exists (after ``jobskills train`` that is the new model), else the default."""
    if settings.model:
        return settings.model_path
    built_with = manifest.model_path
    if built_with and Path(built_with).is_dir():
        return str(built_with)
    return settings.model_path


class _SkillTable(SkillVectors):
    """The published skills version held in memory: payloads and the exact ``mean`` matrix, one row per point."""

    def __init__(self, store: Store, version: str, manifest: dict[str, Any], kind: str = "skills") -> None:
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


class Retriever:
    """Query side of jobskills. Open once, query many times.

    Args:
        settings: resolved settings (store location, model, threshold override).
        store: an open store (default: :func:`jobskills.store.open_store`); closed by :meth:`close` only if
            this object opened it.
        encoder: a loaded encoder (default: ``settings.model_path``).
        candidates: candidate stage, one of :data:`CANDIDATE_MODES`.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        encoder: Encoder | None = None,
        candidates: str = "bound",
        taxonomy: str | None = None,
    ) -> None:
        if candidates not in CANDIDATE_MODES:
            raise InputError(f"unknown candidate mode {candidates!r}; choose one of {', '.join(CANDIDATE_MODES)}")
        self.settings = settings
        self._own_store = store is None
        self.store = store or open_store(settings)
        try:
            self.taxonomy = taxonomy or DEFAULT_TAXONOMY
            kind = skills_kind(self.taxonomy)
            found = self.store.current_manifest(kind)
            if found is None and kind != "skills":
                from jobskills.taxonomy import load_taxonomy

                load_taxonomy(settings.home, self.taxonomy)  # an unknown name: "no taxonomy ...; see taxonomy list"
            if found is None:
                hint = "" if kind == "skills" else f" --taxonomy {self.taxonomy}"
                raise IndexNotFoundError(
                    f"no {self.taxonomy} skills index in {self.store.location}; run `jobskills index{hint}` first"
                )
            self.encoder = encoder or Encoder(_model_for(settings, Manifest.from_dict(found[1])), device=settings.device)
            check_manifest(found[1], self.encoder, self.taxonomy)
            self.skills = _SkillTable(self.store, *found, kind=kind)
            # the (skills, titles) pair is pinned here, for the life of this object: answers never mix versions,
            # and the leases keep a later `index` from pruning what this reader serves
            self._titles_pinned = self.store.current_manifest("titles") if kind == "skills" else None
            if self._titles_pinned is not None:
                self.store.hold("titles", self._titles_pinned[0])
        except BaseException:
            self.close()
            raise
        self.candidates = candidates
        self.score_config = ScoreConfig.from_dict(self.skills.meta.score_config)
        choice = self.threshold_choice
        logger.info("answering from skills %s, titles %s; threshold %.3f from %s", found[0],
                    self._titles_pinned[0] if self._titles_pinned else None, choice.value, choice.source)
        self._titles: tuple[str, dict[str, Any]] | None = None
        self.title_encoder: Encoder = self.encoder

    # ------------------------------------------------------------------ info
    @property
    def threshold(self) -> float:
        return self.threshold_choice.value

    @property
    def threshold_choice(self) -> Threshold:
        """The threshold queries use when the call gives none, and its source (:mod:`jobskills.threshold`)."""
        return resolve_threshold(None, self.settings, self.skills.manifest)

    def provenance(self) -> dict[str, Any]:
        m = self.skills.meta
        return {
            "model": m.model_name,
            "model_fingerprint": m.model_fingerprint,
            "taxonomy": m.taxonomy,
            "taxonomy_fingerprint": m.taxonomy_fingerprint,
            "esco_version": m.esco_version,
            "scorer_version": self.score_config.version,
            "threshold": self.threshold,
            "threshold_source": self.threshold_choice.source,
            "index_version": self.skills.version,
            "titles_version": self._titles_pinned[0] if self._titles_pinned else None,
            "candidates": self.candidates,
        }

    @property
    def versions(self) -> tuple[str, str | None]:
        """The pinned (skills, titles) pair this object answers from."""
        return self.skills.version, (self._titles_pinned[0] if self._titles_pinned else None)

    def close(self) -> None:
        if self._own_store and getattr(self, "store", None) is not None:
            self.store.close()
            self.store = None  # type: ignore[assignment]

    def __enter__(self) -> "Retriever":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ extract
    def extract(
        self, text: str, threshold: float | None = None, redundancy: bool = True, evidence_words: int = 5
    ) -> list[SentenceResult]:
        """Split ``text`` into sentences and extract skills from each (spans refer to ``text``)."""
        return self.extract_many([text], threshold, redundancy, evidence_words)[0]

    def extract_many(
        self, texts: Sequence[str], threshold: float | None = None, redundancy: bool = True, evidence_words: int = 5,
        spans: Sequence[Sequence[tuple[int, int]]] | None = None,
    ) -> list[list[SentenceResult]]:
        """Several texts (e.g. ads) at once: the sentences of all of them share encoder batches.

        ``spans``: each text's :meth:`split`, when the caller already has it (saves tokenising twice)."""
        units: list[tuple[int, int, int]] = []
        for ti, text in enumerate(texts):
            units.extend((ti, a, b) for a, b in (spans[ti] if spans is not None else self.split(text)))
        flat = self._extract_units(texts, units, threshold, redundancy, evidence_words)
        out: list[list[SentenceResult]] = [[] for _ in texts]
        for (ti, _, _), res in zip(units, flat):
            out[ti].append(res)
        return out

    def split(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans of ``text`` that fit the encoder; a clear error for unusable text."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("the text is empty; give a sentence or a job ad")
        _check_unicode(text)
        if len(text) > MAX_TEXT_CHARS:
            raise InputError(
                f"the text has {len(text):,} characters, over the {MAX_TEXT_CHARS:,} limit for one text; for many ads, put "
                "one per line of a JSONL file and use corpus mode: jobskills extract --file ads.jsonl --text-field text "
                "--out results.jsonl"
            )
        spans = self._fit_spans(text, split_sentences(text))
        if not spans:
            raise InputError("the text has no words to analyse")
        return spans

    def extract_sentences(
        self, sentences: Sequence[str], threshold: float | None = None, redundancy: bool = True, evidence_words: int = 5
    ) -> list[SentenceResult]:
        """One result per given sentence (no splitting; overlong sentences are truncated by the encoder)."""
        return self._extract_units(sentences, [(i, 0, len(s)) for i, s in enumerate(sentences)], threshold, redundancy, evidence_words)

    def _fit_spans(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Cut spans longer than the encoder's window at token boundaries, so nothing is silently truncated.

        One tokenizer call gives every span's count and, for the long ones, the cut points."""
        if not spans:
            return []
        limit = self.encoder.max_tokens - 2
        tok = self.encoder.tokenizer([text[a:b] for a, b in spans], add_special_tokens=False, truncation=False,
                                     return_offsets_mapping=True, verbose=False)
        specials = self.encoder.tokenizer.num_special_tokens_to_add(pair=False)
        out: list[tuple[int, int]] = []
        for (a, b), offsets in zip(spans, tok["offset_mapping"]):
            if len(offsets) + specials <= limit + 2:
                out.append((a, b))
                continue
            for i in range(0, len(offsets), limit):
                chunk = offsets[i : i + limit]
                out.append((a + chunk[0][0], a + chunk[-1][1]))
        return out

    def _extract_units(
        self,
        texts: Sequence[str],
        units: Sequence[tuple[int, int, int]],
        threshold: float | None,
        redundancy: bool,
        evidence_words: int,
    ) -> list[SentenceResult]:
        """Extract from ``units`` = (text index, start, end), in order; spans refer to their own text."""
        t = self.threshold if threshold is None else float(threshold)
        results: list[SentenceResult | None] = [None] * len(units)
        bs = self.settings.batch_size
        # batches of similar length: padding costs encoder time and bound time for nothing
        order = sorted(range(len(units)), key=lambda i: units[i][2] - units[i][1])
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            batch = [units[i] for i in idx]
            enc = self.encoder.encode([texts[ti][a:b] for ti, a, b in batch], with_offsets=True)
            rows_per_sentence = self._candidates(enc, t)
            for i, res in zip(idx, self._rerank(texts, batch, enc, rows_per_sentence, t, redundancy, evidence_words)):
                results[i] = res
        return results  # type: ignore[return-value]

    def _candidates(self, enc: Encoded, t: float) -> list[np.ndarray]:
        """Row indices into the skill table to score exactly, per sentence."""
        import torch

        n = len(enc)
        m = self.skills.n_rows
        if self.candidates == "exhaustive":
            return [np.arange(m)] * n
        if self.candidates in ("bound", "bound-bf16"):
            half = self.candidates == "bound-bf16"
            if half and self.skills.unit_bf16 is None:
                self.skills.unit_bf16 = self.skills.unit.to(torch.bfloat16)
            bound = token_bound(enc.tokens, enc.mask, self.skills.matrix, dtype=torch.bfloat16 if half else torch.float32,
                                skills_unit=self.skills.unit_bf16 if half else self.skills.unit)
            cut = t - (BF16_MARGIN if half else _FLOAT_SLACK)
            return [torch.nonzero(bound[i] >= cut).flatten().numpy() for i in range(n)]
        out = []
        for i in range(n):
            toks = enc.token_rows(i).cpu().numpy()
            if self.candidates == "maxsim":
                hits = self.store.query_maxsim(self.skills.kind, self.skills.version, toks, limit=100)
                ids = [h.id for h in hits]
            else:  # qdrant: per-token threshold search on `mean`; cos = dot with a unit token when s is unit
                if not self.skills.meta.normalized:
                    raise InputError("candidates='qdrant' needs a model with normalised embeddings; use 'bound'")
                unit = toks / np.linalg.norm(toks, axis=1, keepdims=True).clip(1e-12)
                ids = self._threshold_search(unit, t - _FLOAT_SLACK)
            out.append(np.asarray(sorted({self.skills.row_of[i] for i in ids}), dtype=np.int64))
        return out

    def _threshold_search(self, queries: np.ndarray, t: float, limit: int = 128) -> set[int]:
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

    def _rerank(
        self,
        texts: Sequence[str],
        units: list[tuple[int, int, int]],
        enc: Encoded,
        rows_per_sentence: list[np.ndarray],
        t: float,
        redundancy: bool,
        evidence_words: int,
    ) -> list[SentenceResult]:
        """Exact scores of every candidate pair of the batch in one segmented pass
        (:func:`jobskills.scoring.score_pairs`); the token cosines and weights it returns serve the threshold,
        the redundancy filter and the evidence, so no pair's cosines are computed twice."""
        import torch

        n = len(units)
        counts = [len(rows) for rows in rows_per_sentence]
        kept: list[list[tuple[int, float, int]]] = [[] for _ in range(n)]  # per sentence: (row, score, pair)
        pairs = None
        if sum(counts):
            owner = torch.repeat_interleave(torch.arange(n), torch.tensor(counts))
            rows = torch.from_numpy(np.concatenate([np.asarray(r, dtype=np.int64) for r in rows_per_sentence]))
            pairs = score_pairs(enc.tokens, enc.mask, self.skills.matrix, owner, rows, self.score_config)
            kept = self._above(pairs.scores, owner, rows, t, n)
        if redundancy and pairs is not None:
            flat = [p for ks in kept if len(ks) > 1 for _, _, p in ks]
            if flat:
                idx = torch.tensor(flat)
                keep = iter(redundancy_keep_pairs(pairs.cos[idx], pairs.mask[idx], owner[idx]).tolist())
                kept = [[k for k in ks if next(keep)] if len(ks) > 1 else ks for ks in kept]
        alpha_rows: Any = iter(())
        if evidence_words and pairs is not None:
            flat = [p for ks in kept for _, _, p in ks]
            if flat:
                alpha_rows = iter(pairs.alpha[torch.tensor(flat)].tolist())  # one conversion for the batch
        results = []
        for i, (ti, a, b) in enumerate(units):
            text = texts[ti]
            matches = [self._match(r, s) for r, s, _ in kept[i]]
            if matches and evidence_words:
                real = enc.mask[i].tolist()
                alpha = [[w for w, m in zip(next(alpha_rows), real) if m] for _ in matches]  # real tokens only
                self._attach_evidence(text, a, enc, i, [(r, s) for r, s, _ in kept[i]], matches, evidence_words, alpha)
            results.append(SentenceResult(text[a:b], a, b, matches, candidates=counts[i]))
        return results

    def _above(self, scores: Any, owner: Any, rows: Any, t: float, n: int) -> list[list[tuple[int, float, int]]]:
        """Per sentence, the pairs at or above ``t`` as (row, score, pair index), best first. With label
        expansion a skill keeps its best label only (ties: the later row, as :func:`jobskills.scoring.best_label`);
        equal scores keep skill order, as the per-sentence rerank did."""
        import torch

        hit = torch.nonzero(scores >= t).flatten()
        skill_of = self.skills.owner
        best: list[dict[int, tuple[int, float, int]]] = [{} for _ in range(n)]
        for p, i, r, s in zip(hit.tolist(), owner[hit].tolist(), rows[hit].tolist(), scores[hit].tolist()):
            k = int(skill_of[r]) if self.skills.expanded else r
            cur = best[i].get(k)
            if cur is None or s > cur[1] or (s == cur[1] and r > cur[0]):
                best[i][k] = (r, s, p)
        return [[v for _, v in sorted(b.items(), key=lambda kv: (-kv[1][1], kv[0]))] for b in best]

    def _match(self, row: int, score: float) -> SkillMatch:
        p = SkillPayload.from_dict(self.skills.payloads[row])
        return SkillMatch(uri=p.uri, label=p.label, skill_type=p.skill_type, score=round(score, 6),
                          reuse_level=p.reuse_level, matched_label=p.text)

    def _attach_evidence(
        self, text: str, offset: int, enc: Encoded, i: int, kept: list[tuple[int, float]], matches: list[SkillMatch], top: int,
        alpha: list[list[float]] | None = None,
    ) -> None:
        """Words of the sentence with the attention each skill put on them (special tokens left out).

        ``alpha``: per match, its weights over the sentence's real tokens when the caller has them already
        (the batched rerank); otherwise they are computed here."""
        import torch

        n_real = int(enc.mask[i].sum())
        if alpha is None:
            vecs = self.skills.matrix[torch.tensor([r for r, _ in kept])]
            alpha = attention(enc.token_rows(i), torch.ones(n_real, dtype=torch.bool), vecs, self.score_config)[0].tolist()
        word_ids = enc.word_ids[i] if enc.word_ids else [None] * n_real
        offsets = enc.offsets[i] if enc.offsets else [(0, 0)] * n_real
        spans: dict[int, list[int]] = {}
        for j, w in enumerate(word_ids):
            if w is None:
                continue
            s, e = offsets[j]
            cur = spans.setdefault(w, [s, e, j])
            cur[0], cur[1] = min(cur[0], s), max(cur[1], e)
        for k, match in enumerate(matches):
            weights: dict[int, float] = {}
            for w, a in zip(word_ids, alpha[k]):
                if w is not None:
                    weights[w] = weights.get(w, 0.0) + a
            best = sorted(weights.items(), key=lambda kv: -kv[1])[:top]
            match.evidence = [
                Evidence(text[offset + spans[w][0] : offset + spans[w][1]], offset + spans[w][0], offset + spans[w][1], round(wt, 4))
                for w, wt in best
            ]

    # ------------------------------------------------------------------ search
    def search(self, query: str, k: int = 10) -> list[SkillMatch]:
        """The k best skills for ``query`` by exact ConTeXT score over every skill (no threshold)."""
        import torch

        if not query or not query.strip():
            raise InputError("the query is empty")
        _check_unicode(query)
        if k < 1:
            raise InputError("k must be >= 1")
        enc = self.encoder.encode([query.strip()], with_offsets=True)
        by_skill, best_row = self.skills.by_skill(score_all(enc.tokens, enc.mask, self.skills.matrix, self.score_config))
        top = torch.topk(by_skill[0], min(k, by_skill.shape[1]))
        kept = [(int(best_row[0, j]), float(s)) for s, j in zip(top.values, top.indices)]
        matches = [self._match(r, s) for r, s in kept]
        self._attach_evidence(query.strip(), 0, enc, 0, kept, matches, 3)
        return matches

    # ------------------------------------------------------------------ titles
    def _title_version(self) -> tuple[str, dict[str, Any]]:
        if self._titles is None:
            found = self._titles_pinned
            if found is None:
                raise IndexNotFoundError(f"no job-title index in {self.store.location}; run `jobskills index`")
            self.title_encoder = self._encoder_for_titles(found[1])
            check_manifest(found[1], self.title_encoder)
            self._titles = found
        return self._titles

    def _encoder_for_titles(self, manifest: dict[str, Any]) -> Encoder:
        """The titles index may be built with its own model (a JobBERT-style title encoder from
        ``jobskills train-titles``): use the one set in ``title_model``, else the one the index names when it is
        not the skills model, else the skills model."""
        wanted = self.settings.title_model
        m = Manifest.from_dict(manifest)
        if not wanted and m.model_fingerprint != self.encoder.fingerprint:
            path = m.model_path
            wanted = path if path and Path(path).is_dir() else None
        if not wanted or Path(wanted).resolve() == Path(self.encoder.path).resolve():
            return self.encoder
        return Encoder(wanted, device=self.settings.device)

    TITLE_METHODS = TITLE_METHODS

    def titles(self, query: str, k: int = 10, method: str | None = None) -> list[TitleMatch]:
        """Nearest ESCO occupations for a free-text job title, best title per occupation.

        ``hybrid`` (the default, :data:`DEFAULT_TITLE_METHOD`): lexical (BM25 on the title words) and semantic
        (pooled cosine) evidence fused by Qdrant in one query (see :data:`HYBRID`); ``mean``: cosine of
        pooled embeddings; ``maxsim``: late interaction over title tokens (MAX_SIM / number of query tokens,
        in [-1, 1]); ``lexical``: BM25 alone. ``hybrid`` and ``lexical`` need a titles index with the BM25
        vector (schema 2: ``jobskills index --only titles`` builds it).
        """
        method = method or DEFAULT_TITLE_METHOD
        if not query or not query.strip():
            raise InputError("the job title is empty")
        _check_unicode(query)
        require_words(query, "the job title")  # emoji alone once got confident hits, while extract refused them
        if k < 1:
            raise InputError("k must be >= 1")
        if method not in TITLE_METHODS:
            raise InputError(f"unknown title method {method!r}; choose one of {', '.join(TITLE_METHODS)}")
        version, manifest = self._title_version()
        query = query.strip()
        limit = max(50, 10 * k)
        if method in ("maxsim", "mean"):
            enc = self.title_encoder.encode([query])
            if method == "maxsim":
                n_tok = int(enc.mask[0].sum())
                hits = self.store.query_maxsim("titles", version, enc.token_rows(0).cpu().numpy(), limit=limit)
                hits = [Hit(h.id, h.score / n_tok, h.payload) for h in hits]
            else:
                hits = self.store.query_mean("titles", version, enc.pooled.cpu().numpy(), limit=limit, with_payload=True)[0]
            scored = [(h.score, h.payload or {}, "semantic", None, h.score) for h in hits]
        else:
            scored = self._fused_titles(query, version, manifest, method, limit)
        best: dict[str, TitleMatch] = {}
        for score, payload, evidence, lexical, semantic in scored:
            p = TitlePayload.from_dict(payload)
            for j, occ in enumerate(p.occupations):
                if occ not in best or score > best[occ].score:
                    best[occ] = TitleMatch(
                        occupation_uri=occ,
                        label=p.occupation_labels[j],
                        isco_group=p.isco_groups[j],
                        score=round(float(score), 6),
                        matched_title=p.text,
                        evidence=evidence,
                        lexical_score=None if lexical is None else round(float(lexical), 6),
                        semantic_score=None if semantic is None else round(float(semantic), 6),
                    )
        return sorted(best.values(), key=lambda m: -m.score)[:k]

    def _lexical(self, manifest: dict[str, Any]) -> Any:
        """The BM25 encoder the titles index was built with (its settings are in the manifest); a clear
        error for an index built before the BM25 vector existed."""
        m = Manifest.from_dict(manifest)
        lex = m.lexical
        if m.schema_of_titles < TITLE_SCHEMA or not lex:
            raise IndexMismatchError(
                f"the titles index {m.version} has no BM25 vector (title schema "
                f"{m.schema_of_titles}, this jobskills needs {TITLE_SCHEMA} for lexical and hybrid "
                "title search); rebuild it with `jobskills index --only titles`, or use --method mean"
            )
        cached = getattr(self, "_bm25", None)
        if cached is None or cached[0] != m.version:
            from jobskills.lexical import Bm25Encoder, Bm25Settings

            cached = (m.version, Bm25Encoder(Bm25Settings.from_dict(lex.get("bm25"))))
            self._bm25 = cached
        return cached[1]

    def _fused_titles(
        self, query: str, version: str, manifest: dict[str, Any], method: str, limit: int
    ) -> list[tuple[float, dict[str, Any], str, float | None, float | None]]:
        """``lexical`` / ``hybrid`` in one fused Qdrant query: (score, payload, evidence, BM25, cosine) per hit."""
        words = self._lexical(manifest).query(query)
        spec = HYBRID if method == "hybrid" else TitleFusion(("lexical",), Fusion("rrf", HYBRID.fusion.k), HYBRID.prefetch)
        prefetch = max(spec.prefetch, limit // 5)  # k=100 (the evaluation depth) asks 200 per source
        sources = []
        enc = None
        for name in spec.sources:
            if name == "lexical":
                if words[0]:  # a query of stopwords alone has no lexical evidence
                    sources.append(Source("lexical", BM25, words, prefetch))
                continue
            if enc is None:
                enc = self.title_encoder.encode([query])
            if name == "mean":
                sources.append(Source("mean", MEAN, enc.pooled[0].cpu().numpy(), prefetch))
            else:
                sources.append(Source("maxsim", TOKENS, enc.token_rows(0).cpu().numpy(), prefetch))
        if not sources:
            return []
        fused = self.store.query_fused("titles", version, sources, spec.fusion, limit)
        lex = fused.sources.get("lexical", {})
        sem_name = "mean" if "mean" in fused.sources else "maxsim"
        sem = fused.sources.get(sem_name, {})
        n_tok = int(enc.mask[0].sum()) if enc is not None and sem_name == "maxsim" else 1
        out = []
        for h in fused.hits:
            in_lex, in_sem = h.id in lex, any(h.id in fused.sources[n] for n in fused.sources if n != "lexical")
            evidence = "both" if in_lex and in_sem else ("lexical" if in_lex else "semantic")
            out.append((h.score, h.payload or {}, evidence, lex[h.id][1] if in_lex else None,
                        sem[h.id][1] / n_tok if h.id in sem else None))
        return out
