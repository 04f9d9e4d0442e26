"""The index contract (jobskills.schema): payloads and manifests round-trip, stay byte-compatible with what
indexes already hold, and older manifests still open."""

from __future__ import annotations

import pytest

from jobskills.errors import IndexMismatchError
from jobskills.esco import ESCO_VERSION
from jobskills.schema import Manifest, SkillPayload, TitlePayload, check_manifest, skill_points, title_points
from jobskills.scoring import SCORER_VERSION
from jobskills.taxonomy import DEFAULT_TAXONOMY
from tests.conftest import EncoderMeta

#: the keys every build wrote before the schema existed, in the order it wrote them
MANIFEST_KEYS = [
    "kind", "version", "model_path", "model_name", "model_fingerprint", "dim", "normalized", "max_tokens", "taxonomy",
    "taxonomy_fingerprint", "esco_version", "esco_fingerprint", "scorer_version", "score_config", "threshold",
    "threshold_source", "count", "limit", "subset", "labels", "model_training", "skills", "created_at",
    "jobskills_version", "engine",
]


def _current(**changes: object) -> dict:
    base = {
        "kind": "titles", "version": "v1", "model_path": "/m", "model_name": "jobskills-minilm",
        "model_fingerprint": "fp-model", "dim": 384, "normalized": True, "max_tokens": 128, "taxonomy": DEFAULT_TAXONOMY,
        "taxonomy_fingerprint": "abc", "esco_version": ESCO_VERSION, "esco_fingerprint": "abc",
        "scorer_version": SCORER_VERSION, "score_config": {"logits": "dot", "temperature": 1.0}, "threshold": 0.5,
        "threshold_source": "packaged default", "count": 7, "limit": 3, "subset": False, "labels": None,
        "model_training": None, "skills": None, "created_at": "2026-01-01T00:00:00+00:00", "jobskills_version": "0.3.0",
        "engine": "edge", "title_schema": 2, "lexical": {"vector": "bm25", "model": "bm25", "modifier": "idf", "bm25": {"k": 1.2}},
    }
    return {**base, **changes}


def test_skill_payload_round_trips_and_keeps_the_stored_layout(esco):
    text, payload = skill_points(esco, limit=1)[0]
    stored = payload.to_dict()
    skill = next(iter(esco.skills.values()))
    assert text == skill.label == stored["text"]
    assert list(stored) == ["uri", "label", "kind", "type", "reuse_level", "level2", "level2_labels", "taxonomy", "text",
                            "alt_labels"]
    # the preferred-label point carries the alternative labels (the lexical evidence's words); other points do not
    assert stored["alt_labels"] == [a.strip() for a in skill.alt_labels if a.strip()] and stored["alt_labels"]
    assert stored["uri"] == skill.uri and stored["type"] == skill.skill_type and stored["kind"] == "skill"
    assert stored["taxonomy"] == DEFAULT_TAXONOMY and isinstance(stored["level2"], list)
    assert SkillPayload.from_dict(stored) == payload
    # label expansion: alternative labels are points of the same skill, the preferred label still shown
    expanded = [p for _, p in skill_points(esco, uris=[skill.uri], labels="all")]
    distinct = list(dict.fromkeys(t.casefold() for t in (skill.label, *skill.alt_labels)))  # this skill repeats its label
    assert [p.text.casefold() for p in expanded] == distinct and len(distinct) > 1
    assert {p.uri for p in expanded} == {skill.uri} and {p.label for p in expanded} == {skill.label}
    assert expanded[0].alt_labels and not any(p.alt_labels for p in expanded[1:])
    assert "alt_labels" not in expanded[1].to_dict()
    # a payload from before label expansion has no "text": the label is what was encoded
    old = {k: v for k, v in stored.items() if k != "text"}
    assert SkillPayload.from_dict(old).text == skill.label


def test_title_payload_round_trips_and_names_the_real_taxonomy(esco):
    points = title_points(esco, limit=30)
    assert points and all(text == p.text for text, p in points)
    for _, p in points:
        stored = p.to_dict()
        assert list(stored) == ["text", "kind", "occupations", "occupation_labels", "isco_groups", "preferred", "taxonomy"]
        assert stored["taxonomy"] == esco.name == DEFAULT_TAXONOMY  # not "esco"
        assert TitlePayload.from_dict(stored) == p
        assert len(p.occupations) == len(p.occupation_labels) == len(p.isco_groups) == len(p.preferred) >= 1
    texts = [p.text.casefold() for _, p in points]
    assert len(texts) == len(set(texts))  # one point per distinct title text
    # an index built before this change says "esco" and may lack the parallel lists
    old = TitlePayload.from_dict({"text": "cook", "occupations": ["u1", "u2"], "taxonomy": "esco"})
    assert old.taxonomy == DEFAULT_TAXONOMY and old.occupation_labels == ("", "") and old.isco_groups == ("", "")


