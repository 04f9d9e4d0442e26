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
from jobskills.esco import ESCO_TAXONOMY
from jobskills.fileio import atomic_write_text
from jobskills.scoring import ScoreConfig
from jobskills.threshold import FALLBACK_THRESHOLD

__all__ = [
    "MODEL_CONFIG_NAME", "FALLBACK_THRESHOLD", "ModelConfig", "calibration_path", "load_model_config", "save_model_config",
]

logger = logging.getLogger(__name__)

MODEL_CONFIG_NAME = "jobskills_config.json"
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


def calibration_path(home: Path, fingerprint: str, taxonomy: str | None = None) -> Path:
    """Where ``jobskills calibrate`` keeps a model's settings for a taxonomy (ESCO: ``<fingerprint>.json``)."""
    from jobskills.taxonomy import DEFAULT_TAXONOMY, check_taxonomy_name

    suffix = "" if check_taxonomy_name(taxonomy) == DEFAULT_TAXONOMY else f"-{taxonomy}"
    return Path(home) / "calibration" / f"{fingerprint}{suffix}.json"


def load_model_config(model_path: str, fingerprint: str, home: Path | None = None, taxonomy: str | None = None) -> ModelConfig:
    """First found: this home's calibration for (model, taxonomy), the model folder's
    ``jobskills_config.json`` (ESCO only), the packaged default for this exact model, the generic fallback.
    A threshold belongs to a (model, taxonomy) pair: another taxonomy's labels score differently."""
    custom = taxonomy not in (None, ESCO_TAXONOMY)
    candidates = []
    if home is not None:
        candidates.append((calibration_path(home, fingerprint, taxonomy), "calibration"))
    if not custom:
        candidates.append((Path(model_path) / MODEL_CONFIG_NAME, "model config"))
    for path, what in candidates:
        if path.is_file():
            try:
                return _from_dict(json.loads(path.read_text(encoding="utf-8")), f"{what} {path}")
            except (OSError, ValueError) as exc:
                raise ModelLoadError(f"{path} is unreadable ({exc}); fix or delete it") from exc
    try:
        defaults = json.loads(_DEFAULTS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        defaults = {}
    if fingerprint in defaults:
        cfg = _from_dict(defaults[fingerprint], "packaged default")
        if custom:  # keep the scorer settings, but the threshold was chosen on ESCO
            return ModelConfig(score=cfg.score, threshold=cfg.threshold, threshold_source=f"packaged ESCO default (calibrate on {taxonomy})")
        return cfg
    logger.warning(
        "model %s has no calibrated threshold; using %.2f (run `jobskills calibrate` when available)", model_path, FALLBACK_THRESHOLD
    )
    return ModelConfig()


def save_model_config(path: Path, cfg: ModelConfig) -> Path:
    """Write a model config atomically: a model folder (its ``jobskills_config.json``) or a file path."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_CONFIG_NAME
    atomic_write_text(path, json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    return path
