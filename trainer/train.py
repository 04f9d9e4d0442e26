"""``jobskills train``: fine-tune the encoder with the ConTeXT objective, calibrate, rebuild the index.

Built on sentence-transformers' ``SentenceTransformerTrainer`` (training arguments, checkpoints, resume,
best-model selection) with :class:`trainer.loss.ContextMatchLoss` as the loss. The output is a plain
sentence-transformers folder plus ``jobskills_config.json`` (scorer, calibrated threshold, base model, data
fingerprint, metrics), usable with ``--model DIR`` anywhere.

After training, unless told not to: the threshold is calibrated on the dev set with the new model, new
versioned collections are built and smoke-tested *without* touching the live aliases, and only then are the
aliases switched. Any failure drops the new collections and leaves the previous index live.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import shlex
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from indexer.ranker import SkillRanker
from jobskills.config import Settings
from jobskills.errors import InputError, JobskillsError, TrainError
from jobskills.esco import Esco, load_esco
from jobskills.evaluation import Ranker
from jobskills.fileio import atomic_write_text, partial_folder, publish_folder
from jobskills.modelconfig import ModelConfig, load_model_config, save_model_config
from jobskills.scoring import SCORER_VERSION, ScoreConfig
from jobskills.taxonomy import DEFAULT_TAXONOMY
from trainer.common import Progress, ProgressCallback, base_model, quiet, training_device
from trainer.data import MAX_LABELS, Row, augment, data_fingerprint, esco_pairs, expand, load_pairs, mix_report

__all__ = ["TrainConfig", "TrainReport", "train", "build_dataset", "RankingEvaluator", "reindex"]

logger = logging.getLogger(__name__)

_ProgressCallback = ProgressCallback  # its older name (trainer.common holds it for both training commands)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on; saved beside the model."""

    data: tuple[str, ...] = ()
    esco: tuple[str, ...] = ("alt", "desc")
    base: str | None = None
    out: str | None = None
    epochs: float = 1.0
    batch_size: int = 256
    mini_batch_size: int = 32
    lr: float = 5e-5
    warmup_ratio: float = 0.05
    max_steps: int = -1
    max_pairs: int | None = None
    device: str = "auto"
    augment: float = 0.3
    temperature: float = 0.05
    max_seq_length: int = 96
    dev: str | None = None
    eval_steps: int | None = None
    seed: int = 0
    reindex: bool = True
    resume: bool = False
    keep_checkpoints: bool = False
    reindex_if_worse: bool = False
    data_repeat: int = 1  # passes over the --data files per pass over the ESCO pairs (small synth sets count more)
    freeze_embeddings: bool = False  # train the transformer layers only; the shipped form is then a small delta


@dataclass
class TrainReport:
    model: str
    dataset: dict[str, Any]
    steps: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"
    before: dict[str, float] | None = None
    after: dict[str, float] | None = None
    best_checkpoint: str | None = None
    threshold: float | None = None
    threshold_source: str = ""
    index: dict[str, Any] | None = None
    reindex_skipped: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _skill_index(esco: Esco) -> tuple[list[str], dict[str, int]]:
    uris = list(esco.skills)
    return uris, {u: i for i, u in enumerate(uris)}


def build_dataset(rows: Sequence[Row], esco: Esco, seed: int = 0) -> Any:
    """A ``datasets.Dataset`` with columns ``sentence``, ``skill`` (label text) and ``label`` (skill ids)."""
    from datasets import Dataset

    uris, index = _skill_index(esco)
    rng = random.Random(seed)
    sentences, skills, labels = [], [], []
    for r in rows:
        if r.target is None:  # a negative: its skill column is a placeholder the loss ignores
            target, text = -1, esco.skills[uris[rng.randrange(len(uris))]].label
        else:
            target, text = index[r.target], esco.skills[r.target].label
        others = [index[u] for u in sorted(r.present) if u != r.target and u in index][: MAX_LABELS - 1]
        sentences.append(r.text)
        skills.append(text)
        labels.append([target, *others] + [-1] * (MAX_LABELS - 1 - len(others)))
    return Dataset.from_dict({"sentence": sentences, "skill": skills, "label": labels})


