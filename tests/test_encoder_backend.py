"""Encoder backends (fp32, int8 with per-token scales, onnx-int8 in ONNX Runtime): close vectors, a distinct
fingerprint, and an index bound to its backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobskills.encoder import BACKEND_FILE, Encoder, backend_fingerprint, model_fingerprint
from jobskills.errors import ConfigError, IndexMismatchError

TEXTS = [
    "Experience with Python and SQL is required.",
    "You will manage a small team of warehouse operatives and plan the weekly shifts.",
    "Good communication skills in English and German.",
    "Experience with Java and Go is required.",  # the first and third ones' token count: one pass holds the three
]


@pytest.fixture(scope="module")
def fp32(tiny_model_path):
    return Encoder(tiny_model_path)


@pytest.fixture(scope="module")
def int8(tiny_model_path):
    return Encoder(tiny_model_path, backend="int8")


@pytest.fixture(scope="module")
def onnx8(tiny_model_path):
    return Encoder(tiny_model_path, backend="onnx-int8")


@pytest.mark.parametrize("backend", ["int8", "int8-mixed", "onnx-int8"])
def test_int8_token_vectors_stay_close_to_fp32(fp32, tiny_model_path, backend):
    import torch

    quant = Encoder(tiny_model_path, backend=backend)
    a, b = fp32.encode(TEXTS), quant.encode(TEXTS)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.input_ids, b.input_ids)
    cos = torch.nn.functional.cosine_similarity(a.tokens[a.mask], b.tokens[b.mask], dim=-1)
    assert float(cos.min()) > 0.98
    assert not torch.equal(a.tokens, b.tokens)  # the weights really run in int8


@pytest.mark.parametrize("backend", ["int8", "onnx-int8"])
def test_int8_vectors_of_a_text_do_not_depend_on_its_batch(request, backend):
    import torch

    int8 = request.getfixturevalue({"int8": "int8", "onnx-int8": "onnx8"}[backend])
    counts = int8.count_tokens(TEXTS)
    assert counts[0] == counts[2] == counts[3] != counts[1]  # one pass of three texts, one of a longer one
    batch = int8.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = int8.encode([text])
        n = int(alone.mask[0].sum())
        assert torch.equal(batch.token_rows(i), alone.token_rows(0)) and n == int(batch.mask[i].sum())
        assert torch.equal(batch.pooled[i], alone.pooled[0])


def test_fp32_passes_per_token_count_match_one_padded_pass(fp32):
    """On the CPU a batch runs without padding, one pass per token count; the vectors are the padded pass's up to
    float rounding, and each text's match its own pass."""
    import torch

    grouped = fp32.encode(TEXTS)
    features = fp32.model.preprocess(TEXTS)
    with torch.inference_mode():
        padded = fp32.model(features)
    mask = grouped.mask
    assert torch.equal(mask, features["attention_mask"].bool())
    assert torch.allclose(grouped.tokens[mask], padded["token_embeddings"][mask], atol=1e-5)
    assert torch.allclose(grouped.pooled, padded["sentence_embedding"], atol=1e-6)
    for i, text in enumerate(TEXTS):
        assert torch.allclose(grouped.token_rows(i), fp32.encode([text]).token_rows(0), atol=1e-6)


def test_int8_left_padding_runs_one_text_per_pass(tiny_model_path, int8):
    """A tokenizer that pads on the left cannot be cut into passes by length; each text then runs alone, with
    the same vectors."""
    import torch

    left = Encoder(tiny_model_path, backend="int8")
    left.tokenizer.padding_side = "left"
    a, b = int8.encode(TEXTS), left.encode(TEXTS)
    assert not torch.equal(a.mask, b.mask)  # the padding really moved
    for i in range(len(TEXTS)):
        assert torch.equal(a.token_rows(i), b.token_rows(i)) and torch.equal(a.pooled[i], b.pooled[i])


def test_int8_mixed_keeps_the_ffn_down_projections_in_fp32(tiny_model_path):
    import torch

    quant = Encoder(tiny_model_path, backend="int8-mixed")
    linear = {n: type(m).__module__ for n, m in quant.model.named_modules() if "Linear" in type(m).__name__}
    ffn_down = [n for n in linear if n.endswith(".output.dense") and ".attention." not in n]
    assert ffn_down and all(type(quant.model.get_submodule(n)) is torch.nn.Linear for n in ffn_down)
    assert all(mod == "jobskills.int8" for n, mod in linear.items() if n not in ffn_down)


