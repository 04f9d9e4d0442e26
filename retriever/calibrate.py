"""Threshold calibration: sweep, pick the best F1, store the choice with the index and the model."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from jobskills.errors import InputError
from jobskills.esco import ESCO_TAXONOMY
from jobskills.evaluation import ExtractionExample, calibration_curve
from jobskills.fileio import file_sha256
from jobskills.modelconfig import ModelConfig, calibration_path, save_model_config
from jobskills.threshold import SWEEP
from indexer.build import record_threshold
from retriever.evaluate import RetrieverRanker

if TYPE_CHECKING:
    from retriever.pipeline import Retriever

__all__ = ["sweep_thresholds", "store_calibration", "plot_curve"]

logger = logging.getLogger(__name__)


def sweep_thresholds(
    r: "Retriever", examples: Sequence[ExtractionExample], lo: float = SWEEP[0], hi: float = SWEEP[1], step: float = SWEEP[2]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """F1 curve (redundancy filter on) of the live index over ``lo..hi`` in ``step`` and its best point
    (:func:`jobskills.evaluation.calibration_curve`)."""
    return calibration_curve(RetrieverRanker(r), examples, lo, hi, step)


def store_calibration(
    r: "Retriever", best: dict[str, Any], bench: Path, write_model: bool = False
) -> dict[str, Any]:
    """Record the threshold in the live skills index manifest and in this home's calibration for the model
    (and in the model folder's ``jobskills_config.json`` when ``write_model``)."""
    bench = Path(bench).resolve()
    record = {
        "path": str(bench),
        "sha256": file_sha256(bench),
        "threshold": best["threshold"],
        "f1": best["f1"],
        "precision": best["precision"],
        "recall": best["recall"],
        "at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    source = f"calibrate {bench.name} (best F1 {best['f1']:.4f})"
    r.skills.manifest = record_threshold(r.store, r.skills.kind, r.skills.version, best["threshold"], source, record)
    cfg = ModelConfig(score=r.score_config, threshold=best["threshold"], threshold_source=source, extra={"calibrated_on": record})
    written = [str(save_model_config(calibration_path(r.settings.home, r.encoder.fingerprint, r.taxonomy), cfg))]
    if write_model and r.taxonomy == ESCO_TAXONOMY:
        written.append(str(save_model_config(Path(r.encoder.path), cfg)))
    logger.info("stored threshold %.2f in index %s and %s", best["threshold"], r.skills.version, ", ".join(written))
    return {"index_version": r.skills.version, "model_config": written, **record}


def plot_curve(curve: Sequence[dict[str, Any]], best: dict[str, Any], path: Path) -> None:
    """Precision, recall and F1 against the threshold, as a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install matplotlib") from None
    ts = [c["threshold"] for c in curve]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("precision", "recall", "f1"):
        ax.plot(ts, [c[key] for c in curve], label=key)
    ax.axvline(best["threshold"], color="grey", linestyle="--", label=f"best F1 at {best['threshold']:.2f}")
    ax.set_xlabel("threshold")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
