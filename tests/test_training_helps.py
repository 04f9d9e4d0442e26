"""Training helps, on runs small enough for CI: the weights move, the loss falls and dev RP@5 rises; the best
checkpoint is the one kept; and a run whose dev RP@5 fell leaves the live index alone."""

from __future__ import annotations

import json
import random
from functools import cached_property
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from jobskills.config import load_settings
from jobskills.esco import Esco

pytestmark = pytest.mark.integration


class _Slice(Esco):
    """ESCO restricted to some skills: the evaluator then ranks a few hundred skills, not 13,891."""

    def __init__(self, base: Esco, uris: list[str]) -> None:
        super().__init__()
        self._keep = {u: base.skills[u] for u in uris}

    @cached_property
    def skills(self):  # type: ignore[override]
        return self._keep


@pytest.fixture(scope="module")
def alt_label_task(tmp_path_factory, esco):
    """400 skills with at least three alternative labels. Dev: one held-out alternative label per skill for 100
    of them, inside an ad sentence; training: the other alternative labels of all 400 (no dev text is trained on)."""
    rng = random.Random(0)
    uris = rng.sample([u for u, s in esco.skills.items() if len(s.alt_labels) >= 3], 400)
    folder = tmp_path_factory.mktemp("alt-task")
    dev, train = [], []
    for i, u in enumerate(uris):
        alts = [a.strip() for a in esco.skills[u].alt_labels if a.strip()]
        rng.shuffle(alts)
        if i < 100:
            dev.append({"text": f"The ideal candidate brings {alts.pop()} to the team.", "skills": [u]})
        train += [{"text": a, "skills": [u]} for a in alts]
    (folder / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    return _Slice(esco, uris), folder


def test_a_small_run_moves_the_weights_lowers_the_loss_and_raises_dev_rp5(tmp_path, alt_label_task, tiny_model_path):
    """The tiny random model (2 layers, 32-d) starts near chance: 40 steps on the other labels of the same skills
    must lift dev RP@5 over all 400 skills, lower the loss, and move every transformer weight but no frozen one."""
    from trainer.train import TrainConfig, train

    tax, folder = alt_label_task
    settings = load_settings({"home": tmp_path / "home", "engine": "edge"}, env={})
    out = tmp_path / "m"
    report = train(settings, TrainConfig(
        base=tiny_model_path, esco=(), data=(str(folder / "train.jsonl"),), dev=str(folder / "dev.jsonl"), out=str(out),
        batch_size=32, mini_batch_size=16, max_steps=40, eval_steps=20, lr=2e-3, augment=0.0, reindex=False,
        device="cpu", freeze_embeddings=True,
    ), esco=tax)
    assert report.after["rp@5"] > report.before["rp@5"] + 0.05, (report.before, report.after)
    assert report.after["mrr"] > report.before["mrr"]
    # the training loss falls: the mean of the last logged losses is below the first
    losses = [e["loss"] for e in report.log if "loss" in e]
    assert len(losses) >= 4 and sum(losses[-2:]) / 2 < losses[0], losses
    # the transformer layers moved, the frozen input embeddings did not
    new, old = load_file(str(out / "model.safetensors")), load_file(str(Path(tiny_model_path) / "model.safetensors"))
    layers = [k for k in new if k.startswith("encoder.")]
    assert layers and all(not torch.equal(new[k], old[k]) for k in layers)
    assert all(torch.equal(new[k], old[k]) for k in new if k.startswith("embeddings."))
    cfg = json.loads((out / "jobskills_config.json").read_text())
    assert cfg["training"]["freeze_embeddings"] is True and cfg["metrics"]["after"]["rp@5"] == report.after["rp@5"]


def test_the_best_checkpoint_is_the_model_kept(tmp_path, tiny_model_path, esco, monkeypatch):
    """Dev RP@5 scripted as 0.2, 0.9, 0.4 at steps 1, 2, 3: the saved model must be the step-2 weights."""
    import trainer.train as tt

    scripted = iter([0.2, 0.9, 0.4])

    def fake_eval(self, model, output_path=None, epoch=-1, steps=-1):
        return {f"{self.name}_rp@5": next(scripted)}

    monkeypatch.setattr(tt.RankingEvaluator, "__call__", fake_eval)
    dev = tmp_path / "dev.jsonl"
    uri = next(iter(esco.skills))
    dev.write_text(json.dumps({"text": "You will manage the musical staff.", "skills": [uri]}) + "\n")
    settings = load_settings({"home": tmp_path / "home", "engine": "edge"}, env={})
    out = tmp_path / "m"
    report = tt.train(settings, tt.TrainConfig(
        base=tiny_model_path, out=str(out), max_pairs=96, batch_size=16, mini_batch_size=8, max_steps=3, eval_steps=1,
        dev=str(dev), reindex=False, device="cpu", keep_checkpoints=True, lr=1e-3,
    ), esco=esco)
    assert report.best_checkpoint and report.best_checkpoint.endswith("checkpoint-2")
    kept = load_file(str(out / "model.safetensors"))
    best = load_file(str(Path(report.best_checkpoint) / "model.safetensors"))
    last = load_file(str(out.with_name("m.checkpoints") / "checkpoint-3" / "model.safetensors"))
    assert all(torch.equal(kept[k], best[k]) for k in kept)
    assert any(not torch.equal(kept[k], last[k]) for k in kept)  # the last step's weights were not kept


def test_a_run_whose_dev_rp5_fell_leaves_the_live_index_alone(tmp_path, tiny_model_path, esco, monkeypatch):
    import trainer.train as tt
    from indexer.build import build_index
    from jobskills.encoder import Encoder
    from jobskills.store import open_store

    settings = load_settings({"home": tmp_path / "home", "engine": "edge"}, env={})
    with open_store(settings) as store:
        build_index(settings, store, Encoder(tiny_model_path), esco, kinds=("skills",), limit=30)
        live = store.current("skills")
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"text": "You will manage the musical staff.", "skills": [next(iter(esco.skills))]}) + "\n")
    calls = []

    def falling(self, model, path="", ranker=None):  # before training 0.6, every later evaluation 0.4
        calls.append(1)
        return {"rp@5": 0.6, "mrr": 0.5} if len(calls) == 1 else {"rp@5": 0.4, "mrr": 0.3}

    monkeypatch.setattr(tt.RankingEvaluator, "metrics", falling)
    cfg = tt.TrainConfig(base=tiny_model_path, out=str(tmp_path / "m"), max_pairs=48, batch_size=16, mini_batch_size=8,
                         max_steps=1, dev=str(dev), device="cpu")
    monkeypatch.setattr(tt, "calibrate_offline", lambda ranker, examples: (0.5, {"f1": 0.1, "threshold": 0.5}))
    report = tt.train(settings, cfg, esco=esco)
    assert report.index is None and "fell from 0.6000 to 0.4000" in report.reindex_skipped
    assert (tmp_path / "m" / "modules.json").is_file()  # the model is written all the same
    with open_store(settings) as store:
        assert store.current("skills") == live and store.versions("skills") == [live]
