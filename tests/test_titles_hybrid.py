"""Hybrid job-title search: the BM25 sparse vector on each title point, lexical + semantic evidence fused
by Qdrant in one query (embedded edge engine and qdrant-client's :memory: mode), and the explanation fields.

The dense model is the tiny random one from conftest: whatever lexical evidence does here, the embedding
cannot have done for it.
"""

from __future__ import annotations

import json

import pytest

from jobskills.errors import IndexMismatchError
from jobskills.lexical import Bm25Encoder, Bm25Settings
from jobskills.store import BM25, TITLE_SCHEMA, Fusion, Source

pytestmark = pytest.mark.integration

N_OCCUPATIONS = 60
ENGINES = ("edge", "memory")


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_path):
    from jobskills.encoder import Encoder

    return Encoder(tiny_model_path)


@pytest.fixture(scope="module")
def homes(tmp_path_factory, tiny_encoder, esco):
    """{engine: (settings, store)}: 10 skills and the titles of the first N_OCCUPATIONS occupations, through
    the real build path, with the random tiny model."""
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.store import open_store

    out = {}
    for engine in ENGINES:
        settings = load_settings({"home": tmp_path_factory.mktemp(f"hybrid-{engine}"), "engine": engine}, env={})
        store = open_store(settings)
        build_index(settings, store, tiny_encoder, esco=esco, kinds=("skills",), skill_uris=list(esco.skills)[:10])
        build_index(settings, store, tiny_encoder, esco=esco, kinds=("titles",), limit=N_OCCUPATIONS)
        out[engine] = (settings, store)
    yield out
    for _, store in out.values():
        store.close()


@pytest.fixture(scope="module")
def retrievers(homes, tiny_encoder):
    from retriever.pipeline import Retriever

    rs = {engine: Retriever(settings, store=store, encoder=tiny_encoder) for engine, (settings, store) in homes.items()}
    yield rs
    for r in rs.values():
        r.close()


def _alt_labels(esco, n=8):
    """(alt label, occupation) of indexed occupations whose words no other indexed title holds all of:
    its BM25 match is unambiguous."""
    occs = list(esco.occupations.values())[:N_OCCUPATIONS]
    lex = Bm25Encoder()
    bags = {}
    for o in occs:
        for t in (o.label, *o.alt_labels):
            bags.setdefault(t.strip().casefold(), set()).add(o.uri)
    words = {t: set(lex.query(t)[0]) for t in bags}
    out = []
    for o in occs:
        for alt in o.alt_labels:
            w = words[alt.strip().casefold()]
            if len(w) < 2 or alt.strip().casefold() == o.label.casefold():
                continue
            holders = {u for t, ws in words.items() if w <= ws for u in bags[t]}
            if holders == {o.uri}:
                out.append((alt.strip(), o))
                break
        if len(out) == n:
            break
    assert len(out) == n
    return out


def _stored_sparse(store, version, pid):
    """The BM25 vector the engine holds for point ``pid``, read back raw."""
    if store.engine == "edge":
        rec = store._shard("titles", version).retrieve([pid], with_payload=True, with_vector=True)[0]
        v = rec.vector[BM25]
    else:
        rec = store.client.retrieve(store._name("titles", version), [pid], with_payload=True, with_vectors=True)[0]
        v = rec.vector[BM25]
    return sorted(zip(v.indices, v.values)), rec.payload["text"]


@pytest.mark.parametrize("engine", ENGINES)
def test_sparse_vector_lands_and_manifest_records_it(homes, engine):
    settings, store = homes[engine]
    version, manifest = store.current_manifest("titles")
    assert manifest["title_schema"] == TITLE_SCHEMA == 2
    lex = manifest["lexical"]
    assert lex["vector"] == BM25 and lex["modifier"] == "idf"
    cfg = Bm25Settings.from_dict(lex["bm25"])
    assert 1.0 <= cfg.avg_len < 10  # fitted to titles, not BM25's passage default of 256
    enc = Bm25Encoder(cfg)
    for pid in (0, 7, manifest["count"] - 1):
        stored, text = _stored_sparse(store, version, pid)
        want = enc.document(text)
        assert stored and [i for i, _ in stored] == sorted(want[0])
        assert [v for _, v in stored] == pytest.approx([v for _, v in sorted(zip(*want))], rel=1e-6)
    # the skills schema is unchanged: no sparse vector, no title keys in its manifest
    _, skills_manifest = store.current_manifest("skills")
    assert "lexical" not in skills_manifest and "title_schema" not in skills_manifest