class RankingEvaluator(BaseEvaluator):
    """RP@1/5/10 and MRR of a checkpoint on a skill-extraction dev set, ranking every taxonomy skill with the
    exact ConTeXT score (:class:`indexer.ranker.SkillRanker`): the metric code ``jobskills eval`` reports
    (:func:`jobskills.evaluation.ranking_metrics`)."""

    def __init__(self, examples: Sequence[Any], esco: Esco, score: ScoreConfig, name: str = "dev", batch_size: int = 128,
                 lengths: tuple[int, int] | None = None) -> None:
        from indexer.build import skill_items

        super().__init__()
        self.lengths = lengths  # (serving, training) max_seq_length: evaluate as the retriever will encode
        self.examples = list(examples)
        self.items = skill_items(esco)
        self.score = score
        self.name = name
        self.batch_size = batch_size
        self.greater_is_better = True
        self.primary_metric = f"{name}_rp@5"

    @contextmanager
    def _serving(self, model: Any) -> Iterator[None]:
        """Eval mode at the serving length for the duration; training mode and length come back after."""
        was_training = model.training
        model.eval()
        if self.lengths:
            model.max_seq_length = self.lengths[0]
        try:
            yield
        finally:
            model.train(was_training)
            if self.lengths and was_training:
                model.max_seq_length = self.lengths[1]

    def ranker(self, model: Any, path: str = "") -> SkillRanker:
        """All skill vectors of ``model`` at its serving length: what the metrics and the calibration rank."""
        from jobskills.encoder import Encoder

        with self._serving(model):
            return SkillRanker(Encoder.wrap(model, path or "training"), self.items, self.score, self.batch_size)

    def metrics(self, model: Any, path: str = "", ranker: SkillRanker | None = None) -> dict[str, float]:
        from jobskills.evaluation import ranking_metrics

        with self._serving(model):
            m = ranking_metrics(ranker or self.ranker(model, path), self.examples)
        return {k: float(v) for k, v in m.items() if k != "n_ranked"}

    def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        started = time.perf_counter()
        m = self.metrics(model)
        logger.info("dev ranking at epoch %s step %s: %s (%.0f s)", epoch, steps,
                    " ".join(f"{k} {v:.4f}" for k, v in m.items()), time.perf_counter() - started)
        return {f"{self.name}_{k}": v for k, v in m.items()}

    def store_metrics_in_model_card_data(self, *args: Any, **kwargs: Any) -> None:
        return None

    @property
    def description(self) -> str:
        return "ConTeXT ranking (RP@K, MRR)"


