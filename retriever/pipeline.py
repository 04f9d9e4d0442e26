"""The query path's façade: :class:`Retriever` opens the live index once and answers many queries.

A sentence goes: split (:mod:`retriever.text`) -> token embeddings (:mod:`jobskills.encoder`) -> candidate
skills (:mod:`retriever.candidates`, lossless ``bound`` by default) -> exact ConTeXT rerank plus the labels'
word coverage (:mod:`jobskills.lexical`), threshold, redundancy filter (:mod:`jobskills.scoring`, here in
:meth:`Retriever._rerank`) -> results with evidence
(:mod:`retriever.contract`). The skill matrix (each point's stored ``mean`` vector) is read once into memory
(:class:`retriever.skills.SkillTable`) for the candidate bound and the rerank. Ranked skill search is
:meth:`Retriever.search`; job-title neighbours are :mod:`retriever.titles`. The index contract (manifest,
payloads, :func:`~jobskills.schema.check_manifest`) is :mod:`jobskills.schema`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jobskills.config import Settings
from jobskills.encoder import Encoded, Encoder
from jobskills.errors import IndexNotFoundError, InputError
from jobskills.schema import Manifest, SkillPayload, check_manifest
from jobskills.lexical import LabelLexicon
from jobskills.scoring import ScoreConfig, attention, candidate_floor, fuse, redundancy_keep_pairs, score_all, score_pairs
from jobskills.store import Store, open_store
from jobskills.taxonomy import DEFAULT_TAXONOMY, skills_kind
from jobskills.threshold import Threshold, resolve_threshold
from retriever.candidates import CANDIDATE_MODES, CandidateStage, candidate_stage, check_stage
from retriever.contract import EVIDENCE_WORDS, Evidence, SentenceResult, SkillMatch, check_unicode
from retriever.skills import SkillTable
from retriever.text import MAX_TEXT_CHARS, split_sentences
from retriever.titles import DEFAULT_TITLE_METHOD, HYBRID, TITLE_METHODS, TitleFusion, TitleMatch, TitleSearch

__all__ = ["Evidence", "SkillMatch", "SentenceResult", "TitleMatch", "Retriever", "CANDIDATE_MODES", "check_manifest",
           "TITLE_METHODS", "DEFAULT_TITLE_METHOD", "HYBRID", "TitleFusion", "EVIDENCE_WORDS"]

logger = logging.getLogger(__name__)


def _model_for(settings: Settings, manifest: Manifest) -> str:
    """The model to query with: the one set explicitly (``--model``, env, config file), else the one the live
    index was built with when its folder exists (after ``jobskills train`` that is the new model), else the default.

    An explicitly set encoder backend counts as explicit too: it is applied to the index's model folder rather
    than silently replaced by the backend that folder carries, so ``--encoder-backend int8`` against an fp32
    index fails the fingerprint check with a clear :class:`~jobskills.errors.IndexMismatchError` instead of answering in fp32."""
    if settings.model:
        return settings.model_path
    built_with = manifest.model_path
    if built_with and Path(built_with).is_dir():
        if settings.encoder_backend is not None:
            from jobskills.models import backend_variant

            return backend_variant(str(built_with), settings.home, settings.encoder_backend)
        return str(built_with)
    return settings.model_path


class Retriever:
    """Query side of jobskills. Open once, query many times.

    Args:
        settings: resolved settings (store location, model, threshold override).
        store: an open store (default: :func:`jobskills.store.open_store`); closed by :meth:`close` only if
            this object opened it.
        encoder: a loaded encoder (default: ``settings.model_path``).
        candidates: candidate stage, one of :data:`CANDIDATE_MODES` (:mod:`retriever.candidates`).
        taxonomy: the skill taxonomy to answer from (default: the built-in ESCO).

    The parts: :attr:`skills` (the skill table in memory), :attr:`stage` (the candidate stage),
    :attr:`title_search` (job titles, with their own encoder); extraction's rerank and evidence live here.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        encoder: Encoder | None = None,
        candidates: str = "bound",
        taxonomy: str | None = None,
    ) -> None:
        check_stage(candidates)  # an unknown name fails before the store or the model is touched
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
            self.skills = SkillTable(self.store, *found, kind=kind)
            # the (skills, titles) pair is pinned here, for the life of this object: answers never mix versions,
            # and the leases keep a later `index` from pruning what this reader serves
            self._titles_pinned = self.store.current_manifest("titles") if kind == "skills" else None
            if self._titles_pinned is not None:
                self.store.hold("titles", self._titles_pinned[0])
        except BaseException:
            self.close()
            raise
        self.stage: CandidateStage = candidate_stage(candidates, self.skills, self.store)
        self.score_config = ScoreConfig.from_dict(self.skills.meta.score_config)
        self._lexicon: LabelLexicon | None = None
        choice = self.threshold_choice
        logger.info("answering from skills %s, titles %s; threshold %.3f from %s", found[0],
                    self._titles_pinned[0] if self._titles_pinned else None, choice.value, choice.source)
        self.title_search = TitleSearch(settings, self.store, self._titles_pinned, self.encoder)

    # ------------------------------------------------------------------ info
    @property
    def candidates(self) -> str:
        """The candidate stage's name (see :mod:`retriever.candidates`)."""
        return self.stage.name

    @candidates.setter
    def candidates(self, name: str) -> None:
        self.stage = candidate_stage(name, self.skills, self.store)

    @property
    def lexicon(self) -> LabelLexicon | None:
        """The skills' label words (:class:`jobskills.lexical.LabelLexicon`), built on first use from the
        index's payloads; None when the index's scorer gives lexical evidence no weight."""
        if not self.score_config.lexical:
            return None
        if self._lexicon is None:
            self._lexicon = LabelLexicon.for_points(self.skills.payloads, self.skills.uris)
        return self._lexicon

    def _coverage(self, texts: Sequence[str]) -> Any:
        """``(len(texts), n_skills)`` label-word coverage, or None without lexical evidence."""
        lex = self.lexicon
        return lex.coverage(texts) if lex is not None else None

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
            "title_model": self._titles_pinned[1].get("model_name") if self._titles_pinned else None,
            # the example-title sets of the titles index (names), [] when it holds none
            "title_examples": [e.get("name") for e in ((self._titles_pinned[1].get("title_examples") or {}).get("sets") or [])]
            if self._titles_pinned else None,
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
        self, text: str, threshold: float | None = None, redundancy: bool = True, evidence_words: int = EVIDENCE_WORDS
    ) -> list[SentenceResult]:
        """Split ``text`` into sentences and extract skills from each (spans refer to ``text``)."""
        return self.extract_many([text], threshold, redundancy, evidence_words)[0]

    def extract_many(
        self, texts: Sequence[str], threshold: float | None = None, redundancy: bool = True, evidence_words: int = EVIDENCE_WORDS,
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
        check_unicode(text)
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
        self, sentences: Sequence[str], threshold: float | None = None, redundancy: bool = True, evidence_words: int = EVIDENCE_WORDS
    ) -> list[SentenceResult]:
        """One result per given sentence (no splitting; overlong sentences are truncated by the encoder)."""
        return self._extract_units(sentences, [(i, 0, len(s)) for i, s in enumerate(sentences)], threshold, redundancy, evidence_words)

    def _fit_spans(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Cut spans longer than the encoder's window at token boundaries, so nothing is silently truncated.

        One tokenizer call gives every span's count and, for the long ones, the cut points."""
        if not spans:
            return []
        limit = self.encoder.max_tokens - 2
        token_offsets = self.encoder.token_offsets([text[a:b] for a, b in spans])
        specials = self.encoder.tokenizer.num_special_tokens_to_add(pair=False)
        out: list[tuple[int, int]] = []
        for (a, b), offsets in zip(spans, token_offsets):
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
            sentences = [texts[ti][a:b] for ti, a, b in batch]
            enc = self.encoder.encode(sentences, with_offsets=True)
            coverage = self._coverage(sentences)
            rows_per_sentence = self._candidates(enc, t, coverage)
            for i, res in zip(idx, self._rerank(texts, batch, enc, rows_per_sentence, t, redundancy, evidence_words,
                                                coverage)):
                results[i] = res
        return results  # type: ignore[return-value]

    def _candidates(self, enc: Encoded, t: float, coverage: Any = None) -> list[np.ndarray]:
        """Row indices into the skill table to score exactly, per sentence (the candidate stage's answer). With
        lexical evidence a row's exact score needs only reach ``t - lambda * coverage`` (its floor)."""
        floor = None
        if coverage is not None:  # per row (label point): its skill's coverage
            floor = candidate_floor(t, coverage[:, self.skills.owner], self.score_config)
        return self.stage.rows(enc, t, floor)

    def _rerank(
        self,
        texts: Sequence[str],
        units: list[tuple[int, int, int]],
        enc: Encoded,
        rows_per_sentence: list[np.ndarray],
        t: float,
        redundancy: bool,
        evidence_words: int,
        coverage: Any = None,
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
            lexical = coverage[owner, self.skills.owner[rows]] if coverage is not None else None
            kept = self._above(fuse(pairs.scores, lexical, self.score_config), owner, rows, t, n)
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
            matches = [self._match(r, s, coverage[i] if coverage is not None else None) for r, s, _ in kept[i]]
            if matches and evidence_words:
                real = enc.mask[i].tolist()
                alpha = [[w for w, m in zip(next(alpha_rows), real) if m] for _ in matches]  # real tokens only
                self._attach_evidence(text, a, enc, i, [(r, s) for r, s, _ in kept[i]], matches, evidence_words, alpha)
            results.append(SentenceResult(text[a:b], a, b, matches, candidates=counts[i]))
        return results

    def _above(self, scores: Any, owner: Any, rows: Any, t: float, n: int) -> list[list[tuple[int, float, int]]]:
        """Per sentence, the pairs at or above ``t`` as (row, score, pair index), best first. With label
        expansion a skill keeps its best label only (ties: the later row, as :func:`jobskills.scoring.best_label`);
        equal scores keep skill order."""
        import torch

        hit = torch.nonzero(scores >= t).flatten()
        skill_of = self.skills.owner
        best: list[dict[int, tuple[int, float, int]]] = [{} for _ in range(n)]
        for p, i, r, s in zip(hit.tolist(), owner[hit].tolist(), rows[hit].tolist(), scores[hit].tolist()):
            k = int(skill_of[r]) if self.skills.expanded else r
            cur = best[i].get(k)
            if cur is None or s > cur[1] or (s == cur[1] and r > cur[0]):
                best[i][k] = (r, s, p)
        # scores equal to the 6 decimals results show (e.g. two skills sharing a label) keep skill order, whatever
        # the last float bits say: the redundancy filter then keeps the same one of them in every code path
        return [[v for _, v in sorted(b.items(), key=lambda kv: (-round(kv[1][1], 6), kv[0]))] for b in best]

    def _match(self, row: int, score: float, coverage: Any = None) -> SkillMatch:
        """The result record of a kept row; ``coverage``: the sentence's label-word coverage per skill, if any."""
        p = SkillPayload.from_dict(self.skills.payloads[row])
        lexical = round(float(coverage[int(self.skills.owner[row])]), 4) if coverage is not None else 0.0
        return SkillMatch(uri=p.uri, label=p.label, skill_type=p.skill_type, score=round(score, 6),
                          reuse_level=p.reuse_level, matched_label=p.text, lexical=lexical)

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
        """The k best skills for ``query`` by exact score over every skill (ConTeXT plus the lexical evidence the
        index's scorer weighs; no threshold)."""
        import torch

        if not query or not query.strip():
            raise InputError("the query is empty")
        check_unicode(query)
        if k < 1:
            raise InputError("k must be >= 1")
        enc = self.encoder.encode([query.strip()], with_offsets=True)
        by_skill, best_row = self.skills.by_skill(score_all(enc.tokens, enc.mask, self.skills.matrix, self.score_config))
        coverage = self._coverage([query.strip()])
        by_skill = fuse(by_skill, coverage, self.score_config)
        top = torch.topk(by_skill[0], min(k, by_skill.shape[1]))
        kept = [(int(best_row[0, j]), float(s)) for s, j in zip(top.values, top.indices)]
        matches = [self._match(r, s, coverage[0] if coverage is not None else None) for r, s in kept]
        self._attach_evidence(query.strip(), 0, enc, 0, kept, matches, EVIDENCE_WORDS)
        return matches

    # ------------------------------------------------------------------ titles
    TITLE_METHODS = TITLE_METHODS

    def titles(self, query: str, k: int = 10, method: str | None = None) -> list[TitleMatch]:
        """Nearest ESCO occupations for a free-text job title, best title per occupation
        (:meth:`retriever.titles.TitleSearch.search`; ``method``: one of :data:`TITLE_METHODS`)."""
        return self.title_search.search(query, k, method)

    @property
    def title_encoder(self) -> Encoder:
        """The encoder title queries use (the titles index's own model, once titles were asked for)."""
        return self.title_search.encoder

    def _title_version(self) -> tuple[str, dict[str, Any]]:
        return self.title_search.version()

    def _lexical(self, manifest: dict[str, Any]) -> Any:
        return self.title_search.lexical(manifest)
