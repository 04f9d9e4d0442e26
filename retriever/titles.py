"""Job-title search: the ESCO occupations nearest a free-text job title, best title point per occupation.

It reads the titles version the :class:`retriever.pipeline.Retriever` pinned beside its skills version, and
encodes with its own model when the titles index was built with one (the packaged title encoder, or one from
``jobskills train-titles``). ``hybrid`` (the default) asks Qdrant for BM25 and pooled-cosine evidence in one
query and scores each occupation over all of its titles that came back (:data:`OCCUPATION_FUSION`); ``rrf``
is Qdrant's own reciprocal-rank fusion of the same two lists, title by title (:data:`HYBRID`); ``mean``,
``maxsim`` and ``lexical`` use one kind of evidence each.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobskills.encoder import Encoder
from jobskills.errors import IndexMismatchError, IndexNotFoundError, InputError
from jobskills.schema import Manifest, TitlePayload, check_manifest
from jobskills.store import BM25, MEAN, TITLE_SCHEMA, TOKENS, Fusion, Hit, Source
from retriever.contract import check_unicode
from retriever.text import require_words

if TYPE_CHECKING:
    from jobskills.config import Settings
    from jobskills.lexical import Bm25Encoder
    from jobskills.store import Store

__all__ = ["TitleMatch", "TitleFusion", "OccupationFusion", "TitleSearch", "TITLE_METHODS", "DEFAULT_TITLE_METHOD",
           "HYBRID", "OCCUPATION_FUSION", "occupation_scores"]


@dataclass(frozen=True)
class TitleFusion:
    """What ``titles(method="rrf")`` asks Qdrant: a prefetch of ``prefetch`` points per source
    (``lexical`` = BM25, ``mean`` = pooled cosine, ``maxsim`` = late interaction), fused by ``fusion``. A
    source named twice counts twice in RRF (sum of 1 / (k + rank) over the prefetches): a weight that every
    Qdrant with parametrised RRF (>= 1.16) applies, unlike RRF ``weights`` (>= 1.17, and they scale ranks)."""

    sources: tuple[str, ...]
    fusion: Fusion
    prefetch: int = 100


@dataclass(frozen=True)
class OccupationFusion:
    """What ``titles(method="hybrid")`` does: one Qdrant query with a BM25 prefetch and a pooled-cosine prefetch
    of ``prefetch`` title points each, then a score per *occupation* over every title of it that came back
    (:func:`occupation_scores`)::

        score = tau * log(sum_i exp(cos_i / tau)) + lexical_weight * bm25 / best_bm25

    The first term is a soft maximum over the occupation's titles (``temperature`` tau): an occupation that
    several of its titles support ranks above one with a single lucky title, which a plain best-title rank
    cannot see. The second adds its best BM25 score, scaled by the best BM25 score of the answer, so the query's
    words count whatever the size of their IDF."""

    prefetch: int = 200
    temperature: float = 0.05
    lexical_weight: float = 0.15


#: Job-title methods; the default was chosen on the JobBERT development titles (benchmarks/README.md).
TITLE_METHODS = ("hybrid", "rrf", "mean", "maxsim", "lexical")
DEFAULT_TITLE_METHOD = "hybrid"
#: ``rrf`` (the default before occupation-level fusion), chosen on 2,000 JobBERT development titles: semantic
#: evidence counts twice, k=20.
HYBRID = TitleFusion(("lexical", "mean", "mean"), Fusion("rrf", k=20))
#: ``hybrid``: chosen on 2,000 JobBERT development titles (benchmarks/README.md, "Job titles").
OCCUPATION_FUSION = OccupationFusion()


def occupation_scores(titles: list[tuple[tuple[str, ...], "float | None", "float | None"]], fusion: OccupationFusion,
                      cos_floor: float) -> dict[str, tuple[float, int, "float | None", "float | None"]]:
    """Per occupation: (score, index of its best title, best cosine, best BM25) from the title points of one
    answer, each given as (its occupations, cosine or None, BM25 score or None).

    A title the semantic prefetch did not return has a cosine of at most the prefetch's lowest one
    (``cos_floor``), and counts with that value: an upper bound, so lexical-only titles are not ignored.
    The soft maximum is computed stably (the best cosine of the occupation factored out).
    """
    best_bm25 = max((b for _, _, b in titles if b is not None), default=0.0)
    grouped: dict[str, list[int]] = {}
    for i, (occs, _, _) in enumerate(titles):
        for occ in occs:
            grouped.setdefault(occ, []).append(i)
    tau, out = fusion.temperature, {}
    for occ, idx in grouped.items():
        cos = [titles[i][1] if titles[i][1] is not None else cos_floor for i in idx]
        top = max(cos)
        soft = top + tau * math.log(sum(math.exp((c - top) / tau) for c in cos))
        bm = [titles[i][2] for i in idx if titles[i][2] is not None]
        lexical = fusion.lexical_weight * max(bm) / best_bm25 if bm and best_bm25 > 0 else 0.0
        sem = [(titles[i][1], i) for i in idx if titles[i][1] is not None]
        pick = max(sem)[1] if sem else max((titles[i][2] or 0.0, i) for i in idx)[1]
        out[occ] = (soft + lexical, pick, max(sem)[0] if sem else None, max(bm) if bm else None)
    return out


@dataclass
class TitleMatch:
    """An ESCO occupation near a job title, and why: the ESCO title that matched (``matched_title``: the
    occupation's best-ranked title point; for ``hybrid`` its title nearest the query, else its best BM25 one)
    and the evidence that carried it: ``lexical`` (BM25 ranked a title of it among its best: it shares words
    with the query), ``semantic`` (the embedding did), or ``both``. ``lexical_score`` is the best BM25 score
    (IDF-weighted), ``semantic_score`` the best cosine with the query (``maxsim``: MAX_SIM per query token);
    each is None where that evidence did not reach the occupation. ``matched_origin`` says whether the matched
    title is one of ESCO's titles of the occupation (``esco``) or an example vacancy title labelled with it
    (``example``, see :mod:`jobskills.title_examples`). ``score`` is the method's ranking score:
    for ``hybrid`` the occupation score of :class:`OccupationFusion` (about a cosine, plus at most
    ``lexical_weight``), for ``rrf`` the fused rank score, comparable only within one answer."""

    occupation_uri: str
    label: str
    isco_group: str
    score: float
    matched_title: str
    evidence: str = "semantic"
    lexical_score: float | None = None
    semantic_score: float | None = None
    matched_origin: str = "esco"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: one scored title point: (score, payload, evidence, BM25 score, semantic score)
_Scored = tuple[float, dict[str, Any], str, "float | None", "float | None"]


class TitleSearch:
    """Title search over one pinned titles version (``pinned``: ``(version, manifest)``, or None when the
    store has no titles index). The version is checked and its encoder chosen on first use, so a reader that
    never asks for titles never loads a title model."""

    def __init__(self, settings: "Settings", store: "Store", pinned: tuple[str, dict[str, Any]] | None,
                 skills_encoder: Encoder) -> None:
        self.settings = settings
        self.store = store
        self.pinned = pinned
        self.skills_encoder = skills_encoder
        #: the encoder title queries use: the skills model until :meth:`version` chooses
        self.encoder: Encoder = skills_encoder
        self._opened: tuple[str, dict[str, Any]] | None = None
        self._bm25: tuple[str | None, "Bm25Encoder"] | None = None

    def version(self) -> tuple[str, dict[str, Any]]:
        """The pinned (version, manifest), checked against its encoder on first use."""
        if self._opened is None:
            if self.pinned is None:
                raise IndexNotFoundError(f"no job-title index in {self.store.location}; run `jobskills index`")
            self.encoder = self._encoder_for(Manifest.from_dict(self.pinned[1]))
            check_manifest(self.pinned[1], self.encoder)
            self._opened = self.pinned
        return self._opened

    def _encoder_for(self, manifest: Manifest) -> Encoder:
        """The titles index may be built with its own model (by default the packaged title model): use the one
        set in ``title_model``, else the one the index names when it is not the skills model, else the skills
        model."""
        wanted = self.settings.title_model_path if self.settings.title_model else None
        if not wanted and manifest.model_fingerprint != self.skills_encoder.fingerprint:
            path = manifest.model_path
            wanted = path if path and Path(path).is_dir() else None
        if not wanted or Path(wanted).resolve() == Path(self.skills_encoder.path).resolve():
            return self.skills_encoder
        return Encoder(wanted, device=self.settings.device)

    def search(self, query: str, k: int = 10, method: str | None = None) -> list[TitleMatch]:
        """Nearest ESCO occupations for a free-text job title, best title per occupation.

        ``hybrid`` (the default, :data:`DEFAULT_TITLE_METHOD`): lexical (BM25 on the title words) and semantic
        (pooled cosine) evidence from one Qdrant query, scored per occupation over all its titles that came back
        (:class:`OccupationFusion`); ``rrf``: the same two lists fused title by title by Qdrant's RRF
        (:data:`HYBRID`), best title per occupation; ``mean``: cosine of pooled embeddings; ``maxsim``: late
        interaction over title tokens (MAX_SIM / number of query tokens, in [-1, 1]); ``lexical``: BM25 alone.
        ``hybrid``, ``rrf`` and ``lexical`` need a titles index with the BM25 vector (schema 2:
        ``jobskills index --only titles`` builds it).
        """
        method = method or DEFAULT_TITLE_METHOD
        if not query or not query.strip():
            raise InputError("the job title is empty")
        check_unicode(query)
        require_words(query, "the job title")  # emoji alone once got confident hits, while extract refused them
        if k < 1:
            raise InputError("k must be >= 1")
        if method not in TITLE_METHODS:
            raise InputError(f"unknown title method {method!r}; choose one of {', '.join(TITLE_METHODS)}")
        version, manifest = self.version()
        query = query.strip()
        limit = max(50, 10 * k)
        if method == "hybrid":
            return self._occupations(query, version, manifest, k)
        if method in ("maxsim", "mean"):
            scored = self._dense(query, version, method, limit)
        else:
            scored = self._fused(query, version, manifest, method, limit)
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
                        matched_origin=p.origin(j),
                    )
        return sorted(best.values(), key=lambda m: -m.score)[:k]

    def _dense(self, query: str, version: str, method: str, limit: int) -> list[_Scored]:
        """``mean`` / ``maxsim``: one kind of semantic evidence, asked of the store directly."""
        enc = self.encoder.encode([query])
        if method == "maxsim":
            n_tok = int(enc.mask[0].sum())
            hits = self.store.query_maxsim("titles", version, enc.token_rows(0).cpu().numpy(), limit=limit)
            hits = [Hit(h.id, h.score / n_tok, h.payload) for h in hits]
        else:
            hits = self.store.query_mean("titles", version, enc.pooled.cpu().numpy(), limit=limit, with_payload=True)[0]
        return [(h.score, h.payload or {}, "semantic", None, h.score) for h in hits]

    def lexical(self, manifest: dict[str, Any]) -> "Bm25Encoder":
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
        if self._bm25 is None or self._bm25[0] != m.version:
            from jobskills.lexical import Bm25Encoder, Bm25Settings

            self._bm25 = (m.version, Bm25Encoder(Bm25Settings.from_dict(lex.get("bm25"))))
        return self._bm25[1]

    def _occupations(self, query: str, version: str, manifest: dict[str, Any], k: int) -> list[TitleMatch]:
        """``hybrid``: one Qdrant query (BM25 and pooled-cosine prefetches, batched with each alone so every point
        carries its own scores), then :func:`occupation_scores` over the union of the two lists."""
        spec = OCCUPATION_FUSION
        prefetch = max(spec.prefetch, 2 * k)
        words = self.lexical(manifest).query(query)
        enc = self.encoder.encode([query])
        sources = [Source("mean", MEAN, enc.pooled[0].cpu().numpy(), prefetch)]
        if words[0]:  # a query of stopwords alone has no lexical evidence
            sources.insert(0, Source("lexical", BM25, words, prefetch))
        fused = self.store.query_fused("titles", version, sources, Fusion("rrf", HYBRID.fusion.k), 2 * prefetch)
        lex, sem = fused.sources.get("lexical", {}), fused.sources.get("mean", {})
        # a full semantic list bounds the cosine of every title it left out by its lowest one
        cos_floor = min((v[1] for v in sem.values()), default=-1.0) if len(sem) >= prefetch else -1.0
        payloads = [TitlePayload.from_dict(h.payload or {}) for h in fused.hits]
        titles = [(p.occupations, sem[h.id][1] if h.id in sem else None, lex[h.id][1] if h.id in lex else None)
                  for h, p in zip(fused.hits, payloads)]
        scores = occupation_scores(titles, spec, cos_floor)
        out = []
        for occ, (score, i, cos, bm) in sorted(scores.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]:
            p = payloads[i]
            j = p.occupations.index(occ)
            in_lex = bm is not None
            in_sem = cos is not None
            out.append(TitleMatch(
                occupation_uri=occ, label=p.occupation_labels[j], isco_group=p.isco_groups[j], score=round(score, 6),
                matched_title=p.text, evidence="both" if in_lex and in_sem else ("lexical" if in_lex else "semantic"),
                lexical_score=None if bm is None else round(float(bm), 6),
                semantic_score=None if cos is None else round(float(cos), 6), matched_origin=p.origin(j),
            ))
        return out

    def _fused(self, query: str, version: str, manifest: dict[str, Any], method: str, limit: int) -> list[_Scored]:
        """``lexical`` / ``rrf`` in one fused Qdrant query: (score, payload, evidence, BM25, cosine) per hit."""
        words = self.lexical(manifest).query(query)
        spec = HYBRID if method == "rrf" else TitleFusion(("lexical",), Fusion("rrf", HYBRID.fusion.k), HYBRID.prefetch)
        prefetch = max(spec.prefetch, limit // 5)  # k=100 (the evaluation depth) asks 200 per source
        sources = []
        enc = None
        for name in spec.sources:
            if name == "lexical":
                if words[0]:  # a query of stopwords alone has no lexical evidence
                    sources.append(Source("lexical", BM25, words, prefetch))
                continue
            if enc is None:
                enc = self.encoder.encode([query])
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
        out: list[_Scored] = []
        for h in fused.hits:
            in_lex, in_sem = h.id in lex, any(h.id in fused.sources[n] for n in fused.sources if n != "lexical")
            evidence = "both" if in_lex and in_sem else ("lexical" if in_lex else "semantic")
            out.append((h.score, h.payload or {}, evidence, lex[h.id][1] if in_lex else None,
                        sem[h.id][1] / n_tok if h.id in sem else None))
        return out