def _default_out(settings: Settings, base_name: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return Path(settings.home) / "models" / f"{base_name}-context-{stamp}"


def train(settings: Settings, cfg: TrainConfig, progress: Progress | None = None, esco: Esco | None = None) -> TrainReport:
    """Run one training: data, fine-tuning, model folder, calibration and (unless ``cfg.reindex`` is off)
    the index rebuild. Raises :class:`TrainError` with what was kept when a late step fails."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    if cfg.batch_size < 2:
        raise InputError("--batch-size must be at least 2 (in-batch negatives)")
    if cfg.mini_batch_size < 0 or cfg.epochs <= 0 or cfg.lr <= 0:
        raise InputError("--epochs and --lr must be positive and --mini-batch-size at least 0 (0: no gradient caching)")
    try:
        import datasets  # noqa: F401
        import transformers  # noqa: F401
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    except ImportError as exc:
        raise TrainError(f"training needs the train extra: pip install -e '.[train]' ({exc})") from exc
    from jobskills.encoder import Encoder
    from trainer.loss import ContextLossConfig, ContextMatchLoss

    esco = esco or load_esco()
    base = base_model(cfg.base, settings)  # fp32 whatever the backend: training never starts from int8
    device, precision = training_device(cfg.device)
    encoder = Encoder(base, device=device)
    base_cfg = load_model_config(encoder.path, encoder.fingerprint, settings.home, esco.name)
    out = Path(cfg.out).expanduser() if cfg.out else _default_out(settings, Path(encoder.path).name)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out {out} already holds files; pick a new folder (a finished model is never overwritten)")
    ckpt_dir = out.with_name(out.name + ".checkpoints")
    if not cfg.resume and ckpt_dir.exists() and any(ckpt_dir.glob("checkpoint-*")):
        raise InputError(f"{ckpt_dir} holds checkpoints of an interrupted run; pass --resume to continue it, or delete it")

    # ---- data
    pairs = []
    if cfg.esco:
        pairs += esco_pairs(esco, cfg.esco, seed=cfg.seed)
    if cfg.data_repeat < 1:
        raise InputError("--data-repeat must be at least 1")
    for path in cfg.data:
        pairs += load_pairs(path, esco) * cfg.data_repeat
    if not pairs:
        raise InputError("no training pairs: pass --data FILE or keep the ESCO-derived pairs (--esco alt,desc)")
    rng = random.Random(cfg.seed)
    if cfg.max_pairs is not None and len(pairs) > cfg.max_pairs:
        pairs = rng.sample(pairs, cfg.max_pairs)
    rows = augment(expand(pairs), cfg.augment, seed=cfg.seed)
    if not any(r.target for r in rows):
        raise InputError("the training data has no sentence with a skill")
    rng.shuffle(rows)
    mix = mix_report(pairs, rows) | {"fingerprint": data_fingerprint(pairs), "augment_rate": cfg.augment}
    logger.info("training data: %s", mix)
    dataset = build_dataset(rows, esco, seed=cfg.seed)

    # ---- model, loss, evaluator
    model = encoder.model
    serve_length = model.max_seq_length  # restored before any evaluation and before saving
    train_length = min(cfg.max_seq_length, encoder.max_tokens)
    model.max_seq_length = train_length
    model.train()
    if cfg.freeze_embeddings:
        embeddings = getattr(model[0].auto_model, "embeddings", None)
        if embeddings is None:
            raise InputError("--freeze-embeddings: this model has no input-embeddings module to freeze")
        embeddings.requires_grad_(False)
    loss = ContextMatchLoss(model, ContextLossConfig(temperature=cfg.temperature, score=base_cfg.score),
                            mini_batch_size=cfg.mini_batch_size or None)
    evaluator = None
    dev_examples: list[Any] = []
    if cfg.dev:
        from indexer.build import skill_items
        from jobskills.evaluation import load_extraction_bench

        dev_examples = load_extraction_bench(cfg.dev, {p["uri"] for _, p in skill_items(esco)})
        evaluator = RankingEvaluator(dev_examples, esco, base_cfg.score, lengths=(serve_length, train_length))
    report = TrainReport(model=str(out), dataset=mix, device=device, precision=precision)
    steps_per_epoch = max(1, len(dataset) // cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else int(steps_per_epoch * cfg.epochs)
    if evaluator is not None and not cfg.resume:
        note = getattr(progress, "note", None)
        if note and progress:  # encoding every skill for the dev ranking takes minutes on a CPU: say so
            note("train", "dev ranking before training")
            progress("train", 0, total)
        report.before = evaluator.metrics(model, encoder.path)
        logger.info("dev ranking before training: %s", report.before)
        if note:
            note("train", f"dev RP@5 {report.before.get('rp@5', float('nan')):.4f} before training")

    eval_steps = cfg.eval_steps or max(1, min(steps_per_epoch, total // 4 or 1))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        warmup_steps=int(total * cfg.warmup_ratio),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        seed=cfg.seed,
        logging_steps=max(1, min(50, eval_steps // 2 or 1)),
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        eval_strategy="steps" if evaluator else "no",
        eval_steps=eval_steps if evaluator else None,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=f"eval_{evaluator.primary_metric}" if evaluator else None,
        greater_is_better=True,
        report_to="none",
        dataloader_drop_last=len(dataset) > cfg.batch_size,
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator,
        callbacks=[ProgressCallback(progress, report.log)],
    )
    quiet(trainer)
    started = time.perf_counter()
    resume = bool(cfg.resume and any(ckpt_dir.glob("checkpoint-*")))
    try:
        result = trainer.train(resume_from_checkpoint=True if resume else None)
    except KeyboardInterrupt:
        raise TrainError(f"training interrupted; checkpoints are in {ckpt_dir}; rerun with --resume to continue") from None
    report.steps = int(result.global_step)
    report.seconds = time.perf_counter() - started
    report.best_checkpoint = trainer.state.best_model_checkpoint

    # ---- model folder (written whole, then renamed into place)
    partial = partial_folder(out)
    model.max_seq_length = serve_length
    model.eval()
    model.save(str(partial))
    threshold, source, calibration = base_cfg.threshold, f"base model {encoder.name} (not recalibrated)", None
    if evaluator is not None:
        ranker = evaluator.ranker(model, str(partial))  # one encoding of all skills for both uses below
        report.after = evaluator.metrics(model, ranker=ranker)
        logger.info("dev ranking after training: %s", report.after)
        if any(e.skills for e in dev_examples):
            threshold, calibration = calibrate_offline(ranker, dev_examples)
            source = f"calibrated on {Path(cfg.dev).name} after training (best F1 {calibration['f1']:.4f})"
    meta = {
        "base_model": encoder.path,
        "base_model_name": encoder.name,
        "base_fingerprint": encoder.fingerprint,
        "scorer_version": SCORER_VERSION,
        "esco_version": esco.version,
        "data": mix,
        "training": {k: v for k, v in asdict(cfg).items() if k not in ("reindex", "resume", "keep_checkpoints")},
        "metrics": {"before": report.before, "after": report.after, "log": report.log[-20:]},
        "device": device,
        "precision": precision,
        "steps": report.steps,
        "seconds": round(report.seconds, 1),
        "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "command": shlex.join(["jobskills", *sys.argv[1:]]) if Path(sys.argv[0]).name == "jobskills" else None,
    }
    if calibration:
        meta["calibrated_on"] = calibration
    taxonomy = esco.name
    meta["taxonomy"] = taxonomy
    model_cfg = ModelConfig(score=base_cfg.score, threshold=threshold, threshold_source=source, extra=meta)
    save_model_config(partial, model_cfg if taxonomy == DEFAULT_TAXONOMY else ModelConfig(score=base_cfg.score, extra=meta))
    atomic_write_text(partial / "jobskills_train_report.json", json.dumps(report.to_dict(), indent=2, default=str))
    publish_folder(partial, out)  # out is absent or empty (checked above)
    if taxonomy != DEFAULT_TAXONOMY:  # a threshold belongs to (model, taxonomy): keep it in this home
        from jobskills.encoder import model_fingerprint
        from jobskills.modelconfig import calibration_path

        save_model_config(calibration_path(settings.home, model_fingerprint(out), taxonomy), model_cfg)
    report.threshold, report.threshold_source = threshold, source
    if not cfg.keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    logger.info("model written to %s (threshold %.2f)", out, threshold)

    worse = report.before and report.after and report.after["rp@5"] < report.before["rp@5"]
    if cfg.reindex and worse and not cfg.reindex_if_worse:
        report.reindex_skipped = (f"dev RP@5 fell from {report.before['rp@5']:.4f} to {report.after['rp@5']:.4f}; "
                                  "the live index was left alone (rerun with --reindex-if-worse to switch anyway)")
        logger.warning("%s", report.reindex_skipped)
    elif cfg.reindex:
        try:
            report.index = reindex(settings, out, device, esco, progress)
        except JobskillsError as exc:
            raise TrainError(f"the model is saved at {out}, but the index rebuild failed: {exc}; "
                             "the previous index is still live") from exc
    atomic_write_text(out / "jobskills_train_report.json", json.dumps(report.to_dict(), indent=2, default=str))
    return report


def calibrate_offline(ranker: Ranker, examples: Sequence[Any]) -> tuple[float, dict[str, Any]]:
    """Best-F1 threshold of a model on a dev set, with no index (the same sweep ``jobskills calibrate`` runs),
    from the evaluator's :class:`~indexer.ranker.SkillRanker`."""
    from jobskills.evaluation import calibration_curve

    best = calibration_curve(ranker, examples)[1]
    return float(best["threshold"]), best


def reindex(settings: Settings, model_dir: Path, device: str, esco: Esco, progress: Progress | None = None) -> dict[str, Any]:
    """Build the live kinds again with the new model, in their live shape (limit or subset), and switch them
    together (:class:`indexer.rebuild.Rebuild`): until the switch searches use the old index; on any failure
    the new versions are dropped and the old ones stay live."""
    from indexer.rebuild import Rebuild
    from jobskills.encoder import Encoder
    from jobskills.schema import Manifest
    from jobskills.store import open_store
    from jobskills.taxonomy import skills_kind

    encoder = Encoder(model_dir, device=device)
    taxonomy = esco.name
    kinds = ("skills",) if taxonomy != DEFAULT_TAXONOMY else ("skills", "titles")
    with open_store(settings) as store, Rebuild(settings, store, esco, keep=1, progress=progress) as rebuild:
        live_skills = store.current_manifest(skills_kind(taxonomy))
        live_titles = store.current_manifest("titles") if "titles" in kinds else None
        if (live_titles and live_skills and Manifest.from_dict(live_titles[1]).model_fingerprint
                != Manifest.from_dict(live_skills[1]).model_fingerprint):
            kinds = ("skills",)  # titles have their own model (train-titles): not this one's to replace
            logger.info("the titles index uses its own model; rebuilding skills only")
        for kind in kinds:
            rebuild.build_like_live(kind, encoder)
    return rebuild.report.to_dict()
