"""What both training commands (``train`` and ``train-titles``) share: the base model folder, the device and
precision of a run, progress forwarding, and quiet transformers logging."""

from __future__ import annotations

import logging
from typing import Any, Callable

from transformers import TrainerCallback

from jobskills.errors import InputError

__all__ = ["Progress", "ProgressCallback", "base_model", "quiet", "training_device"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


def base_model(base: str | None, settings: Any) -> str:
    """The folder to train from: ``--base`` (else the settings' model) in fp32, whatever encoder backend is set.

    Training needs the full-precision weights: a set backend (``--encoder-backend``, env, config) or a quantised
    variant folder given as ``--base`` goes back to the fp32 source folder, never to a quantised model."""
    from jobskills.encoder import DEFAULT_BACKEND
    from jobskills.models import resolve_model

    return resolve_model(base or settings.model, settings.home, DEFAULT_BACKEND)


def training_device(requested: str) -> tuple[str, str]:
    """(device, precision): the device as :func:`jobskills.encoder.resolve_device` picks it, with bf16 on a
    CUDA card that has it (fp16 on older ones) and fp32 on the CPU."""
    from jobskills.encoder import resolve_device

    if requested not in ("auto", "cpu", "cuda") and not requested.startswith("cuda:"):
        raise InputError(f"--device must be auto, cpu or cuda, got {requested!r}")
    device = resolve_device(requested)
    if device == "cpu":
        return "cpu", "fp32"
    import torch

    return device, ("bf16" if torch.cuda.is_bf16_supported() else "fp16")


def quiet(trainer: Any) -> None:
    """transformers prints its logs on stdout when tqdm is off; stdout is for results (``--json``), and our
    callback already logs them."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback as _Printer

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(_Printer)


class ProgressCallback(TrainerCallback):
    """Forwards training steps to the CLI's progress (a bar on a terminal, periodic lines elsewhere), with the
    latest loss and dev RP@5 beside it: with tqdm off, this is all a long run shows. Keeps the log for the report."""

    def __init__(self, progress: Progress | None, log: list[dict[str, Any]]) -> None:
        self.progress = progress
        self.log = log
        self.loss: float | None = None
        self.rp5: float | None = None

    def _note(self) -> None:
        note = getattr(self.progress, "note", None)  # optional: a plain (task, done, total) callable has none
        parts = ([f"loss {self.loss:.4f}"] if self.loss is not None else []) + ([f"dev RP@5 {self.rp5:.4f}"] if self.rp5 is not None else [])
        if note and parts:
            note("train", ", ".join(parts))

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.progress:
            self.progress("train", state.global_step, state.max_steps)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if logs:
            self.log.append({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})
            logger.info("step %d: %s", state.global_step, logs)
            if isinstance(logs.get("loss"), (int, float)):
                self.loss = float(logs["loss"])
            rp5 = next((v for k, v in logs.items() if k.endswith("_rp@5") and isinstance(v, (int, float))), None)
            if rp5 is not None:
                self.rp5 = float(rp5)
            self._note()
            if self.progress:  # show the new note now, not at the next step
                self.progress("train", state.global_step, state.max_steps)
