"""Encoder: one forward pass gives a text's token embeddings (for ConTeXT) and its pooled embedding.

Wraps a sentence-transformers model folder. Token embeddings are the last transformer layer's
vectors exactly as sentence-transformers returns them (``output_value="token_embeddings"``): special
tokens included, not normalised; padding is returned as a mask. Pooled embeddings come from the
model's own pipeline (pooling, then Normalize if the model has it). No model hub is ever contacted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from jobskills.errors import ModelLoadError

__all__ = ["Encoded", "Encoder", "model_fingerprint", "resolve_device"]

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def model_fingerprint(path: str | os.PathLike[str]) -> str:
    """Hash of a model folder's weights and module configs: two folders with one fingerprint score alike."""
    root = Path(path)
    h = hashlib.sha256()
    # weights and every config / tokenizer file: anything that can change a vector
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (*_WEIGHT_SUFFIXES, ".json", ".txt", ".model") and ".git" not in p.parts
        and not p.name.startswith("jobskills_")  # our own settings and reports (threshold, metrics) change no vector
    )
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def resolve_device(device: str) -> str:
    """``auto`` picks CUDA when present; otherwise the name is passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return device


@dataclass
class Encoded:
    """A batch of encoded texts, padded to the longest.

    Attributes:
        tokens: ``(n, n_tokens, dim)`` float32 token embeddings, zero at padding.
        mask: ``(n, n_tokens)`` bool, True for real tokens (specials included).
        pooled: ``(n, dim)`` the model's sentence embeddings.
        input_ids: ``(n, n_tokens)`` token ids.
        offsets: per text, ``(start, end)`` character span of each real token (``(0, 0)`` for specials),
            only when requested.
        word_ids: per text, the word index of each real token (``None`` for specials), only when requested.
    """

    tokens: "torch.Tensor"  # noqa: F821
    mask: "torch.Tensor"  # noqa: F821
    pooled: "torch.Tensor"  # noqa: F821
    input_ids: "torch.Tensor"  # noqa: F821
    offsets: list[list[tuple[int, int]]] | None = None
    word_ids: list[list[int | None]] | None = None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def token_rows(self, i: int) -> "torch.Tensor":  # noqa: F821
        """The real token vectors of text ``i``, ``(n_real, dim)`` (a view when padding is on the right)."""
        n = int(self.mask[i].sum())
        if bool(self.mask[i, :n].all()):
            return self.tokens[i, :n]
        return self.tokens[i][self.mask[i]]


class Encoder:
    """A sentence-transformers model loaded from a local folder.

    Args:
        path: model folder (``modules.json`` or a plain transformers ``config.json``).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    """

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu") -> None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(
                f"model folder {str(folder)!r} does not exist; pass --model with a local "
                "sentence-transformers folder (models are never downloaded)"
            )
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise ModelLoadError(
                f"{str(folder)!r} is not a sentence-transformers model folder (no modules.json or config.json)"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch  # noqa: F401
        from sentence_transformers import SentenceTransformer

        self.path = str(folder.resolve())
        self.device = resolve_device(device)
        if not logger.isEnabledFor(logging.DEBUG):  # weight-loading bars are noise on stderr
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:  # pragma: no cover
                pass
        try:
            self.model = SentenceTransformer(self.path, device=self.device, local_files_only=True)
        except Exception as exc:  # ST raises many types for a broken folder
            raise ModelLoadError(f"cannot load model from {self.path!r}: {type(exc).__name__}: {exc}") from exc
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        if not getattr(self.tokenizer, "is_fast", False):
            raise ModelLoadError(f"model {self.path!r} has no fast tokenizer; evidence offsets need one")
        self._fingerprint: str | None = None
        self.name = self._model_name()

    @classmethod
    def wrap(cls, model: Any, path: str | os.PathLike[str], name: str | None = None) -> "Encoder":
        """An encoder over a model already in memory (the trainer's, mid-training), read-only use."""
        self = cls.__new__(cls)
        self.model = model
        self.path = str(path)
        self.device = str(next(model.parameters()).device)
        self.tokenizer = model.tokenizer
        self._fingerprint = None
        self.name = name or Path(self.path).name
        return self

    def _model_name(self) -> str:
        cfg = Path(self.path) / "config_sentence_transformers.json"
        try:
            data = json.loads(cfg.read_text())
            name = data.get("model_name") or data.get("name")
            if name:
                return str(name)
        except (OSError, ValueError):
            pass
        parts = Path(self.path).parts
        return parts[-2] if parts[-1] == "model" and len(parts) > 1 else parts[-1]

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise ModelLoadError(f"model {self.path!r} does not report an embedding dimension")
        return int(dim)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 512)

    @property
    def normalized(self) -> bool:
        """True when the pipeline ends in a Normalize module (pooled vectors have unit norm)."""
        return any(type(m).__name__ == "Normalize" for m in self.model)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.path)
        return self._fingerprint

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, specials included, before truncation."""
        enc = self.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str], with_offsets: bool = False) -> Encoded:
        """Encode one batch in one forward pass (no grad). Longer texts are truncated to ``max_tokens``."""
        import torch

        texts = list(texts)
        if not texts:
            raise ValueError("encode() needs at least one text")
        features = self.model.preprocess(texts)
        features = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in features.items()}
        with torch.inference_mode():
            out = self.model(features)
        mask = out["attention_mask"].bool()
        tokens = out["token_embeddings"].float().masked_fill(~mask.unsqueeze(-1), 0.0)
        enc = Encoded(tokens=tokens, mask=mask, pooled=out["sentence_embedding"].float(), input_ids=out["input_ids"])
        if with_offsets:
            tok = self.tokenizer(
                texts, truncation=True, max_length=self.max_tokens, return_offsets_mapping=True, padding=False
            )
            enc.offsets = [[(int(a), int(b)) for a, b in row] for row in tok["offset_mapping"]]
            enc.word_ids = [tok.word_ids(i) for i in range(len(texts))]
            for i, row in enumerate(tok["input_ids"]):
                if len(row) != int(mask[i].sum()):
                    raise RuntimeError("tokenizer and model disagree on token counts; cannot map evidence")
        return enc

    def iter_encode(self, texts: Sequence[str], batch_size: int = 64) -> Iterator[tuple[list[int], Encoded]]:
        """Encode many texts in length-sorted batches; yields ``(indices into texts, batch)``."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield idx, self.encode([texts[i] for i in idx])