@pytest.mark.parametrize("method", ["hybrid", "rrf"])
@pytest.mark.parametrize("engine", ENGINES)
def test_fused_query_finds_alt_labels_with_a_random_dense_model(retrievers, esco, engine, method):
    """Exact alternative labels: first, carried by both kinds of evidence, and BM25 brings titles sharing the
    label's words that the random embedding did not rank (evidence ``lexical``). Reordered labels plus a
    word no title holds leave the random embedding nothing to go on: BM25 alone ranks the label's occupation
    first, and the fused list still holds it, carried by lexical evidence."""
    r = retrievers[engine]
    lex = r._lexical(r._title_version()[1])
    cases = _alt_labels(esco)
    lexical_only = 0
    for alt, occ in cases:
        res = r.titles(alt, k=20, method=method)
        assert res[0].occupation_uri == occ.uri and res[0].matched_title.casefold() == alt.casefold()
        assert res[0].evidence == "both" and res[0].lexical_score > 0 and res[0].semantic_score == pytest.approx(1.0, abs=1e-4)
        for m in res:
            if m.evidence == "lexical":
                lexical_only += 1
                assert set(lex.query(alt)[0]) & set(lex.query(m.matched_title)[0])
    assert lexical_only > 0
    for alt, occ in cases:
        query = " ".join(reversed(alt.split())) + " zyxwv"
        first = r.titles(query, k=1, method="lexical")[0]
        assert first.occupation_uri == occ.uri and first.evidence == "lexical"
        assert set(lex.query(alt)[0]) <= set(lex.query(first.matched_title)[0])
        found = {m.occupation_uri: m for m in r.titles(query, k=25, method=method)}
        assert occ.uri in found and found[occ.uri].evidence in ("lexical", "both") and found[occ.uri].lexical_score > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_explanation_fields(retrievers, esco, engine):
    from jobskills.title_examples import load_title_examples, normalise_title

    r = retrievers[engine]
    titles_of, esco_titles_of = {}, {}
    for t in esco.titles:
        titles_of.setdefault(t.occupation_uri, set()).add(t.text.casefold())
        esco_titles_of.setdefault(t.occupation_uri, set()).add(t.text.casefold())
    for example_set in load_title_examples(None):  # the index holds the packaged example titles too
        for title, uri in example_set.pairs:
            titles_of.setdefault(uri, set()).add(normalise_title(title).casefold())
    occ = list(esco.occupations.values())[3]
    word = max(occ.label.split(), key=len)
    res = r.titles(word, k=20, method="hybrid")
    assert res and len({m.occupation_uri for m in res}) == len(res)
    kinds = set()
    lex = r._lexical(r._title_version()[1])
    for m in res:
        o = esco.occupations[m.occupation_uri]
        assert m.label == o.label and m.isco_group == o.isco_group and len(m.isco_group) == 4
        assert m.matched_title.casefold() in titles_of[m.occupation_uri]
        from_esco = m.matched_title.casefold() in esco_titles_of[m.occupation_uri]
        assert m.matched_origin == ("esco" if from_esco else "example")
        assert m.evidence in ("lexical", "semantic", "both")
        kinds.add(m.evidence)
        assert (m.lexical_score is not None) == (m.evidence in ("lexical", "both"))
        assert (m.semantic_score is not None) == (m.evidence in ("semantic", "both"))
        # hybrid scores the occupation over its titles: BM25 evidence comes from one of them, maybe not the matched one
        shares_word = any(set(lex.query(word)[0]) & set(lex.query(t)[0]) for t in titles_of[m.occupation_uri])
        if m.lexical_score is not None:  # BM25 only reaches titles that share a word with the query
            assert shares_word and m.lexical_score > 0
        else:
            assert not shares_word  # every title sharing the word fits in the lexical prefetch here
        d = m.to_dict()
        assert {"occupation_uri", "isco_group", "matched_title", "evidence", "lexical_score", "semantic_score"} <= set(d)
    assert "semantic" in kinds and kinds & {"lexical", "both"}
    # scores are the fused ranking, best first
    assert [m.score for m in res] == sorted((m.score for m in res), reverse=True)
    # the semantic methods say so
    for m in r.titles(word, k=5, method="mean"):
        assert m.evidence == "semantic" and m.lexical_score is None and m.semantic_score == m.score


