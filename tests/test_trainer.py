"""The trainer: data, the sentence-transformers loss, and a real (tiny) run that reindexes and is then queried."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from jobskills.errors import InputError, TrainError
from trainer.data import MAX_LABELS, Pair, augment, esco_pairs, expand, load_pairs, mix_report, title_pairs
from trainer.loss import ContextLossConfig, ContextMatchLoss, context_loss, masked_logits



# ---------------------------------------------------------------- data
def test_esco_pairs_cover_alt_labels_and_description_sentences(esco):
    pairs = esco_pairs(esco, seed=1)
    sources = {p.source for p in pairs}
    assert sources == {"esco-alt", "esco-desc"}
    uri, skill = next((u, s) for u, s in esco.skills.items() if len(s.alt_labels) >= 2)
    mine = [p for p in pairs if p.skills == (uri,) and p.source == "esco-alt"]
    # every alternative label appears, alone or inside a frame
    assert all(any(alt.strip() in p.text for p in mine) for alt in skill.alt_labels if alt.strip().lower() != skill.label.lower())
    assert len({p.skills[0] for p in pairs}) > 13000
    with pytest.raises(InputError):
        esco_pairs(esco, kinds=("bogus",))


def test_load_pairs_reads_synth_rows_and_names_bad_lines(tmp_path, esco):
    uri = next(iter(esco.skills))
    label = esco.skills[uri].label
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join([
        json.dumps({"sentence": "You will do it.", "skills": [{"uri": uri, "label": label}], "kind": "skill"}),
        json.dumps({"text": "Free coffee and fruit.", "skills": []}),
        json.dumps({"sentence": "Label by name works.", "skills": [label]}),
        '{"sentence": "torn', ]))
    pairs = load_pairs(good, esco)
    assert [p.skills for p in pairs] == [(uri,), (), (uri,)]  # the torn last line is skipped
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence": "a", "skills": []}\nnot json\n{"sentence": "b", "skills": []}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2"):
        load_pairs(bad, esco)
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"sentence": "a", "skills": ["http://nowhere/skill"]}\n')
    with pytest.raises(InputError, match="unknown skill"):
        load_pairs(unknown, esco)


def test_expand_and_augment_keep_every_skill_out_of_the_negatives():
    pairs = [Pair("Python and SQL.", ("py", "sql"), "t"), Pair("Free lunch.", (), "t"), Pair("Teach kids.", ("teach",), "t")]
    rows = expand(pairs)
    assert [(r.target, r.present) for r in rows] == [("py", {"py", "sql"}), ("sql", {"py", "sql"}), (None, set()), ("teach", {"teach"})]
    aug = augment(rows * 20, rate=1.0, seed=3, max_chars=60)
    for r in aug:
        assert len(r.text) <= 60 or "+aug" not in r.source
        if "+aug" in r.source:
            # whatever got glued on, its skills are masked, and the target's own sentence is still there
            for other in pairs:
                if other.text.rstrip(".") in r.text:
                    assert set(other.skills) <= r.present
    assert any("+aug" in r.source for r in aug)
    report = mix_report(pairs, aug)
    assert report["negative_rows"] == 20 and report["rows"] == 80


def test_title_pairs_join_an_occupations_skills(esco):
    pairs = title_pairs(esco, max_skills=5)
    occ_uri, occ = next(iter(esco.occupations.items()))
    mine = [p for p in pairs if p.occupation == occ_uri]
    assert {p.title for p in mine} >= {occ.label.strip()}
    labels = {s.label.strip() for s in esco.skills.values()}
    assert all(0 < len(p.skills.split(", ")) <= 5 for p in mine)
    assert all(part in labels for part in mine[0].skills.split(", "))


# ---------------------------------------------------------------- loss
def test_masked_logits_handle_multi_skill_rows_and_negatives():
    torch.manual_seed(0)
    tokens, mask, skills = torch.randn(4, 5, 8), torch.ones(4, 5, dtype=torch.bool), torch.randn(4, 8)
    # row 0: skill 7 (also 9); row 1: skill 9 (also 7) -> the same sentence twice; row 2: a negative; row 3: skill 3
    labels = torch.tensor([[7, 9, -1], [9, 7, -1], [-1, -1, -1], [3, -1, -1]])
    cfg = ContextLossConfig(temperature=0.5, symmetric=True)
    loss = context_loss(tokens, mask, skills, labels, cfg)
    from jobskills.scoring import score_all

    lg = score_all(tokens, mask, skills, cfg.score) / cfg.temperature
    fwd = [(0, [0, 3]), (1, [1, 3]), (3, [0, 1, 3])]  # column 2 is the negative's placeholder: never used
    bwd = [(0, [0, 2, 3]), (1, [1, 2, 3]), (3, [0, 1, 2, 3])]  # a negative sentence is a negative for every skill
    f = sum(-(lg[i, i] - torch.logsumexp(lg[i, c], 0)) for i, c in fwd) / 3
    b = sum(-(lg[k, k] - torch.logsumexp(lg[c, k], 0)) for k, c in bwd) / 3
    assert abs(float(loss) - float((f + b) / 2)) < 1e-5
    masked, rows = masked_logits(lg, labels)
    assert rows.tolist() == [True, True, False, True] and torch.isinf(masked[:, 2]).all()


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(tiny_model_path, device="cpu")


def test_sentence_transformers_loss_cached_equals_uncached(tiny):
    sents = ["We need strong Python skills.", "You will manage a small team of five.", "Free parking.", "Teach Python."]
    skills = ["Python", "lead a team", "Python", "Python"]
    labels = torch.tensor([[0, -1] + [-1] * (MAX_LABELS - 2), [1] + [-1] * (MAX_LABELS - 1), [-1] * MAX_LABELS, [0] + [-1] * (MAX_LABELS - 1)])
    grads = []
    for mini in (None, 1, 3):
        m = copy.deepcopy(tiny)
        m.eval()
        loss_fn = ContextMatchLoss(m, ContextLossConfig(temperature=0.1), mini_batch_size=mini)
        feats = [m.preprocess(sents), m.preprocess(skills)]
        loss = loss_fn(feats, labels)
        loss.backward()
        grads.append((float(loss.detach()), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}))
    (l0, g0), *rest = grads
    assert g0
    for l1, g1 in rest:
        assert abs(l1 - l0) < 1e-5
        for name in g0:
            torch.testing.assert_close(g1[name], g0[name], atol=1e-5, rtol=1e-4, msg=name)


# ---------------------------------------------------------------- a real run
@pytest.fixture()
def live_home(tmp_path, encoder, esco):
    """A home with a small live index (40 skills, 5 occupations) built with the packaged MiniLM."""
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.store import open_store

    settings = load_settings({"home": tmp_path / "home", "engine": "edge"}, env={})
    with open_store(settings) as store:
        build_index(settings, store, encoder, esco, kinds=("skills",), limit=40)
        build_index(settings, store, encoder, esco, kinds=("titles",), limit=5)
    return settings


@pytest.mark.integration
def test_train_writes_a_model_reindexes_and_extract_uses_it(live_home, tmp_path, encoder, esco):
    from jobskills.cli import app

    runner = CliRunner()
    home = str(live_home.home)
    dev = tmp_path / "dev.jsonl"
    uri = next(iter(esco.skills))  # "manage musical staff", inside the 40-skill live index
    dev.write_text(json.dumps({"text": "You will manage the musical staff of the orchestra.", "skills": [uri]}) + "\n"
                   + json.dumps({"text": "We offer a company car.", "skills": []}) + "\n")
    out = tmp_path / "trained"
    res = runner.invoke(app, ["train", "--home", home, "--base", "minilm", "--out", str(out), "--max-pairs", "48", "--batch-size", "16",
                              "--mini-batch-size", "8", "--max-steps", "2", "--dev", str(dev), "--reindex-if-worse", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["steps"] == 2 and report["dataset"]["pairs"] == 48
    assert report["before"] is not None and report["after"] is not None
    cfg = json.loads((out / "jobskills_config.json").read_text())
    assert cfg["base_fingerprint"] == encoder.fingerprint and cfg["data"]["fingerprint"]
    assert "calibrated on dev.jsonl" in cfg["threshold_source"] and cfg["scorer_version"] == "contextmatch-1"
    assert (out / "modules.json").is_file() and not out.with_name("trained.checkpoints").exists()

    from jobskills.encoder import model_fingerprint

    new_fp = model_fingerprint(out)
    assert new_fp != encoder.fingerprint
    info = json.loads(runner.invoke(app, ["info", "--home", home, "--json"]).stdout)
    for kind, count in (("skills", 40), ("titles", None)):  # both live kinds rebuilt, same shape as before
        m = info[kind]["manifest"]
        assert m["model_fingerprint"] == new_fp and m["model_path"] == str(out.resolve())
        assert count is None or m["count"] == count
        assert len(info[kind]["versions"]) == 2  # the previous one is kept for --rollback
    assert info["skills"]["manifest"]["threshold"] == cfg["threshold"]
    ext = runner.invoke(app, ["extract", "--home", home, "--json", "You will manage the musical staff."])
    assert ext.exit_code == 0, ext.output
    # the index's model is what extract loaded (no --model needed)
    assert json.loads(ext.stdout)["provenance"]["model_fingerprint"] == new_fp
    # the previous index is one command away
    back = runner.invoke(app, ["index", "--home", home, "--rollback", "--json"])
    assert back.exit_code == 0, back.output
    ext = runner.invoke(app, ["extract", "--home", home, "--json", "You will manage the musical staff."])
    assert json.loads(ext.stdout)["provenance"]["model_fingerprint"] == encoder.fingerprint


@pytest.mark.integration
def test_failed_reindex_keeps_the_old_index_live_and_the_model(live_home, tmp_path, monkeypatch, esco):
    import indexer.build as build
    from jobskills.store import open_store
    from trainer.train import TrainConfig, train

    with open_store(live_home) as store:
        before = {k: store.current(k) for k in ("skills", "titles")}
        versions = {k: store.versions(k) for k in ("skills", "titles")}
    real = build._smoke_query

    def broken(store, kind, *a, **kw):
        if kind == "titles":
            raise build.StoreError("smoke query failed (simulated)")
        return real(store, kind, *a, **kw)

    monkeypatch.setattr(build, "_smoke_query", broken)
    out = tmp_path / "m"
    with pytest.raises(TrainError, match="previous index is still live"):
        train(live_home, TrainConfig(out=str(out), max_pairs=32, batch_size=16, mini_batch_size=8, max_steps=1), esco=esco)
    assert (out / "modules.json").is_file()  # the trained model is kept
    with open_store(live_home) as store:
        assert {k: store.current(k) for k in ("skills", "titles")} == before
        assert {k: store.versions(k) for k in ("skills", "titles")} == versions  # the new skills version was dropped


def test_bad_training_input_is_a_clear_error(live_home, tmp_path, esco):
    from trainer.train import TrainConfig, train

    with pytest.raises(InputError, match="no training pairs"):
        train(live_home, TrainConfig(esco=(), out=str(tmp_path / "x"), reindex=False), esco=esco)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    with pytest.raises(InputError, match="already holds files"):
        train(live_home, TrainConfig(out=str(busy), reindex=False), esco=esco)
    from jobskills.errors import ModelLoadError

    with pytest.raises(ModelLoadError):
        train(live_home, TrainConfig(base=str(tmp_path / "nope"), out=str(tmp_path / "y")), esco=esco)


# ---------------------------------------------------------------- the title encoder
def test_title_model_starts_as_its_base_and_plain_encode_takes_the_title_head(tiny):
    from trainer.titles import SKILLS_ROUTE, TITLE_ROUTE, build_title_model

    model = build_title_model(copy.deepcopy(tiny))
    titles = ["data engineer", "nurse", "chef de partie"]
    base = tiny.encode(titles, convert_to_tensor=True)
    plain = model.encode(titles, convert_to_tensor=True)
    torch.testing.assert_close(plain, base, atol=1e-5, rtol=1e-4)  # identity heads at the start
    router = model[2]
    with torch.no_grad():  # now make the two heads differ
        router.sub_modules[TITLE_ROUTE][0].linear.weight.mul_(-1)
    plain = model.encode(titles, convert_to_tensor=True)
    routed = model.encode(titles, convert_to_tensor=True, task=TITLE_ROUTE)
    doc = model.encode(titles, convert_to_tensor=True, task=SKILLS_ROUTE)
    torch.testing.assert_close(plain, routed)
    assert not torch.allclose(plain, doc)


def test_title_triples_pair_one_occupations_titles_with_a_sibling_negative(esco):
    import random

    from trainer.data import occupation_titles, title_triples

    titles = occupation_titles(esco)
    rows = title_triples(esco, random.Random(0))
    assert rows == title_triples(esco, random.Random(0)) and rows != title_triples(esco, random.Random(1))
    assert len(rows) == sum(len(ts) for ts in titles.values() if len(ts) > 1) > 25_000
    owner: dict[str, set[str]] = {}
    for uri, ts in titles.items():
        assert ts[0] == esco.occupations[uri].label.strip() and len({t.casefold() for t in ts}) == len(ts)
        for t in ts:
            owner.setdefault(t, set()).add(uri)
    with_negative = 0
    for r in rows[:3000]:
        assert r.anchor != r.positive and {r.anchor, r.positive} <= set(titles[r.occupation])
        if r.negative is not None:
            with_negative += 1
            group = esco.occupations[r.occupation].isco_group
            assert any(u != r.occupation and esco.occupations[u].isco_group == group for u in owner[r.negative])
    assert with_negative > 2500
    assert all(r.negative is None for r in title_triples(esco, random.Random(0), hard_negatives=False)[:100])


@pytest.mark.integration
@pytest.mark.parametrize("objective", ["titles", "skills"])
def test_train_titles_rebuilds_the_title_index_and_titles_uses_its_model(live_home, tmp_path, tiny_model_path, esco, encoder,
                                                                         objective):
    from jobskills.encoder import model_fingerprint
    from jobskills.store import open_store
    from retriever.pipeline import Retriever
    from trainer.titles import TitleTrainConfig, train_titles
    from trainer.train import TrainConfig, train

    dev = tmp_path / "titles.jsonl"
    occ_uri, occ = next(iter(esco.occupations.items()))
    dev.write_text(json.dumps({"title": occ.label, "occupation": occ_uri}) + "\n")
    out = tmp_path / "titles-model"
    report = train_titles(live_home, TitleTrainConfig(base=tiny_model_path, out=str(out), objective=objective, max_pairs=64,
                                                      batch_size=16, mini_batch_size=8, max_steps=2, dev=str(dev), device="cpu"),
                          esco=esco)
    assert report["steps"] == 2 and report["before"] and report["after"] and report["objective"] == objective
    meta = json.loads((out / "jobskills_config.json").read_text())
    assert meta["role"] == "titles" and meta.get("route") == ("query" if objective == "skills" else None)
    if objective == "titles":  # the base's shape, its input embeddings frozen, the rest trained
        from safetensors.torch import load_file

        new, old = load_file(str(out / "model.safetensors")), load_file(str(Path(tiny_model_path) / "model.safetensors"))
        assert set(new) == set(old)
        changed = {k for k in new if not torch.equal(new[k], old[k])}
        assert changed and not any("embeddings" in k for k in changed)
        assert report["log"] and report["log"][0]["loss"] > 0
    fp = model_fingerprint(out)
    with open_store(live_home) as store:
        _, manifest = store.current_manifest("titles")
        assert manifest["model_fingerprint"] == fp and manifest["dim"] == 32  # its own model and width
    with Retriever(live_home) as r:
        hits = r.titles(occ.label, k=3)
        assert r.title_encoder.fingerprint == fp and r.encoder.fingerprint == encoder.fingerprint
        assert hits and hits[0].occupation_uri == occ_uri
    # retraining the skills model later rebuilds skills only: the titles keep their own model
    train(live_home, TrainConfig(out=str(tmp_path / "skills-model"), max_pairs=32, batch_size=16, mini_batch_size=8, max_steps=1), esco=esco)
    with open_store(live_home) as store:
        assert store.current_manifest("titles")[1]["model_fingerprint"] == fp


@pytest.mark.integration
def test_train_on_an_imported_taxonomy_calibrates_for_it_and_rebuilds_its_index(tmp_path):
    from jobskills.cli import app

    it = Path(__file__).parent / "data" / "it_skills.csv"
    home = str(tmp_path / "home")
    runner = CliRunner()
    add = runner.invoke(app, ["taxonomy", "add", "it", str(it), "--id-column", "code", "--label-column", "name",
                              "--description-column", "definition", "--alt-labels-column", "synonyms", "--home", home])
    assert add.exit_code == 0, add.output
    assert runner.invoke(app, ["index", "--taxonomy", "it", "--home", home]).exit_code == 0
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"text": "You will write software in Python.", "skills": ["IT-001"]}) + "\n")
    out = tmp_path / "it-model"
    res = runner.invoke(app, ["train", "--taxonomy", "it", "--home", home, "--out", str(out), "--batch-size", "16",
                              "--mini-batch-size", "8", "--max-steps", "2", "--dev", str(dev), "--reindex-if-worse", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["dataset"]["skills_covered"] == 200  # every skill has a pair (alt label or definition)
    from jobskills.encoder import model_fingerprint

    fp = model_fingerprint(out)
    # the threshold belongs to (model, taxonomy): kept in this home, not in the model folder
    assert (Path(home) / "calibration" / f"{fp}-it.json").is_file()
    ext = runner.invoke(app, ["extract", "--taxonomy", "it", "--home", home, "--json", "You will write software in Python."])
    assert ext.exit_code == 0, ext.output
    assert json.loads(ext.stdout)["provenance"]["model_fingerprint"] == fp


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path, tiny_model_path, esco):
    from jobskills.config import load_settings
    from trainer.train import TrainConfig, train

    settings = load_settings({"home": tmp_path / "home", "engine": "edge"}, env={})
    cfg = TrainConfig(base=tiny_model_path, out=str(tmp_path / "m"), max_pairs=96, batch_size=16, mini_batch_size=8,
                      max_steps=4, eval_steps=2, reindex=False, device="cpu")

    def stop_at_3(task, done, total):
        if task == "train" and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainError, match="--resume"):
        train(settings, cfg, progress=stop_at_3, esco=esco)
    ckpts = tmp_path / "m.checkpoints"
    assert (ckpts / "checkpoint-2").is_dir() and not (tmp_path / "m").exists()
    with pytest.raises(InputError, match="--resume"):
        train(settings, cfg, esco=esco)
    seen = []
    report = train(settings, dataclasses.replace(cfg, resume=True), progress=lambda t, d, n: seen.append(d), esco=esco)
    assert report.steps == 4 and seen[0] == 3  # continued after checkpoint-2, did not start over
    assert (tmp_path / "m" / "modules.json").is_file() and not ckpts.exists()


def test_an_interrupted_title_run_resumes_to_the_same_weights(live_home, tmp_path, tiny_model_path, esco):
    """The titles objective saves its whole state every --save-steps; a run stopped after step 2 of 4 and resumed
    ends with exactly the weights of an uninterrupted run, refuses to start over without --resume, and leaves no
    state behind once the model is saved."""
    from safetensors.torch import load_file

    from jobskills.errors import InputError
    from trainer.titles import TitleTrainConfig, train_titles

    def cfg(out, **kw):
        return TitleTrainConfig(base=tiny_model_path, out=str(out), max_pairs=64, batch_size=8, max_steps=4,
                                save_steps=1, device="cpu", reindex=False, **kw)

    whole = tmp_path / "whole"
    train_titles(live_home, cfg(whole), esco=esco)

    class Stop(Exception):
        pass

    def stop_after_two(stage, done, total):
        if stage == "train" and done == 2:
            raise Stop

    cut = tmp_path / "cut"
    with pytest.raises(Stop):
        train_titles(live_home, cfg(cut), progress=stop_after_two, esco=esco)
    state = tmp_path / "cut.checkpoints" / "state.pt"
    assert state.is_file() and not cut.exists()
    with pytest.raises(InputError, match="--resume"):
        train_titles(live_home, cfg(cut), esco=esco)
    with pytest.raises(InputError, match=r"lr 5e-05 \(now 0\.001\); resume with the same settings"):
        train_titles(live_home, cfg(cut, resume=True, lr=1e-3), esco=esco)  # another learning rate: refused
    assert state.is_file()  # and the saved state is still there
    report = train_titles(live_home, cfg(cut, resume=True), esco=esco)
    assert report["steps"] == 4 and not state.parent.exists()
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    base = load_file(str(Path(tiny_model_path) / "model.safetensors"))
    assert any(not torch.equal(a[k], base[k]) for k in a)  # the four steps did train