def test_row_int8_linear_scales_each_row_alone():
    """A row's output depends on that row only (bit for bit, whatever else is in the pass), and stays within int8
    rounding of the float layer even beside a row 1,000 times larger, which per-tensor scaling would crush."""
    import torch

    from jobskills.int8 import RowInt8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 32)
    layer = RowInt8Linear(linear)
    x = torch.randn(5, 48)
    x[4] *= 1000.0
    with torch.inference_mode():
        together = layer(x)
        alone = torch.cat([layer(x[i : i + 1]) for i in range(5)])
        ref = linear(x)
    assert torch.equal(together, alone)
    rel = (together - ref).norm(dim=1) / ref.norm(dim=1)
    assert float(rel.max()) < 0.03
    assert float(rel[:4].max()) > 0  # it does run in int8
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    per_tensor = quantize_dynamic(torch.nn.Sequential(linear), {"0": per_channel_dynamic_qconfig}, dtype=torch.qint8)
    with torch.inference_mode():
        crushed = (per_tensor(x)[:4] - ref[:4]).norm(dim=1) / ref[:4].norm(dim=1)
    assert float(crushed.min()) > 10 * float(rel[:4].max())  # one scale for the pass: the small rows lose their digits


def test_the_backend_is_part_of_the_fingerprint(fp32, int8, onnx8, tiny_model_path):
    weights = model_fingerprint(tiny_model_path)
    assert fp32.fingerprint == weights  # indexes built before backends existed stay valid
    assert int8.fingerprint == backend_fingerprint(weights, "int8") != weights
    assert Encoder(tiny_model_path, backend="int8-mixed").fingerprint not in (weights, int8.fingerprint)
    assert int8.name.endswith("+int8") and int8.backend == "int8"
    assert onnx8.fingerprint == backend_fingerprint(weights, "onnx-int8") not in (weights, int8.fingerprint)
    assert onnx8.name.endswith("+onnx-int8")


def test_onnx_int8_runs_the_transformer_in_onnx_runtime_and_writes_no_user_folder(onnx8, fp32, tiny_model_path):
    import torch

    before = sorted(p.name for p in Path(tiny_model_path).iterdir())
    a = onnx8.encode(TEXTS)
    assert onnx8._ort is not None and onnx8._ort.session() is not None
    assert sorted(p.name for p in Path(tiny_model_path).iterdir()) == before  # the export went to a temporary folder
    b = fp32.encode(TEXTS)
    pooled = torch.nn.functional.cosine_similarity(a.pooled, b.pooled, dim=-1)
    assert float(pooled.min()) > 0.98 and not torch.equal(a.pooled, b.pooled)
    # the model's own pooling module still runs: the pooled vector is the mean of the real token vectors
    mean = a.tokens[0][a.mask[0]].mean(dim=0)
    assert torch.allclose(torch.nn.functional.normalize(mean, dim=0), torch.nn.functional.normalize(a.pooled[0], dim=0), atol=1e-5)