def test_edge_and_client_agree(homes, retrievers, esco):
    """The same index on the embedded engine and through qdrant-client: each source scores every title the
    same (BM25 with the engine's IDF, cosine), and each fuses its lists by RRF. Titles with equal scores may
    come in another order from each engine (their RRF then differs slightly), so fused lists are checked
    against each engine's own source ranks."""
    occs = list(esco.occupations.values())[:N_OCCUPATIONS]
    for q in (occs[0].label, occs[12].label.split()[-1], occs[30].label + " manager"):
        per_engine = {}
        for engine, r in retrievers.items():
            version, manifest = r._title_version()
            enc = r.title_encoder.encode([q])
            srcs = [Source("lexical", BM25, r._lexical(manifest).query(q), 400),
                    Source("mean", "mean", enc.pooled[0].numpy(), 400)]
            per_engine[engine] = homes[engine][1].query_fused("titles", version, srcs, Fusion("rrf", 60), limit=400)
        a, b = per_engine["edge"], per_engine["memory"]
        for name in ("lexical", "mean"):
            sa = {i: s for i, (_, s) in a.sources[name].items()}
            sb = {i: s for i, (_, s) in b.sources[name].items()}
            assert set(sa) == set(sb) and sa
            assert all(sa[i] == pytest.approx(sb[i], rel=1e-5, abs=1e-6) for i in sa)
        for fused in (a, b):  # each engine's fused score is RRF over its own source ranks
            want = {}
            for lst in fused.sources.values():
                for i, (rank, _) in lst.items():
                    want[i] = want.get(i, 0.0) + 1.0 / (60 + rank - 1)
            assert fused.hits and all(h.score == pytest.approx(want[h.id], abs=1e-6) for h in fused.hits)
    label = occs[0].label  # both engines rank the exact label first in both lists
    assert retrievers["edge"].titles(label, k=3)[0].occupation_uri == retrievers["memory"].titles(label, k=3)[0].occupation_uri == occs[0].uri


def test_stopwords_only_query_falls_back_to_semantic(retrievers):
    res = retrievers["edge"].titles("the and of", k=5, method="hybrid")
    assert res and all(m.evidence == "semantic" and m.lexical_score is None for m in res)


def test_store_fused_query_reports_each_source(homes):
    """Store level: the fused list and each source's own list come back from one batched call."""
    _, store = homes["edge"]
    version, manifest = store.current_manifest("titles")
    lex = Bm25Encoder(Bm25Settings.from_dict(manifest["lexical"]["bm25"]))
    _, text = _stored_sparse(store, version, 5)
    fused = store.query_fused("titles", version, [Source("lexical", BM25, lex.query(text), 10)], Fusion("rrf", 60), limit=10)
    assert set(fused.sources) == {"lexical"} and 5 in fused.sources["lexical"]
    assert [h.id for h in fused.hits] == [pid for pid, _ in sorted(fused.sources["lexical"].items(), key=lambda kv: kv[1][0])]
    assert fused.hits[0].payload and "occupations" in fused.hits[0].payload


