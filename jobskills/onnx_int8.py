"""ONNX Runtime in int8: the ``onnx-int8`` encoder backend (see :mod:`jobskills.encoder`).

The transformer of a sentence-transformers folder is exported once to ONNX (torch's exporter), its matrix
weights are quantised to int8 with one scale per output channel (``onnxruntime.quantization.quantize_dynamic``),
and ONNX Runtime runs it on the CPU; pooling and normalisation stay the model's own modules. ONNX Runtime
quantises a MatMul's activations with one range for its whole input, so each text runs alone, on its real
tokens only, on one thread: a text's vectors then depend on that text alone, as the index needs (a label
indexed in a batch must get the vectors a query of that label gets), and with several threads texts run side
by side. On 2 AMD EPYC cores the shipped MiniLM encoded job-ad sentences 1.7x (1 thread) and 1.8x (2 threads)
as fast as torch fp32 (``benchmarks/README.md``).

The quantised file is kept in the backend's variant folder (:func:`jobskills.models.backend_variant`) as
:data:`ONNX_FILE`; the ``jobskills_`` prefix keeps it out of the weights' fingerprint. A plain folder loaded
with this backend gets a fresh export in a temporary folder instead, since a user's folder is never written.
How this backend quantises is named by :data:`jobskills.encoder.ONNX_SCHEME`, part of its fingerprint.
Needs the ``onnx`` extra (``onnxruntime`` and ``onnx``); imported only when the backend is used.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from jobskills.errors import ConfigError, ModelLoadError

__all__ = ["ONNX_FILE", "OrtTransformer", "require", "export_int8"]

logger = logging.getLogger(__name__)

#: The quantised transformer inside a variant folder.
ONNX_FILE = "jobskills_onnx_int8.onnx"
#: The model inputs the export accepts, in this order, when the tokenizer gives them.
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17


def require() -> None:
    """Raise a one-line :class:`ConfigError` when the packages this backend needs are missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the onnx-int8 encoder backend needs onnxruntime and onnx ({exc.name} is missing): "
                          "pip install 'jobskills[onnx]'") from exc


class _DropOnnxRuntimeAdvice(logging.Filter):
    """Drops the quantiser's warnings (pre-processing advice) logged through the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.WARNING and "onnxruntime" in record.pathname)


def _input_names(model: Any) -> list[str]:
    features = model.preprocess(["a"])
    names = [k for k in _INPUTS if k in features]
    if "input_ids" not in names:
        raise ModelLoadError("the onnx-int8 backend needs a text model whose tokenizer gives input_ids")
    return names


def export_int8(model: Any, target: Path) -> list[str]:
    """Export ``model``'s transformer (a SentenceTransformer's first module) to ONNX and quantise it to ``target``.

    Written to a temporary file beside ``target`` and renamed into place, so a reader never sees half a file and
    two processes exporting at once both end with the same complete one. Returns the input names."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = _input_names(model)
    transformer = model[0].auto_model

    class _LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args)), return_dict=True).last_hidden_state

    sample = model.preprocess(["an example sentence for the export"])
    args = tuple(sample[k] for k in names)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".onnx-export-", dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        staged = Path(tmp) / target.name
        axes = {k: {0: "batch", 1: "tokens"} for k in (*names, "last_hidden_state")}
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings are about shapes we keep dynamic
            torch.onnx.export(_LastHidden().eval(), args, str(fp32), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=_OPSET,
                              dynamo=False)
        # DefaultTensorType: shape inference cannot type every MatMul output of a traced graph; they are float
        quiet = _DropOnnxRuntimeAdvice()
        logging.getLogger().addFilter(quiet)  # the quantiser logs advice on the root logger, i.e. to the user's stderr
        try:
            quantize_dynamic(str(fp32), str(staged), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": 1})
        finally:
            logging.getLogger().removeFilter(quiet)
        os.replace(staged, target)
    logger.info("onnx-int8: exported and quantised the transformer to %s", target)
    return names


class OrtTransformer:
    """The quantised transformer in ONNX Runtime: token embeddings of a pass, one text per run.

    ``torch.set_num_threads`` governs this backend as it governs the others: every text runs on one thread of a
    one-thread session, and with N torch threads N texts run side by side (an ONNX Runtime session may run
    concurrently), so the vectors are the same at any thread count. Idle ORT threads do not spin."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.path = Path(path)
        self.names = names
        self._session: Any = None
        self._pools: dict[int, Any] = {}  # per torch thread count
        self._bytes: bytes | None = None  # the model itself when its file was temporary

    @classmethod
    def load(cls, model: Any, folder: Path, cache: bool) -> "OrtTransformer":
        """The quantised transformer of ``model`` (loaded from ``folder``): the cached file when ``cache`` and
        present, else a new export (kept in ``folder`` when ``cache``, else in a temporary folder)."""
        require()
        names = _input_names(model)
        if cache:
            target = folder / ONNX_FILE
            if not target.is_file():
                export_int8(model, target)
            return cls(target, names)
        tmp = Path(tempfile.mkdtemp(prefix="jobskills-onnx-int8-"))
        try:
            export_int8(model, tmp / ONNX_FILE)
            self = cls(tmp / ONNX_FILE, names)
            self._bytes = (tmp / ONNX_FILE).read_bytes()  # sessions load from memory; the file can go
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self

    def session(self) -> Any:
        """The one-thread session every text runs on, made on first use."""
        import onnxruntime as ort

        if self._session is None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.log_severity_level = 3
            try:
                source = self._bytes if self._bytes is not None else str(self.path)
                self._session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # ORT raises its own types for a bad file
                raise ModelLoadError(f"cannot load {self.path} in ONNX Runtime: {exc}; delete it and it is made again") from exc
        return self._session

    def _pool(self, workers: int) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        pool = self._pools.get(workers)
        if pool is None:
            pool = self._pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="jobskills-onnx")
        return pool

    def token_embeddings(self, features: dict[str, Any]) -> Any:
        """``(n, width, dim)`` float32 last-layer token vectors of a tokenised batch, zero at padding. Each text runs
        alone on its real tokens, on one thread; with several torch threads, texts run side by side (a sentence's
        matrices are too small to share between threads: 2 threads on one text gained 4 %)."""
        import numpy as np
        import torch

        mask = features["attention_mask"].bool()
        n, width = mask.shape
        arrays = {k: features[k].numpy() for k in self.names}
        cols = [np.flatnonzero(row) for row in mask.numpy()]
        threads = max(1, torch.get_num_threads())
        sess = self.session()  # one thread per text: a text's vectors never depend on the thread count

        def one(i: int) -> Any:
            return sess.run(None, {k: np.ascontiguousarray(a[i, cols[i]][None]) for k, a in arrays.items()})[0][0]

        if threads > 1 and n > 1:
            hidden = list(self._pool(threads).map(one, range(n)))
        else:
            hidden = [one(i) for i in range(n)]
        out = np.zeros((n, width, hidden[0].shape[-1]), dtype=np.float32)
        for i, h in enumerate(hidden):
            out[i, cols[i]] = h
        return torch.from_numpy(out)
