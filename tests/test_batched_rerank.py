"""The batched rerank (one segmented pass per batch, cosines reused) returns what the per-sentence rerank did:
same skills in the same order, scores to float tolerance, same evidence. The reference below is the
per-sentence path as it stood before, kept here verbatim in substance so the comparison cannot drift."""

from __future__ import annotations

import pytest
import torch

from jobskills.scoring import attention, fuse, redundancy_keep, score_all
from retriever.contract import EVIDENCE_WORDS
from retriever.pipeline import Retriever
from retriever.text import split_sentences
from tests.conftest import house_rows

pytestmark = pytest.mark.integration

_LONG = " ".join(["Experience with python programming, SQL databases and cloud infrastructure"] * 40)  # > 256 tokens


def _reference(r: Retriever, texts: list[str], units: list[tuple[int, int, int]], t: float, redundancy: bool,
               top: int) -> list[list[tuple[str, float, list[tuple[str, int, int, float]]]]]:
    """One sentence at a time: score_all over its candidates, best label, redundancy_keep, attention."""
    out = []
    for ti, a, b in units:
        text = texts[ti]
        enc = r.encoder.encode([text[a:b]], with_offsets=True)
        coverage = r._coverage([text[a:b]])
        rows = r._candidates(enc, t, coverage)[0]
        kept: list[tuple[int, float]] = []
        real = enc.token_rows(0)
        ones = torch.ones(real.shape[0], dtype=torch.bool)
        if len(rows):
            scores = score_all(real.unsqueeze(0), ones.unsqueeze(0), r.skills.matrix[torch.from_numpy(rows)], r.score_config)
            lexical = coverage[:, r.skills.owner[torch.from_numpy(rows)]] if coverage is not None else None
            scores = fuse(scores, lexical, r.score_config)
            if r.skills.expanded:
                by_skill, best_row = r.skills.by_skill(scores, torch.from_numpy(rows))
                kept = [(int(best_row[0, j]), float(by_skill[0, j])) for j in torch.nonzero(by_skill[0] >= t).flatten().tolist()]
            else:
                kept = [(int(rows[j]), float(scores[0, j])) for j in torch.nonzero(scores[0] >= t).flatten().tolist()]
            kept.sort(key=lambda x: -round(x[1], 6))  # ties to the shown precision keep skill order
        if redundancy and len(kept) > 1:
            keep = redundancy_keep(real, ones, r.skills.matrix[torch.tensor([k for k, _ in kept])])
            kept = [k for k, flag in zip(kept, keep.tolist()) if flag]
        res = []
        alpha = attention(real, ones, r.skills.matrix[torch.tensor([k for k, _ in kept])], r.score_config)[0] if kept else None
        for k, (row, score) in enumerate(kept):
            ev: list[tuple[str, int, int, float]] = []
            if top:
                weights: dict[int, float] = {}
                spans: dict[int, list[int]] = {}
                for j, w in enumerate(enc.word_ids[0]):
                    if w is None:
                        continue
                    s, e = enc.offsets[0][j]
                    cur = spans.setdefault(w, [s, e])
                    cur[0], cur[1] = min(cur[0], s), max(cur[1], e)
                    weights[w] = weights.get(w, 0.0) + float(alpha[k, j])
                ev = [(text[a + spans[w][0] : a + spans[w][1]], a + spans[w][0], a + spans[w][1], round(wt, 4))
                      for w, wt in sorted(weights.items(), key=lambda kv: -kv[1])[:top]]
            res.append((r.skills.payloads[row]["uri"], round(score, 6), ev))
        out.append(res)
    return out