def test_manifest_round_trips_byte_for_byte():
    stored = _current(calibrated_on={"file": "dev.jsonl", "sha256": "ff"}, future_field=[1, 2])
    m = Manifest.from_dict(stored)
    assert m.to_dict() == stored and list(m.to_dict()) == list(stored)
    assert m.extra == {"future_field": [1, 2]} and m.schema_of_titles == 2
    # a skills manifest has no title keys and no calibration until `calibrate` writes one
    skills = {k: v for k, v in _current(kind="skills", labels="preferred", skills=5).items() if k not in ("title_schema", "lexical")}
    assert list(Manifest.from_dict(skills).to_dict()) == MANIFEST_KEYS
    again = Manifest.from_dict(skills).calibrated(0.42, "calibrated on dev.jsonl", {"sha256": "ee"}).to_dict()
    assert again == {**skills, "threshold": 0.42, "threshold_source": "calibrated on dev.jsonl", "calibrated_on": {"sha256": "ee"}}


def test_a_manifest_from_an_older_index_still_loads():
    # 0.1: no taxonomy keys, no threshold source, no labels / model_training / skills, no title schema
    old = {"kind": "titles", "version": "v0", "model_path": "/m", "model_name": "jobskills-minilm",
           "model_fingerprint": "fp-model", "dim": 384, "normalized": True, "esco_version": ESCO_VERSION,
           "esco_fingerprint": "abc", "scorer_version": SCORER_VERSION, "threshold": 0.55, "count": 9}
    m = Manifest.from_dict(old)
    assert m.built_for == DEFAULT_TAXONOMY and m.taxonomy is None
    assert m.labels is None and m.subset is False and m.threshold_source is None and m.schema_of_titles == 1
    assert m.lexical is None and m.extra == {}
    check_manifest(old, EncoderMeta(), DEFAULT_TAXONOMY)
    check_manifest(m, EncoderMeta())
    assert Manifest.from_dict({**old, "taxonomy": "esco"}).built_for == DEFAULT_TAXONOMY


@pytest.mark.parametrize("changes, taxonomy, message", [
    ({"model_fingerprint": "fp-other"}, None, "built with model jobskills-minilm (fingerprint fp-other, /m)"),
    ({"esco_version": "v1.0.9"}, None, f"holds ESCO v1.0.9, this jobskills ships {ESCO_VERSION}"),
    ({"kind": "skills", "taxonomy": "it-skills", "esco_version": None}, DEFAULT_TAXONOMY,
     f"the skills index holds taxonomy 'it-skills', not '{DEFAULT_TAXONOMY}'"),
])
def test_a_mismatch_raises_the_typed_error(changes, taxonomy, message):
    with pytest.raises(IndexMismatchError) as caught:
        check_manifest(Manifest.from_dict(_current(**changes)), EncoderMeta(), taxonomy)
    assert message in str(caught.value)


def test_a_build_writes_the_contract(tmp_path, encoder, esco):
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.store import open_store

    settings = load_settings({"home": tmp_path, "engine": "memory"}, env={})
    with open_store(settings) as store:
        report = build_index(settings, store, encoder, esco=esco, limit=3)
        skills = store.manifest("skills", report.versions["skills"])
        titles = store.manifest("titles", report.versions["titles"])
        assert list(skills) == MANIFEST_KEYS
        assert list(titles) == [*MANIFEST_KEYS, "title_schema", "lexical", "title_examples"]  # the packaged set
        assert Manifest.from_dict(skills).to_dict() == skills and Manifest.from_dict(titles).to_dict() == titles
        check_manifest(skills, encoder, DEFAULT_TAXONOMY)
        payloads = [p for _, p, _ in store.scroll("titles", report.versions["titles"], with_mean=False)]
        assert payloads and {p["taxonomy"] for p in payloads} == {DEFAULT_TAXONOMY}
