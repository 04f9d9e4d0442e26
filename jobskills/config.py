"""Settings, resolved once: CLI option > ``JOBSKILLS_*`` / ``QDRANT_*`` env > ``<home>/config.json`` > default.

Settings are a frozen dataclass so a value cannot drift between the index build and
the query that checks it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from jobskills.errors import ConfigError

__all__ = ["Settings", "load_settings", "ENGINES"]

logger = logging.getLogger(__name__)

#: Embedded engines: ``edge`` (qdrant-edge-py, Qdrant's Rust engine in-process, the default),
#: ``local`` (qdrant-client local mode, pure Python), ``memory`` (qdrant-client ``:memory:``, tests).
#: ``QDRANT_URL`` overrides all three and talks to a Qdrant server or cluster.
ENGINES = ("edge", "local", "memory")

_ENV = {
    "home": "JOBSKILLS_HOME",
    "model": "JOBSKILLS_MODEL",
    "title_model": "JOBSKILLS_TITLE_MODEL",
    "title_examples": "JOBSKILLS_TITLE_EXAMPLES",
    "engine": "JOBSKILLS_ENGINE",
    "device": "JOBSKILLS_DEVICE",
    "encoder_backend": "JOBSKILLS_ENCODER_BACKEND",
    "prefix": "JOBSKILLS_PREFIX",
    "threshold": "JOBSKILLS_THRESHOLD",
    "batch_size": "JOBSKILLS_BATCH_SIZE",
    "qdrant_url": "QDRANT_URL",
    "qdrant_api_key": "QDRANT_API_KEY",
    "shard_number": "JOBSKILLS_SHARD_NUMBER",
    "replication_factor": "JOBSKILLS_REPLICATION_FACTOR",
    "write_consistency_factor": "JOBSKILLS_WRITE_CONSISTENCY_FACTOR",
    "api_key": "JOBSKILLS_API_KEY",
    "reload_s": "JOBSKILLS_RELOAD_S",
}


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to find the model and the store.

    Attributes:
        home: folder for the embedded store, caches and config (``JOBSKILLS_HOME``, default ``~/.jobskills``).
        model: a sentence-transformers folder or a packaged name (``jobskills-minilm``, ``minilm``; see
            :mod:`jobskills.models`); ``None`` means the packaged default, ``jobskills-minilm``.
        title_model: the model of the job-title index (a packaged name or a folder, e.g. from ``jobskills
            train-titles``); ``None``: the packaged ``jobskills-minilm-titles``.
        title_examples: example job titles the titles index holds besides ESCO's (see
            :mod:`jobskills.title_examples`): packaged names or JSONL paths, comma-separated, or ``none``;
            ``None``: the packaged ``jobbert-validation`` set.
        encoder_backend: how the encoder runs the weights: ``fp32``, ``int8``, ``int8-mixed`` (int8 Linear layers in
            torch) or ``onnx-int8`` (ONNX Runtime, int8 weights), all on the CPU; see :mod:`jobskills.encoder`. An index is bound to the backend that built it.
            ``None``: what the model folder says (a variant folder keeps its backend), else ``fp32``.
        engine: embedded engine when ``qdrant_url`` is unset (see :data:`ENGINES`).
        qdrant_url: a Qdrant server or cluster; when set the embedded engines are not used.
        threshold: overrides the threshold stored with the index (``None`` = use the stored one).
        api_key: when set, ``serve`` answers only requests that carry it (``Authorization: Bearer KEY`` or
            ``X-API-Key: KEY``); ``/healthz`` stays open for health checks.
        reload_s: how often ``serve`` looks for a newly published (skills, titles) pair and moves to it;
            0 pins the pair it started with.
    """

    home: Path = field(default_factory=lambda: Path("~/.jobskills").expanduser())
    model: str | None = None
    title_model: str | None = None
    title_examples: str | None = None
    engine: str = "edge"
    device: str = "cpu"
    encoder_backend: str | None = None
    prefix: str = "jobskills"
    threshold: float | None = None
    batch_size: int = 64
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1
    api_key: str | None = None
    reload_s: float = 5.0
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.encoder_backend is not None:
            from jobskills.encoder import check_backend  # light: torch is imported only inside its functions

            check_backend(self.encoder_backend)
        if self.title_examples is not None:
            from jobskills.errors import InputError
            from jobskills.title_examples import example_names

            try:
                example_names(self.title_examples)
            except InputError as exc:
                raise ConfigError(str(exc)) from None
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold {self.threshold} is outside [-1, 1]")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.reload_s >= 0:
            raise ConfigError(f"reload_s must be >= 0 seconds, got {self.reload_s}")
        for name in ("shard_number", "replication_factor", "write_consistency_factor"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")

    @property
    def model_path(self) -> str:
        """The model folder: a packaged name is laid out under ``<home>/models`` on first use."""
        from jobskills.models import resolve_model

        return resolve_model(self.model, self.home, self.encoder_backend)

    @property
    def title_model_path(self) -> str:
        """The job-title model folder: ``title_model`` (a packaged name or a folder), else the packaged
        ``jobskills-minilm-titles``; always fp32 (the encoder backend applies to the skills model)."""
        from jobskills.models import DEFAULT_TITLE_MODEL, resolve_model

        return resolve_model(self.title_model or DEFAULT_TITLE_MODEL, self.home, "fp32")

    @property
    def index_dir(self) -> Path:
        """Where the embedded engine keeps its collections."""
        return self.home / "index"

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sources"}
        out["home"] = str(self.home)
        for secret in ("qdrant_api_key", "api_key"):
            if out.get(secret):
                out[secret] = "***"
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> "Settings":
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "sources"}
        unknown = set(data) - set(known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key, raw in data.items():
            values[key] = _coerce(key, raw)
        return cls(**values, sources=dict(sources or {}))


_INT = {"batch_size", "shard_number", "replication_factor", "write_consistency_factor"}


def _coerce(key: str, raw: Any) -> Any:
    if raw is None:
        return None
    try:
        if key == "home":
            return Path(str(raw)).expanduser()
        if key in _INT:
            return int(raw)
        if key in ("threshold", "reload_s"):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {key}={raw!r} is not a valid {'integer' if key in _INT else 'number'}") from exc
    if key == "model":
        return str(Path(str(raw)).expanduser())
    return str(raw)


def load_settings(overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings by precedence: overrides (CLI) > environment > ``<home>/config.json`` > defaults.

    ``None`` values in ``overrides`` mean "not given on the command line".
    """
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    home_raw = overrides.get("home") or env.get(_ENV["home"]) or "~/.jobskills"
    home_path = Path(str(home_raw)).expanduser()
    if home_path.exists() and not home_path.is_dir():
        raise ConfigError(f"the home {str(home_path)!r} is a file, not a folder; pass --home with a folder (or set JOBSKILLS_HOME)")
    config_file = home_path / "config.json"
    if config_file.is_file():
        try:
            file_values = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {config_file}: {exc}; fix or delete the file") from exc
        if not isinstance(file_values, dict):
            raise ConfigError(f"{config_file} must hold a JSON object")
        for key, val in file_values.items():
            values[key] = val
            sources[key] = f"config file {config_file}"
    for key, var in _ENV.items():
        if env.get(var):
            values[key] = env[var]
            sources[key] = f"env {var}"
    for key, val in overrides.items():
        values[key] = val
        sources[key] = "command line"
    settings = Settings.from_dict(values, sources)
    for key, src in sources.items():
        logger.debug("setting %s from %s", key, src)
    return settings
