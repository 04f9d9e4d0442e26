"""Issue 17: the threshold's one resolver. One test walks the whole precedence, from the call's argument down
to the fallback, and the build-time chain that fixes the manifest's value."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jobskills.config import load_settings
from jobskills.modelconfig import ModelConfig
from jobskills.threshold import FALLBACK_THRESHOLD, SWEEP, index_threshold, resolve_threshold, sweep_values


def test_the_whole_precedence(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"threshold": 0.61}))
    manifest = {"threshold": 0.47, "threshold_source": "calibration /h/calibration/x.json"}
    env = {"JOBSKILLS_HOME": str(tmp_path), "JOBSKILLS_THRESHOLD": "0.55"}
    cli = load_settings({"threshold": 0.7}, env=env)
    from_env = load_settings({}, env=env)
    from_file = load_settings({}, env={"JOBSKILLS_HOME": str(tmp_path)})
    (tmp_path / "config.json").unlink()
    nothing = load_settings({}, env={"JOBSKILLS_HOME": str(tmp_path)})

    steps = [
        (resolve_threshold(0.33, cli, manifest), 0.33, "argument"),
        (resolve_threshold(None, cli, manifest), 0.7, "command line"),
        (resolve_threshold(None, from_env, manifest), 0.55, "env JOBSKILLS_THRESHOLD"),
        (resolve_threshold(None, from_file, manifest), 0.61, f"config file {tmp_path / 'config.json'}"),
        (resolve_threshold(None, nothing, manifest), 0.47, "index manifest (calibration /h/calibration/x.json)"),
        (resolve_threshold(None, nothing, {}), FALLBACK_THRESHOLD, "fallback"),
        (resolve_threshold(None, None, None), FALLBACK_THRESHOLD, "fallback"),
    ]
    for got, value, source in steps:
        assert (got.value, got.source) == (value, source)
    # build time: index --threshold, else the model's config chain (calibration, model folder, packaged, fallback)
    cfg = ModelConfig(threshold=0.52, threshold_source="model config /m/jobskills_config.json")
    assert index_threshold(0.4, cfg) == type(index_threshold(0.4, cfg))(0.4, "command line")
    assert (index_threshold(None, cfg).value, index_threshold(None, cfg).source) == (0.52, "model config /m/jobskills_config.json")


def test_the_sweep_is_defined_once():
    values = sweep_values()
    assert values[0] == SWEEP[0] and values[-1] == SWEEP[1] and len(values) == 71
    assert sweep_values(0.3, 0.4, 0.05) == [0.3, 0.35, 0.4]
    with pytest.raises(ValueError):
        sweep_values(0.5, 0.4)


def test_results_say_where_the_threshold_came_from(edge_index, encoder):
    from retriever.pipeline import Retriever

    settings, store = edge_index
    r = Retriever(settings, store=store, encoder=encoder)
    manifest = r.skills.manifest
    assert r.provenance()["threshold"] == manifest["threshold"]
    assert r.provenance()["threshold_source"] == f"index manifest ({manifest['threshold_source']})"
    cli = dataclasses.replace(settings, threshold=0.3, sources={"threshold": "command line"})
    r2 = Retriever(cli, store=store, encoder=encoder)
    assert (r2.provenance()["threshold"], r2.provenance()["threshold_source"]) == (0.3, "command line")
    # the value really is the one used: a lower threshold keeps at least as many skills
    text = "We need you to manage musical staff and hire musicians."
    assert sum(map(len, (s.skills for s in r2.extract(text)))) >= sum(map(len, (s.skills for s in r.extract(text, threshold=0.9))))