def test_old_titles_index_needs_a_rebuild(tmp_path, tiny_encoder, esco):
    """A titles index from before the BM25 vector (schema 1) answers mean/maxsim, and refuses hybrid with
    the command that fixes it."""
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.store import open_store
    from retriever.pipeline import Retriever

    settings = load_settings({"home": tmp_path, "engine": "edge"}, env={})
    with open_store(settings) as store:
        build_index(settings, store, tiny_encoder, esco=esco, kinds=("skills",), skill_uris=list(esco.skills)[:5])
        build_index(settings, store, tiny_encoder, esco=esco, kinds=("titles",), limit=5)
        version = store.current("titles")
        path = store._dir("titles", version) / "manifest.json"
    m = json.loads(path.read_text())
    del m["title_schema"], m["lexical"]
    path.write_text(json.dumps(m))
    with Retriever(settings, encoder=tiny_encoder) as r:
        assert r.titles("nurse", k=3, method="mean")
        with pytest.raises(IndexMismatchError, match=r"jobskills index --only titles"):
            r.titles("nurse", k=3, method="hybrid")
        with pytest.raises(IndexMismatchError, match="no BM25 vector"):
            r.titles("nurse", k=3)  # the default is hybrid


def test_cli_titles_explains(homes, tiny_model_path):
    from typer.testing import CliRunner

    from jobskills.cli import app

    settings, _ = homes["edge"]
    runner = CliRunner()
    res = runner.invoke(app, ["titles", "nurse", "--home", str(settings.home), "--model", tiny_model_path, "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["method"] == "hybrid" and len(data["occupations"]) == 3
    assert all(o["evidence"] in ("lexical", "semantic", "both") and o["occupation_uri"].startswith("http") for o in data["occupations"])
    res = runner.invoke(app, ["titles", "nurse", "--home", str(settings.home), "--model", tiny_model_path, "-k", "3"])
    assert res.exit_code == 0 and "ISCO" in res.output and "via" in res.output
    assert any(w in res.output for w in ("; lexical", "; both", "; semantic"))


def test_occupation_scores_golden():
    """hybrid's occupation score by hand: a soft maximum (tau) over the occupation's cosines, a title missing from
    the semantic list counted at the list's lowest cosine, plus lexical_weight * its best BM25 / the answer's best."""
    import math

    from retriever.titles import OccupationFusion, occupation_scores

    fusion = OccupationFusion(prefetch=3, temperature=0.1, lexical_weight=0.2)
    titles = [
        (("a",), 0.9, 4.0),  # a: two titles, one with BM25
        (("a",), 0.7, None),
        (("b", "c"), 0.8, None),  # one title shared by b and c
        (("c",), None, 8.0),  # lexical only: counts at the floor 0.6
    ]
    got = occupation_scores(titles, fusion, cos_floor=0.6)
    soft = lambda xs: max(xs) + 0.1 * math.log(sum(math.exp((x - max(xs)) / 0.1) for x in xs))  # noqa: E731
    assert got["a"][0] == pytest.approx(soft([0.9, 0.7]) + 0.2 * 4.0 / 8.0, abs=1e-12)
    assert got["a"][1:] == (0, 0.9, 4.0)
    assert got["b"] == pytest.approx((0.8, 2, 0.8, None))
    assert got["c"][0] == pytest.approx(soft([0.8, 0.6]) + 0.2, abs=1e-12) and got["c"][1:] == (2, 0.8, 8.0)
    assert soft([0.9, 0.7]) == pytest.approx(0.9 + 0.1 * math.log(1 + math.exp(-2)), abs=1e-12)
    # a title seen only by BM25 is the match when the occupation has no semantic one; no BM25 at all adds nothing
    only = occupation_scores([(("d",), None, 2.0), (("e",), 0.5, None)], fusion, cos_floor=0.4)
    assert only["d"][1] == 0 and only["d"][0] == pytest.approx(0.4 + 0.2) and only["e"][0] == pytest.approx(0.5)
    assert occupation_scores([(("f",), 0.3, None)], fusion, cos_floor=-1.0)["f"][0] == pytest.approx(0.3)