def test_onnx_int8_vectors_do_not_depend_on_the_thread_count(onnx8):
    """Texts run side by side on several threads, each on one: the same vectors at 1 and 2 threads."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = onnx8.encode(TEXTS)
        torch.set_num_threads(2)
        two = onnx8.encode(TEXTS)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.tokens, two.tokens) and torch.equal(one.pooled, two.pooled)


def test_onnx_int8_variant_keeps_its_export_and_reuses_it(tiny_model_path, tmp_path):
    from jobskills.config import load_settings
    from jobskills.onnx_int8 import ONNX_FILE

    settings = load_settings({"home": tmp_path, "model": tiny_model_path}, env={"JOBSKILLS_ENCODER_BACKEND": "onnx-int8"})
    variant = Path(settings.model_path)
    first = Encoder(variant)
    assert first.backend == "onnx-int8" and (variant / ONNX_FILE).is_file()
    stamp = (variant / ONNX_FILE).stat().st_mtime_ns
    assert model_fingerprint(variant) == model_fingerprint(tiny_model_path)  # the export is not part of the weights
    again = Encoder(variant)
    assert (variant / ONNX_FILE).stat().st_mtime_ns == stamp  # loaded, not exported again
    import torch

    assert torch.equal(first.encode(TEXTS[:2]).tokens, again.encode(TEXTS[:2]).tokens)


def test_onnx_int8_without_onnxruntime_is_a_one_line_config_error(tiny_model_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ConfigError, match=r"needs onnxruntime and onnx .*pip install 'jobskills\[onnx\]'"):
        Encoder(tiny_model_path, backend="onnx-int8")


def test_an_unknown_backend_is_a_config_error(tiny_model_path):
    from jobskills.config import load_settings

    with pytest.raises(ConfigError, match="unknown encoder backend 'int4'"):
        load_settings({}, env={"JOBSKILLS_ENCODER_BACKEND": "int4"})
    with pytest.raises(ConfigError, match="fp32, int8"):
        Encoder(tiny_model_path, backend="fp16")


def test_a_backend_setting_resolves_to_a_variant_folder_and_back(tiny_model_path, tmp_path):
    from jobskills.config import load_settings

    settings = load_settings({"home": tmp_path, "model": tiny_model_path}, env={"JOBSKILLS_ENCODER_BACKEND": "int8"})
    variant = Path(settings.model_path)
    assert variant.parent == tmp_path / "models" and variant.name.endswith("-int8")
    assert json.loads((variant / BACKEND_FILE).read_text())["backend"] == "int8"
    assert model_fingerprint(variant) == model_fingerprint(tiny_model_path)  # same weights, linked
    loaded = Encoder(variant)  # no backend given: the folder says int8
    assert loaded.backend == "int8" and loaded.fingerprint == Encoder(tiny_model_path, backend="int8").fingerprint
    assert settings.model_path == str(variant)  # made once, reused
    back = load_settings({"home": tmp_path, "model": str(variant), "encoder_backend": "fp32"}, env={})
    assert Path(back.model_path).resolve() == Path(tiny_model_path).resolve()
    kept = load_settings({"home": tmp_path, "model": str(variant)}, env={})
    assert kept.model_path == str(variant)


@pytest.fixture(scope="module")
def tiny_indexes(tmp_path_factory, fp32, int8, onnx8, esco, sample_uris):
    """Three small skills indexes of the tiny model, built in fp32, int8 and onnx-int8."""
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.store import open_store

    out = {}
    for enc in (fp32, int8, onnx8):
        settings = load_settings({"home": tmp_path_factory.mktemp(f"home-{enc.backend}"), "engine": "memory"}, env={})
        store = open_store(settings)
        build_index(settings, store, enc, esco=esco, kinds=("skills",), skill_uris=sample_uris[:40])
        out[enc.backend] = (settings, store)
    yield out
    for _, store in out.values():
        store.close()


@pytest.mark.parametrize("built,query", [("fp32", "int8"), ("int8", "fp32"), ("onnx-int8", "fp32"), ("int8", "onnx-int8")])
def test_an_index_refuses_an_encoder_of_another_backend(tiny_indexes, fp32, int8, onnx8, built, query):
    from retriever.pipeline import Retriever

    encoders = {"fp32": fp32, "int8": int8, "onnx-int8": onnx8}
    settings, store = tiny_indexes[built]
    manifest = store.current_manifest("skills")[1]
    assert manifest["model_fingerprint"] == encoders[built].fingerprint
    with pytest.raises(IndexMismatchError) as caught:
        Retriever(settings, store=store, encoder=encoders[query])
    assert encoders[built].fingerprint in str(caught.value) and encoders[query].fingerprint in str(caught.value)


@pytest.mark.parametrize("backend", ["int8", "onnx-int8"])
def test_an_int8_index_answers_its_own_backend(tiny_indexes, int8, onnx8, backend):
    from retriever.pipeline import Retriever

    settings, store = tiny_indexes[backend]
    r = Retriever(settings, store=store, encoder=int8 if backend == "int8" else onnx8)
    (res,) = r.extract_sentences([TEXTS[0]], threshold=-1.0)
    assert res.skills  # every skill clears a threshold of -1: the int8 index is queried end to end
    import torch

    enc = int8 if backend == "int8" else onnx8
    for row in (0, 7):  # labels indexed in batches get the vectors a query of the label alone gets
        label = r.skills.payloads[row]["label"]
        assert torch.equal(r.skills.matrix[row], enc.encode([label]).pooled[0])


# --- the --encoder-backend option on the CLI, and the trainer's base ---------------------------------------------


@pytest.fixture(scope="module")
def cli_homes(tmp_path_factory, tiny_model_path):
    """Small homes built by `jobskills index` with the tiny model: fp32, and --encoder-backend int8 and onnx-int8."""
    from typer.testing import CliRunner

    from jobskills.cli import app

    homes = {}
    for backend in ("fp32", "int8", "onnx-int8"):
        home = tmp_path_factory.mktemp(f"cli-{backend}")
        res = CliRunner().invoke(app, ["index", "--home", str(home), "--model", tiny_model_path, "--encoder-backend", backend,
                                       "--only", "skills", "--limit", "8", "--json"])
        assert res.exit_code == 0, res.output
        homes[backend] = home
    return homes


def _lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


@pytest.mark.parametrize("built,asked", [("fp32", "int8"), ("int8", "fp32"), ("fp32", "int8-mixed"), ("onnx-int8", "int8")])
def test_cli_an_explicit_backend_against_an_index_of_another_fails_with_one_line(cli_homes, built, asked):
    """Issue 18.3: with no --model the query follows the index's model folder, but an explicit backend is applied
    to that folder instead of being replaced by the index's: int8 against an fp32 index is refused, not run in fp32."""
    from typer.testing import CliRunner

    from jobskills.cli import app

    res = CliRunner().invoke(app, ["extract", "--home", str(cli_homes[built]), "--encoder-backend", asked, "Python and SQL"])
    assert res.exit_code == 1, res.output
    (line,) = _lines(res.output)
    assert line.startswith("error:") and "fingerprint" in line and "jobskills index" in line
    assert ("+" + asked in line) if asked != "fp32" else ("+int8" in line)  # the loaded encoder vs the index's


