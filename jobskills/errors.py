"""Project errors. Each message says what went wrong, why, and how to fix it.

The CLI turns any :class:`JobskillsError` into one stderr line and exit code 1
(``JOBSKILLS_DEBUG=1`` brings the traceback back).
"""

from __future__ import annotations

__all__ = [
    "JobskillsError",
    "ConfigError",
    "ModelLoadError",
    "IndexNotFoundError",
    "IndexMismatchError",
    "StoreError",
    "StoreLockedError",
    "InputError",
    "TrainError",
]


class JobskillsError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(JobskillsError):
    """A setting is invalid (bad env var, bad config file, bad option)."""


class ModelLoadError(JobskillsError):
    """The model folder does not exist or is not a sentence-transformers model."""


class IndexNotFoundError(JobskillsError):
    """No published index exists yet for this store."""


class IndexMismatchError(JobskillsError):
    """The index was built with another model, dimension, ESCO version or scorer."""


class StoreError(JobskillsError):
    """The Qdrant store could not be reached or written."""


class StoreLockedError(StoreError):
    """Another process holds the embedded store's lock."""


class InputError(JobskillsError):
    """User input is unusable (empty text, unreadable file, bad encoding)."""


class TrainError(JobskillsError):
    """Training could not start or finish; the message says what was kept (model, checkpoints, live index)."""
