"""Long work is never silent (issue 16.16): a rich bar on a terminal, plain lines in a log, the loss while training."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

from jobskills import cli_common
from jobskills.cli_common import ProgressReporter, progress_bar


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_line_every_interval_and_one_at_the_end():
    out, clock = io.StringIO(), _Clock()
    rep = ProgressReporter(every=30.0, stream=out, clock=clock)
    rep("train", 0, 120)
    clock.now += 10
    rep("train", 10, 120)
    assert out.getvalue() == ""  # short work prints nothing
    clock.now += 25
    rep.note("train", "loss 0.4213")
    rep("train", 40, 120)
    clock.now += 5
    rep("train", 45, 120)  # 5 s after the last line: not yet
    rep("train", 120, 120)  # the end closes the run
    rep("train", 120, 120)
    assert out.getvalue().splitlines() == ["train: 40/120 (33%), loss 0.4213", "train: 120/120 (100%), loss 0.4213"]


def test_a_quick_run_prints_nothing_and_json_prints_nothing(capsys):
    with progress_bar(True) as update:  # pytest's stderr is no terminal: plain lines, none for a quick run
        for i in range(1, 11):
            update("skills", i, 10)
    with progress_bar(False) as update:
        update("skills", 5, 10)
        update.note("skills", "x")
    assert capsys.readouterr() == ("", "")


def test_plain_lines_go_to_stderr_never_stdout(capsys, monkeypatch):
    monkeypatch.setattr(cli_common, "PROGRESS_EVERY", 0.0)
    with progress_bar(True) as update:
        update("sentences", 3, 6)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "sentences: 3/6 (50%)\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_shows_the_note(monkeypatch):
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.setenv("COLUMNS", "120")
    with progress_bar(True) as update:
        update("train", 0, 120)
        update.note("train", "loss 0.4213, dev RP@5 0.6100")
        update("train", 60, 120)
    text = tty.getvalue()
    assert "train" in text and "60/120" in text and "loss 0.4213, dev RP@5 0.6100" in text


def test_training_progress_carries_the_loss_and_dev_score():
    from trainer.train import _ProgressCallback

    calls, notes = [], []

    class Recorder:
        def __call__(self, task, done, total):
            calls.append((task, done, total))

        def note(self, task, text):
            notes.append((task, text))

    log: list = []
    cb = _ProgressCallback(Recorder(), log)
    state = SimpleNamespace(global_step=10, max_steps=120)
    cb.on_step_end(None, state, None)
    cb.on_log(None, state, None, logs={"loss": 0.5, "learning_rate": 1e-5})
    state.global_step = 20
    cb.on_log(None, state, None, logs={"eval_dev_rp@5": 0.61, "eval_dev_mrr": 0.5})
    assert notes == [("train", "loss 0.5000"), ("train", "loss 0.5000, dev RP@5 0.6100")]
    assert calls == [("train", 10, 120), ("train", 10, 120), ("train", 20, 120)]
    assert [row["step"] for row in log] == [10, 20]
    # a plain (task, done, total) callable, as the library accepts, still works
    seen = []
    plain = _ProgressCallback(lambda t, d, n: seen.append(d), [])
    plain.on_log(None, state, None, logs={"loss": 0.1})
    plain.on_step_end(None, state, None)
    assert seen == [20, 20]