@pytest.mark.parametrize("built", ["fp32", "int8", "onnx-int8"])
def test_cli_the_index_backend_answers_given_or_followed(cli_homes, built):
    from typer.testing import CliRunner

    from jobskills.cli import app

    runner = CliRunner()
    for extra in ([], ["--encoder-backend", built]):  # followed from the index's folder, or named: the same encoder
        res = runner.invoke(app, ["extract", "--home", str(cli_homes[built]), *extra, "--json", "-t", "-1", "Python and SQL"])
        assert res.exit_code == 0, res.output
        model = json.loads(res.stdout)["provenance"]["model"]
        assert model.endswith("+int8") == (built == "int8") and model.endswith("+onnx-int8") == (built == "onnx-int8"), model


@pytest.mark.parametrize("command", [["index"], ["extract", "Python and SQL"], ["search", "python"], ["titles", "chef"],
                                     ["analyse", "We need a chef who can cook."]])
def test_cli_an_unknown_backend_fails_before_a_model_loads(tmp_path, command):
    from typer.testing import CliRunner

    from jobskills.cli import app

    # a model that does not exist: had it been loaded first, the error would name the folder instead
    res = CliRunner().invoke(app, [*command, "--home", str(tmp_path), "--model", "/nonexistent/model", "--encoder-backend", "bogus"])
    assert res.exit_code == 1, res.output
    (line,) = _lines(res.output)
    assert "unknown encoder backend 'bogus'" in line and "fp32, int8" in line and "/nonexistent" not in line


def test_the_trainer_starts_from_fp32_whatever_the_backend(tiny_model_path, tmp_path):
    """A set backend must never hand training a quantised model: the base resolves to the fp32 source folder."""
    from jobskills.config import load_settings
    from trainer.common import base_model

    fp32_dir = Path(tiny_model_path).resolve()
    for backend in ("int8", "int8-mixed"):
        settings = load_settings({"home": tmp_path, "model": tiny_model_path, "encoder_backend": backend}, env={})
        variant = Path(settings.model_path)
        assert json.loads((variant / BACKEND_FILE).read_text())["backend"] == backend  # what a query would load
        assert Path(base_model(None, settings)).resolve() == fp32_dir  # the model the settings name, in fp32
        assert Path(base_model(str(variant), settings)).resolve() == fp32_dir  # --base a variant folder: its source
        plain = load_settings({"home": tmp_path, "encoder_backend": backend}, env={})
        assert Path(base_model(tiny_model_path, plain)).resolve() == fp32_dir  # --base given, backend set
    assert not (fp32_dir / BACKEND_FILE).exists()