def _same(got, want, where: str) -> None:
    """Equal up to float rounding: the same skills; an order swap only between scores within 1e-6. Twins are
    the one exception: two skills that share a label text (label expansion) score identically and are
    redundant with each other, so float rounding alone decides which one the filter keeps; a twin kept in
    place of the other must have its score."""
    assert len(got) == len(want), where
    for gs, ws in zip(got, want):
        only_got = sorted((g for g in gs if g[0] not in {w[0] for w in ws}), key=lambda m: m[1])
        only_want = sorted((w for w in ws if w[0] not in {g[0] for g in gs}), key=lambda m: m[1])
        assert len(only_got) == len(only_want) and all(abs(a[1] - b[1]) < 2e-6 for a, b in zip(only_got, only_want)), where
        twins = {a[0]: b[0] for a, b in zip(only_got, only_want)}
        by_uri = {u: (s, ev) for u, s, ev in ws}
        by_uri.update({g: by_uri[w] for g, w in twins.items()})
        for k, (u, s, ev) in enumerate(gs):
            assert abs(s - by_uri[u][0]) < 2e-6, where
            if ws[k][0] != u:
                assert abs(ws[k][1] - s) < 2e-6, where  # a near-tie may swap
            ref = by_uri[u][1]
            assert len(ev) == len(ref), where
            assert {e[:3] for e in ev} == {e[:3] for e in ref} or all(
                abs(x[3] - y[3]) < 2e-4 for x, y in zip(ev, ref)), where
            for x, y in zip(ev, ref):
                assert abs(x[3] - y[3]) < 2e-4, where


def _flat(results) -> list[list[tuple[str, float, list[tuple[str, int, int, float]]]]]:
    return [[(m.uri, m.score, [(e.text, e.start, e.end, e.weight) for e in m.evidence]) for m in s.skills] for s in results]


def _texts() -> list[str]:
    rows = [row["text"] for row in house_rows()]
    return rows + [
        "Fluent German.",
        "xq zzv 123",  # nothing to find: zero candidates
        "a",
        "We need Python, Python, Python and more Python.",
        _LONG,
        "  Manage a small team of engineers; fluent German and English, SQL.  ",
    ]


@pytest.mark.parametrize("t", [0.3, 0.45])
@pytest.mark.parametrize("mode", ["bound", "exhaustive", "qdrant"])
def test_batched_rerank_equals_per_sentence(edge_index, encoder, mode, t):
    settings, store = edge_index
    r = Retriever(settings, store=store, encoder=encoder, candidates=mode)
    texts = _texts()
    for redundancy, top in ((True, 5), (False, 3), (True, 0)):
        got = _flat(r.extract_sentences(texts, threshold=t, redundancy=redundancy, evidence_words=top))
        want = _reference(r, texts, [(i, 0, len(s)) for i, s in enumerate(texts)], t, redundancy, top)
        _same(got, want, f"{mode} t={t} redundancy={redundancy} top={top}")
    assert any(not res for res in want) and sum(map(len, want)) > 20  # empty and busy sentences both tested


def test_batched_rerank_equals_per_sentence_on_split_text(edge_index, encoder):
    """extract(): sentences cut by the splitter and by the encoder window (_fit_spans) keep their results."""
    settings, store = edge_index
    r = Retriever(settings, store=store, encoder=encoder)
    text = "We are hiring!\n- " + _LONG + "\n- Strong SQL.  Docker; Kubernetes.\n- xq zzv"
    spans = r.split(text)
    assert len(spans) > len(split_sentences(text))  # the long item was cut
    got = _flat(r.extract(text, threshold=0.35))
    want = _reference(r, [text], [(0, a, b) for a, b in spans], 0.35, True, EVIDENCE_WORDS)  # extract's default
    _same(got, want, "split")
    assert sum(map(len, want)) >= 3


def test_batched_rerank_with_label_expansion(tmp_path_factory, encoder, esco, sample_uris):
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.store import open_store

    settings = load_settings({"home": tmp_path_factory.mktemp("exp-home"), "engine": "edge"}, env={})
    store = open_store(settings)
    try:
        build_index(settings, store, encoder, esco=esco, kinds=("skills",), skill_uris=sample_uris[:120], labels="all")
        r = Retriever(settings, store=store, encoder=encoder)
        assert r.skills.expanded
        texts = _texts()
        got = _flat(r.extract_sentences(texts, threshold=0.4))
        want = _reference(r, texts, [(i, 0, len(s)) for i, s in enumerate(texts)], 0.4, True, EVIDENCE_WORDS)  # the default
        _same(got, want, "expanded")
        assert sum(map(len, want)) > 5
    finally:
        store.close()
