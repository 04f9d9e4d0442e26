from __future__ import annotations

from pathlib import Path

import pytest

from jobskills.config import Settings, load_settings
from jobskills.errors import ConfigError
from jobskills.esco import ESCO_VERSION


def test_packaged_esco_counts(esco):
    assert esco.version == ESCO_VERSION == "v1.1.0"
    assert len(esco.skills) == 13_891
    assert len(esco.occupations) == 3_008
    assert all(s.label == s.label.strip() and s.label for s in esco.skills.values())
    assert sum(1 for s in esco.skills.values() if s.skill_type == "knowledge") == 3_057
    # every skill sits under at least one Level-2 group; 129 distinct groups are used
    assert all(s.level2 for s in esco.skills.values())
    assert len(esco.level2_groups) == 129


def test_titles_cover_preferred_and_alternative_labels(esco):
    occ = next(o for o in esco.occupations.values() if len(o.alt_labels) > 3)
    texts = {t.text for t in esco.titles if t.occupation_uri == occ.uri}
    assert occ.label in texts and set(occ.alt_labels) <= texts
    assert sum(t.preferred for t in esco.titles) == 3_008
    assert all(o.isco_group.isdigit() for o in esco.occupations.values())


def test_relations_point_to_known_concepts(esco):
    rel = esco.relations
    assert len(rel) == 123_852
    assert {r.relation_type for r in rel} == {"essential", "optional"}
    assert all(r.skill_uri in esco.skills for r in rel[:2000])


def test_settings_precedence(tmp_path: Path):
    (tmp_path / "config.json").write_text('{"batch_size": 8, "engine": "local", "threshold": 0.3}')
    env = {"JOBSKILLS_HOME": str(tmp_path), "JOBSKILLS_BATCH_SIZE": "16"}
    s = load_settings({"threshold": 0.7}, env=env)
    assert s.home == tmp_path
    assert s.batch_size == 16  # env beats file
    assert s.engine == "local"  # file beats default
    assert s.threshold == 0.7  # CLI beats all
    assert s.sources["threshold"] == "command line" and s.sources["batch_size"].startswith("env")
    assert s.index_dir == tmp_path / "index"
    assert load_settings({}, env={**env, "QDRANT_URL": "http://q:6333"}).qdrant_url == "http://q:6333"


@pytest.mark.parametrize(
    "env",
    [{"JOBSKILLS_ENGINE": "mongo"}, {"JOBSKILLS_BATCH_SIZE": "lots"}, {"JOBSKILLS_THRESHOLD": "7"}],
)
def test_bad_settings_are_config_errors(env, tmp_path):
    with pytest.raises(ConfigError):
        load_settings({}, env={"JOBSKILLS_HOME": str(tmp_path), **env})


def test_bad_config_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json"):
        load_settings({}, env={"JOBSKILLS_HOME": str(tmp_path)})


def test_settings_frozen_roundtrip():
    s = Settings(engine="memory", threshold=0.4)
    with pytest.raises(Exception):
        s.engine = "edge"  # type: ignore[misc]
    assert Settings.from_dict({k: v for k, v in s.to_dict().items()}) == s
