"""Example job titles (jobskills.title_examples): labelled vacancy titles as extra title points.

What is checked: the setting's grammar, the packaged set and bad files, how examples join ESCO's title points
(origins, case-insensitive merge, ``--limit``), and, through the real build path on the embedded edge engine,
that a query equal to an example title finds the example's occupation and says the match was an example, that
the manifest records the set, and that ``eval`` flags benchmark titles that are example titles.
"""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from jobskills.config import Settings
from jobskills.errors import ConfigError, InputError
from jobskills.schema import TitlePayload, title_points
from jobskills.title_examples import (
    DEFAULT_TITLE_EXAMPLES, PACKAGED_EXAMPLES, ExampleSet, example_names, load_title_examples,
)

#: a made-up vacancy title that is no ESCO title
ODD_TITLE = "Zorblax Night Shift Crew (Ipoh)"


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_setting_names_sets():
    assert example_names(None) == DEFAULT_TITLE_EXAMPLES == ("jobbert-validation",)
    assert example_names("none") == ()
    assert example_names(" jobbert-validation , /x/my.jsonl,/x/my.jsonl") == ("jobbert-validation", "/x/my.jsonl")
    with pytest.raises(InputError, match="cannot be combined"):
        example_names("none,jobbert-validation")
    with pytest.raises(InputError, match="empty"):
        example_names(" , ")
    with pytest.raises(ConfigError, match="cannot be combined"):
        Settings(title_examples="jobbert-validation,none")


def test_the_packaged_set_loads_and_keeps_out_the_evaluated_sample(esco):
    from jobskills.evaluation import even_sample, load_title_bench

    (packaged,) = load_title_examples(None, esco.occupations)
    path = PACKAGED_EXAMPLES["jobbert-validation"]
    assert packaged.name == "jobbert-validation" and packaged.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(packaged.pairs) > 10_000 and all(o in esco.occupations for _, o in packaged.pairs)
    bench = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared/data/bench/jobnorm_jobbert_validation.jsonl"
    if bench.exists():  # CI has ../shared beside the clone; the file's evaluated sample is not in the set
        rows = load_title_bench(bench)
        held = {(r.title, r.occupation) for r in even_sample(rows, 2000)}
        assert len(packaged.pairs) == len(rows) - 2000 and not held & set(packaged.pairs)


def test_bad_example_files_are_clear_errors(tmp_path, esco):
    with pytest.raises(InputError, match="no such file or packaged set"):
        load_title_examples(str(tmp_path / "missing.jsonl"), esco.occupations)
    bad = _write(tmp_path / "bad.jsonl", [{"title": "cook", "occupation": "http://example.org/none"}])
    with pytest.raises(InputError, match=r"bad\.jsonl:1: unknown occupation URI"):
        load_title_examples(str(bad), esco.occupations)
    gz = tmp_path / "ok.jsonl.gz"
    occ = next(iter(esco.occupations))
    gz.write_bytes(gzip.compress(json.dumps({"title": "Cook", "occupation": occ}).encode() + b"\n"))
    (loaded,) = load_title_examples(str(gz), esco.occupations)
    assert loaded.pairs == (("Cook", occ),) and loaded.to_dict()["lines"] == 1
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gz.read_bytes()[:-6])
    with pytest.raises(InputError, match="cannot read"):
        load_title_examples(str(broken), esco.occupations)


def test_examples_join_the_title_points(esco):
    occs = list(esco.occupations.values())[:5]
    a, b = occs[0], occs[1]
    outside = list(esco.occupations.values())[-1]
    examples = [ExampleSet("t", __import__("pathlib").Path("t"), "0", (
        (b.label.upper(), a.uri),           # another occupation's ESCO title: joins that point
        (f"  {a.label} ", a.uri),           # a's own title again: adds nothing
        (ODD_TITLE, b.uri),                  # a new text: a new point
        (ODD_TITLE.lower(), b.uri),          # the same text in another case: nothing more
        ("  Night   Baker ", outside.uri),   # an occupation outside --limit: left out
    ))]
    plain = title_points(esco, limit=5)
    points = title_points(esco, limit=5, examples=examples)
    by_text = {t.casefold(): p for t, p in points}
    assert len(points) == len(plain) + 1
    joined = by_text[b.label.casefold()]
    assert joined.occupations == (b.uri, a.uri) and joined.origins == ("esco", "example")
    assert joined.preferred == (True, False) and joined.origin(1) == "example"
    assert by_text[a.label.casefold()] == dict((t.casefold(), p) for t, p in plain)[a.label.casefold()]
    new = by_text[ODD_TITLE.casefold()]
    assert new.text == ODD_TITLE and new.occupations == (b.uri,) and new.origins == ("example",)
    assert "night baker" not in by_text
    # stored payloads: origins only where an example is involved; they round-trip
    assert "origins" not in by_text[a.label.casefold()].to_dict()
    assert TitlePayload.from_dict(joined.to_dict()) == joined
    assert TitlePayload.from_dict({"text": "x", "occupations": ["u"]}).origin(0) == "esco"


@pytest.mark.integration
def test_an_example_title_is_found_and_said_to_be_one(tmp_path, encoder, esco):
    """Real MiniLM, real edge engine: the titles index with a user's example file."""
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.schema import Manifest
    from jobskills.store import open_store
    from jobskills.evaluation import TitleExample
    from retriever.evaluate import evaluate_titles, example_titles
    from retriever.pipeline import Retriever

    occs = list(esco.occupations.values())[:40]
    target = occs[7]
    path = _write(tmp_path / "mine.jsonl", [{"title": ODD_TITLE, "occupation": target.uri}])
    settings = load_settings({"home": tmp_path / "home", "engine": "edge", "title_examples": str(path)}, env={})
    with open_store(settings) as store:
        build_index(settings, store, encoder, esco=esco, kinds=("skills",), skill_uris=list(esco.skills)[:5])
        report = build_index(settings, store, encoder, esco=esco, kinds=("titles",), limit=40)
        manifest = Manifest.from_dict(store.manifest("titles", report.versions["titles"]))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert manifest.title_examples == {"sets": [{"name": str(path.resolve()), "sha256": digest, "lines": 1}], "links": 1}
        with Retriever(settings, store=store, encoder=encoder) as r:
            for method in ("hybrid", "mean", "lexical"):
                best = r.titles(ODD_TITLE.lower(), k=3, method=method)[0]
                assert (best.occupation_uri, best.matched_title, best.matched_origin) == (target.uri, ODD_TITLE, "example")
            other = r.titles(occs[3].label, k=1)[0]
            assert other.occupation_uri == occs[3].uri and other.matched_origin == "esco"
            bench = [TitleExample(ODD_TITLE.upper(), target.uri, 1), TitleExample(occs[3].label, occs[3].uri, 2)]
            assert example_titles(r, bench) == [True, False]
            report = evaluate_titles(r, bench)
            assert report["example_titles"] == 1 and report["without_example_titles"]["titles"] == 1
            assert report["without_example_titles"]["mrr"] == 1.0  # the ESCO label finds its occupation
    # without examples the manifest says nothing of them and the title is unknown to the index
    settings = load_settings({"home": tmp_path / "home2", "engine": "edge", "title_examples": "none"}, env={})
    with open_store(settings) as store:
        report = build_index(settings, store, encoder, esco=esco, kinds=("titles",), limit=40)
        stored = store.manifest("titles", report.versions["titles"])
        assert "title_examples" not in stored
