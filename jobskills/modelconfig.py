"""Settings that travel with a model folder: ``jobskills_config.json`` beside the sentence-transformers files.

It holds the scorer convention (:class:`~jobskills.scoring.ScoreConfig`) and the calibrated threshold.
A model without one (e.g. the packaged MiniLM) gets the defaults chosen for it on the development set,
looked up by weight fingerprint in ``jobskills/data/model_defaults.json``, else a generic fallback.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobskills.errors import ModelLoadError
from jobskills.scoring import ScoreConfig

__all__ = ["MODEL_CONFIG_NAME", "FALLBACK_THRESHOLD", "ModelConfig", "load_model_config", "save_model_config"]

logger = logging.getLogger(__name__)

MODEL_CONFIG_NAME = "jobskills_config.json"
#: Used only for a model that has neither its own config nor a packaged default; calibrate it.
FALLBACK_THRESHOLD = 0.5
_DEFAULTS = Path(__file__).resolve().parent / "data" / "model_defaults.json"


@dataclass(frozen=True)
class ModelConfig:
    score: ScoreConfig = ScoreConfig()
    threshold: float = FALLBACK_THRESHOLD
    threshold_source: str = "fallback"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score.to_dict(), "threshold": self.threshold, "threshold_source": self.threshold_source, **self.extra}


def _from_dict(data: dict[str, Any], source: str) -> ModelConfig:
    extra = {k: v for k, v in data.items() if k not in ("score", "threshold", "threshold_source")}
    return ModelConfig(
        score=ScoreConfig.from_dict(data.get("score")),
        threshold=float(data.get("threshold", FALLBACK_THRESHOLD)),
        threshold_source=str(data.get("threshold_source", source)),
        extra=extra,
    )


def load_model_config(model_path: str, fingerprint: str) -> ModelConfig:
    """The model's own config, else the packaged default for this exact model, else the fallback."""
    own = Path(model_path) / MODEL_CONFIG_NAME
    if own.is_file():
        try:
            return _from_dict(json.loads(own.read_text(encoding="utf-8")), f"model config {own}")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{own} is unreadable ({exc}); fix or delete it") from exc
    try:
        defaults = json.loads(_DEFAULTS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        defaults = {}
    if fingerprint in defaults:
        return _from_dict(defaults[fingerprint], "packaged default")
    logger.warning(
        "model %s has no calibrated threshold; using %.2f (run `jobskills calibrate` when available)", model_path, FALLBACK_THRESHOLD
    )
    return ModelConfig()


def save_model_config(model_path: str, cfg: ModelConfig) -> Path:
    """Write ``jobskills_config.json`` atomically into a model folder."""
    from jobskills.store import _atomic_write

    path = Path(model_path) / MODEL_CONFIG_NAME
    _atomic_write(path, json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    return path
