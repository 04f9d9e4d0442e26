"""Encoder: one forward pass gives a text's token embeddings (for ConTeXT) and its pooled embedding.

Wraps a sentence-transformers model folder. Token embeddings are the last transformer layer's
vectors exactly as sentence-transformers returns them (``output_value="token_embeddings"``): special
tokens included, not normalised; padding is returned as a mask. Pooled embeddings come from the
model's own pipeline (pooling, then Normalize if the model has it). No model hub is ever contacted.

Backends (:data:`BACKENDS`) trade a little accuracy for CPU speed: ``fp32`` runs the weights as stored;
``int8`` and ``int8-mixed`` run the transformer's Linear layers in int8 (:class:`jobskills.int8.RowInt8Linear`: per-channel
weights, each token's activations scaled by its own range) at load time, ``int8-mixed`` keeping the
feed-forward down-projections in fp32 (their inputs, after GELU, have the outliers int8 handles worst).
``onnx-int8`` runs the transformer in ONNX Runtime with int8 weights (:mod:`jobskills.onnx_int8`, the ``onnx``
extra), one text per run. A quantised model runs each batch as a few passes without padding, one per token
count, so a text's vectors are the same in any batch, bit for bit.
A backend changes every vector, so it is part of the encoder's :attr:`Encoder.fingerprint`: an index
built with one backend is refused by an encoder with another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from jobskills.errors import ConfigError, ModelLoadError

__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "BACKEND_FILE", "Encoded", "Encoder", "backend_fingerprint", "check_backend",
    "model_fingerprint", "quantize", "read_backend", "resolve_device",
]

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")

#: Encoder backends: how the same weights are run (see the module docstring).
BACKENDS = ("fp32", "int8", "int8-mixed", "onnx-int8")
DEFAULT_BACKEND = "fp32"
#: A model folder that must run under a backend says so in this file (``{"backend": "int8", ...}``); the
#: ``jobskills_`` prefix keeps it out of :func:`model_fingerprint`, the backend enters the fingerprint itself.
BACKEND_FILE = "jobskills_backend.json"
#: How the int8 backends quantise activations; part of their fingerprint, so a change of scheme refuses old indexes.
INT8_SCHEME = "rows"
#: The same for ``onnx-int8`` (:mod:`jobskills.onnx_int8`): int8 weights per channel, activations per text.
ONNX_SCHEME = "ort-qint8-per-channel-per-text"


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else a :class:`ConfigError` naming them."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown encoder backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return backend


def read_backend(path: str | os.PathLike[str]) -> str | None:
    """The backend a model folder asks for in :data:`BACKEND_FILE`, or ``None`` (a plain folder)."""
    marker = Path(path) / BACKEND_FILE
    if not marker.is_file():
        return None
    try:
        backend = json.loads(marker.read_text(encoding="utf-8"))["backend"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{marker} is unreadable ({exc}); delete the folder and it is made again") from exc
    return check_backend(str(backend))


def backend_fingerprint(weights_fingerprint: str, backend: str) -> str:
    """The encoder's identity: the weights' fingerprint, unchanged for ``fp32`` (indexes built before backends
    existed stay valid), else a hash of (weights, backend), so int8 vectors never meet fp32 ones."""
    check_backend(backend)
    if backend == DEFAULT_BACKEND:
        return weights_fingerprint
    # "+rows": int8 with per-token activation scales; indexes from the earlier per-tensor int8 are refused
    scheme = ONNX_SCHEME if backend == "onnx-int8" else INT8_SCHEME
    return hashlib.sha256(f"{weights_fingerprint}+{backend}+{scheme}".encode()).hexdigest()[:16]


def _is_ffn_down(name: str) -> bool:
    """BERT-style names: ``....layer.N.output.dense`` is the FFN down-projection (``attention.output.dense`` is not)."""
    return name.endswith(".output.dense") and ".attention." not in name


def quantize(model: Any, backend: str) -> Any:
    """``model`` (a SentenceTransformer) with its Linear layers replaced, in place, by
    :class:`~jobskills.int8.RowInt8Linear` for ``backend``.

    Per-token scales keep the shipped model's token vectors at a mean cosine of 0.994 from fp32 on the HOUSE
    development sentences (torch's dynamic int8 with one scale per pass: 0.971).
    """
    import torch

    check_backend(backend)
    if backend == DEFAULT_BACKEND:
        return model
    if str(next(model.parameters()).device) != "cpu":
        raise ModelLoadError(f"the {backend} encoder backend runs on the CPU only; use --device cpu or --encoder-backend fp32")
    if backend == "onnx-int8":
        return model  # the Encoder runs the transformer in ONNX Runtime instead (jobskills.onnx_int8)
    from jobskills.int8 import RowInt8Linear

    targets = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and not (backend == "int8-mixed" and _is_ffn_down(name))
    ]
    if not targets:
        raise ModelLoadError(f"the model has no Linear layers to quantise for the {backend} backend")
    for name, module in targets:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, RowInt8Linear(module))
    return model


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


_TOKENIZER_LOCKS_GUARD = threading.Lock()


def _tokenizer_lock(tokenizer: Any) -> threading.Lock:
    """One lock per tokenizer object, shared by every Encoder over it (``Encoder.wrap`` reuses a model's)."""
    lock = getattr(tokenizer, "_jobskills_lock", None)
    if lock is None:
        with _TOKENIZER_LOCKS_GUARD:
            lock = getattr(tokenizer, "_jobskills_lock", None)
            if lock is None:
                lock = threading.Lock()
                tokenizer._jobskills_lock = lock
    return lock


class Encoder:
    """A sentence-transformers model loaded from a local folder.

    Args:
        path: model folder (``modules.json`` or a plain transformers ``config.json``).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        backend: one of :data:`BACKENDS`; ``None``: the one the folder asks for in :data:`BACKEND_FILE`
            (a variant folder made by :func:`jobskills.models.backend_variant`), else ``fp32``.
    """

    #: fp32 on the CPU: a pass takes texts down to this fraction shorter than its longest (see :meth:`encode`)
    pass_slack: float = 0.2

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", backend: str | None = None) -> None:
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
        self.backend = check_backend(backend) if backend is not None else (read_backend(folder) or DEFAULT_BACKEND)
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
        quantize(self.model, self.backend)
        self._ort: Any = None
        if self.backend == "onnx-int8":
            from jobskills.onnx_int8 import OrtTransformer

            # a missing package is a one-line error there; a variant folder (ours) keeps the export, a user's
            # folder is never written
            self._ort = OrtTransformer.load(self.model, folder, cache=read_backend(folder) == "onnx-int8")
        self.tokenizer = self.model.tokenizer
        if not getattr(self.tokenizer, "is_fast", False):
            raise ModelLoadError(f"model {self.path!r} has no fast tokenizer; evidence offsets need one")
        self._fingerprint: str | None = None
        self.name = self._model_name() + ("" if self.backend == DEFAULT_BACKEND else f"+{self.backend}")

    @classmethod
    def wrap(cls, model: Any, path: str | os.PathLike[str], name: str | None = None) -> "Encoder":
        """An encoder over a model already in memory (the trainer's, mid-training), read-only use."""
        self = cls.__new__(cls)
        self.model = model
        self.path = str(path)
        self.device = str(next(model.parameters()).device)
        self.tokenizer = model.tokenizer
        self.backend = DEFAULT_BACKEND  # training runs in fp32
        self._ort = None
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
        """Weights and backend: what an index records and checks (see :func:`backend_fingerprint`)."""
        if self._fingerprint is None:
            self._fingerprint = backend_fingerprint(model_fingerprint(self.path), self.backend)
        return self._fingerprint

    @property
    def _tokenizing(self) -> threading.Lock:
        """The lock every call of this tokenizer holds. A fast tokenizer keeps its padding and truncation
        settings in shared state that each call resets, so two threads calling it with different settings (a
        server counting a request's tokens while its batch worker encodes) can get ragged, unpadded output."""
        return _tokenizer_lock(self.tokenizer)

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each text's tokens, no special tokens, nothing truncated."""
        with self._tokenizing:
            tok = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, return_offsets_mapping=True,
                                 verbose=False)
        return list(tok["offset_mapping"])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, specials included, before truncation."""
        with self._tokenizing:
            enc = self.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str], with_offsets: bool = False) -> Encoded:
        """Encode one batch (no grad). Longer texts are truncated to ``max_tokens``.

        On the CPU the batch runs as passes of texts of about one token count (:meth:`_forward_grouped`): padded
        positions cost as much as real ones there, and a batch of one job ad's sentences is often half padding.
        On a GPU it runs as one padded pass."""
        import torch

        texts = list(texts)
        if not texts:
            raise ValueError("encode() needs at least one text")
        with self._tokenizing:
            features = self.model.preprocess(texts)
        features = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in features.items()}
        with torch.inference_mode():
            out = self._forward_grouped(features) if self.device == "cpu" else self.model(features)
        mask = out["attention_mask"].bool()
        tokens = out["token_embeddings"].float().masked_fill(~mask.unsqueeze(-1), 0.0)
        enc = Encoded(tokens=tokens, mask=mask, pooled=out["sentence_embedding"].float(), input_ids=out["input_ids"])
        if with_offsets:
            with self._tokenizing:
                tok = self.tokenizer(
                    texts, truncation=True, max_length=self.max_tokens, return_offsets_mapping=True, padding=False
                )
            enc.offsets = [[(int(a), int(b)) for a, b in row] for row in tok["offset_mapping"]]
            enc.word_ids = [tok.word_ids(i) for i in range(len(texts))]
            for i, row in enumerate(tok["input_ids"]):
                if len(row) != int(mask[i].sum()):
                    raise RuntimeError("tokenizer and model disagree on token counts; cannot map evidence")
        return enc

    def _forward_grouped(self, features: dict[str, Any]) -> dict[str, Any]:
        """Passes of texts of about one token count, each padded only to its own longest, then padded back together.

        In fp32 a pass takes texts down to :attr:`pass_slack` shorter than its longest, so few positions are
        padding and passes stay big enough for several threads; the vectors equal one padded pass's up to float
        rounding. A quantised model gets one pass per exact token count: its Linear layers are row-wise
        (:class:`~jobskills.int8.RowInt8Linear`) and such a pass has no padding, so a text's vectors do not depend
        on its batch-mates, and the index's vectors of a label are the ones a query of that label gets (the index
        smoke query checks it). A tokenizer that pads on the left gets one pass per text."""
        import torch

        mask = features["attention_mask"].bool()
        n, width = mask.shape
        lengths = mask.sum(dim=1)
        passes: list[tuple[list[int], "torch.Tensor"]] = []  # (texts, the token positions the pass keeps)
        if bool((mask == (torch.arange(width) < lengths.unsqueeze(1))).all()):
            slack = self.pass_slack if self.backend == DEFAULT_BACKEND else 0.0
            for i in torch.argsort(lengths, descending=True, stable=True).tolist():
                # longest first: with no slack, a text joins a pass only at its pass's length
                if passes and int(lengths[i]) >= (1.0 - slack) * len(passes[-1][1]):
                    passes[-1][0].append(i)
                else:
                    passes.append(([i], torch.arange(int(lengths[i]))))
        else:  # left padding: real tokens do not start each row
            passes = [([i], torch.nonzero(mask[i]).flatten()) for i in range(n)]
        tokens = None
        pooled: "torch.Tensor | None" = None
        # onnx-int8: the transformer runs each text alone anyway, so all of the batch's texts at once (side by side
        # on several threads); the passes then only pool
        ort_tokens = self._ort.token_embeddings(features) if self._ort is not None else None
        for members, cols in passes:
            idx = torch.tensor(members)
            group = {k: (v[idx][:, cols] if torch.is_tensor(v) and v.dim() == 2 and v.shape == (n, width) else v)
                     for k, v in features.items()}
            if ort_tokens is None:
                out = self.model(group)
            else:
                out = self._pool({**group, "token_embeddings": ort_tokens[idx][:, cols]})
            if tokens is None:
                tokens = out["token_embeddings"].new_zeros((n, width, out["token_embeddings"].shape[-1]))
                pooled = out["sentence_embedding"].new_empty((n, out["sentence_embedding"].shape[-1]))
            tokens[idx.unsqueeze(1), cols.unsqueeze(0)] = out["token_embeddings"]
            pooled[idx] = out["sentence_embedding"]
        return {"token_embeddings": tokens, "sentence_embedding": pooled,
                "attention_mask": features["attention_mask"], "input_ids": features["input_ids"]}

    def _pool(self, features: dict[str, Any]) -> dict[str, Any]:
        """The model's modules after the transformer (pooling, normalisation) on token embeddings made elsewhere
        (``onnx-int8``'s ONNX Runtime transformer)."""
        out = dict(features)
        for module in list(self.model)[1:]:
            out = module(out)
        return out

    def iter_encode(self, texts: Sequence[str], batch_size: int = 64) -> Iterator[tuple[list[int], Encoded]]:
        """Encode many texts in length-sorted batches; yields ``(indices into texts, batch)``."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield idx, self.encode([texts[i] for i in idx])
