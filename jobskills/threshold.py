"""The threshold: where its value comes from, stated once.

A query's threshold, first found wins (:func:`resolve_threshold`):

1. the call's own argument (``Retriever.extract(threshold=...)``, the API's ``threshold`` field);
2. the settings: ``extract --threshold``, then ``JOBSKILLS_THRESHOLD``, then ``<home>/config.json``
   (the usual settings precedence, see :mod:`jobskills.config`);
3. the live index's manifest, fixed when the index was built (:func:`index_threshold`), or later by
   ``jobskills calibrate``;
4. :data:`FALLBACK_THRESHOLD`.

The manifest's value, at build time, first found wins (:func:`index_threshold`):

1. ``index --threshold``;
2. this home's calibration for (model, taxonomy), written by ``jobskills calibrate`` or ``train``;
3. the model folder's ``jobskills_config.json`` (ESCO only);
4. the packaged default for that exact model (``jobskills/data/model_defaults.json``);
5. :data:`FALLBACK_THRESHOLD`.

Steps 2-5 are :func:`jobskills.modelconfig.load_model_config`. Every answer carries the value and its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # modelconfig imports the scorer (torch); this module stays light for the CLI
    from jobskills.config import Settings
    from jobskills.modelconfig import ModelConfig

__all__ = ["Threshold", "resolve_threshold", "index_threshold", "SWEEP", "sweep_values", "FALLBACK_THRESHOLD"]

#: Used only when nothing else gives a threshold (a model with no config, no calibration); calibrate it.
FALLBACK_THRESHOLD = 0.5

#: The calibration sweep: lowest, highest, step. Used by ``calibrate``, the trainer and evaluation alike.
SWEEP = (0.20, 0.90, 0.01)


@dataclass(frozen=True)
class Threshold:
    """A threshold and where it came from (shown under ``-v`` and in ``--json`` provenance)."""

    value: float
    source: str


def resolve_threshold(argument: float | None, settings: "Settings | None", manifest: Mapping[str, Any] | None) -> Threshold:
    """The threshold a query uses (see the module docstring for the order)."""
    if argument is not None:
        return Threshold(float(argument), "argument")
    if settings is not None and settings.threshold is not None:
        return Threshold(float(settings.threshold), settings.sources.get("threshold", "settings"))
    if manifest and manifest.get("threshold") is not None:
        return Threshold(float(manifest["threshold"]), f"index manifest ({manifest.get('threshold_source') or 'unknown'})")
    return Threshold(FALLBACK_THRESHOLD, "fallback")


def index_threshold(option: float | None, model_cfg: "ModelConfig") -> Threshold:
    """The threshold an index build records in its manifest: ``index --threshold``, else the model's config
    chain (:func:`jobskills.modelconfig.load_model_config`)."""
    if option is not None:
        return Threshold(float(option), "command line")
    return Threshold(model_cfg.threshold, model_cfg.threshold_source)


def sweep_values(lo: float = SWEEP[0], hi: float = SWEEP[1], step: float = SWEEP[2]) -> list[float]:
    """The thresholds a calibration tries, ``lo`` to ``hi`` inclusive."""
    if not (step > 0 and hi >= lo):
        raise ValueError(f"bad sweep {lo}..{hi} step {step}")
    n = int(round((hi - lo) / step)) + 1
    return [round(lo + i * step, 4) for i in range(n)]
