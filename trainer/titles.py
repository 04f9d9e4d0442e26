"""``jobskills train-titles``: a job-title encoder trained on ESCO's own titles.

Two objectives:

- ``titles`` (the default, and what the packaged ``jobskills-minilm-titles`` was trained with): ESCO's 30k
  occupation titles paired with each other (an alternative label with its preferred label or another title of
  the same occupation), each with a hard negative from a sibling occupation of the same 4-digit ISCO group
  (:func:`trainer.data.title_triples`), and a symmetric in-batch contrastive loss. The model keeps the base's
  shape (transformer, mean pooling, normalisation) and its input embeddings, so it ships as a small delta
  (:mod:`trainer.ship`) and indexes like any sentence-transformers model.
- ``skills`` (JobBERT, Decorte et al. 2021; JobBERT-v2's asymmetric head): every title paired with a sample of
  its occupation's skills, one Dense head per side after a shared transformer and mean pooling
  (sentence-transformers' ``Router``), trained with ``CachedMultipleNegativesRankingLoss``. On the JobBERT
  development titles it gained less (benchmarks/README.md, "Job titles").

The ``skills`` model routes plain ``encode()`` calls through the *title* head (``default_route="query"``), so
the indexer and ``jobskills titles`` use the head without naming a route; a model whose default route were the
skills side would silently skip the title head.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from jobskills.config import Settings
from jobskills.errors import InputError, JobskillsError, TrainError
from jobskills.esco import Esco, load_esco
from jobskills.fileio import atomic_write_text, partial_folder, publish_folder
from trainer.common import Progress, ProgressCallback, base_model, quiet, training_device
from trainer.data import occupation_titles, title_pairs, title_triples

__all__ = ["TitleTrainConfig", "build_title_model", "train_titles", "TitleEvaluator", "TITLE_ROUTE", "SKILLS_ROUTE",
           "OBJECTIVES"]

logger = logging.getLogger(__name__)

TITLE_ROUTE = "query"
SKILLS_ROUTE = "document"
#: ``titles``: title pairs with same-ISCO hard negatives (default); ``skills``: JobBERT-style title -> skills.
OBJECTIVES = ("titles", "skills")


@dataclass(frozen=True)
class TitleTrainConfig:
    base: str | None = None
    out: str | None = None
    objective: str = "titles"
    epochs: float = 1.0
    batch_size: int = 128
    mini_batch_size: int = 64
    lr: float = 5e-5
    max_steps: int = -1
    max_pairs: int | None = None
    max_skills: int = 12
    device: str = "auto"
    dev: str | None = None
    dev_sample: int = 1000
    seed: int = 0
    reindex: bool = True
    #: ``titles`` objective: a sibling-occupation negative per row, the logit scale, and frozen input embeddings
    hard_negatives: bool = True
    scale: float = 20.0
    freeze_embeddings: bool = True
    #: ``titles`` objective: save the run's state every this many steps into ``<out>.checkpoints``
    save_steps: int = 50
    #: continue an interrupted ``titles`` run from its last saved state (same ``out``)
    resume: bool = False


def _identity_dense(dim: int) -> Any:
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense

    dense = Dense(dim, dim, bias=True, activation_function=torch.nn.Identity())
    with torch.no_grad():
        dense.linear.weight.copy_(torch.eye(dim))
        dense.linear.bias.zero_()
    return dense


def build_title_model(base: Any) -> Any:
    """Base transformer + pooling, then a Router with one Dense head per side (identity at the start, so the
    untrained model equals the base), then Normalize. Plain ``encode()`` takes the title route."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.router import Router
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    modules = list(base)
    if len(modules) < 2 or not isinstance(modules[1], Pooling):
        raise InputError("the title encoder needs a base model of the form Transformer + Pooling (+ Normalize)")
    getter = getattr(base, "get_embedding_dimension", None) or base.get_sentence_embedding_dimension
    dim = getter()
    router = Router.for_query_document(query_modules=[_identity_dense(dim)], document_modules=[_identity_dense(dim)],
                                       default_route=TITLE_ROUTE)
    return SentenceTransformer(modules=[modules[0], modules[1], router, Normalize()], device=str(base.device))


class TitleEvaluator(BaseEvaluator):
    """MRR / acc@1 of the gold occupation for dev titles against the occupations' preferred labels (a cheap
    proxy for ``jobskills eval``, which ranks all 31,956 titles through the index)."""

    def __init__(self, examples: Sequence[Any], esco: Esco, name: str = "titles") -> None:
        super().__init__()
        self.examples = list(examples)
        self.occupations = [(u, o.label) for u, o in esco.occupations.items()]
        self.name = name
        self.primary_metric = f"{name}_mrr"
        self.greater_is_better = True

    def metrics(self, model: Any) -> dict[str, float]:
        import torch

        was = model.training
        model.eval()
        try:
            with torch.inference_mode():
                occ = model.encode([t for _, t in self.occupations], convert_to_tensor=True, batch_size=128)
                q = model.encode([e.title for e in self.examples], convert_to_tensor=True, batch_size=128)
        finally:
            model.train(was)
        scores = q @ occ.T
        row = {u: i for i, (u, _) in enumerate(self.occupations)}
        gold = torch.tensor([row.get(e.occupation, -1) for e in self.examples])
        ok = gold >= 0
        g = scores[torch.arange(len(gold))[ok], gold[ok]]
        rank = 1 + (scores[ok] > g[:, None]).sum(1)
        return {"mrr": float((1.0 / rank).mean()), "acc@1": float((rank == 1).float().mean()),
                "acc@10": float((rank <= 10).float().mean())}

    def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        m = self.metrics(model)
        logger.info("title dev at step %s: %s", steps, m)
        return {f"{self.name}_{k}": v for k, v in m.items()}

    def store_metrics_in_model_card_data(self, *a: Any, **kw: Any) -> None:
        return None


def train_titles(settings: Settings, cfg: TitleTrainConfig, progress: Progress | None = None,
                 esco: Esco | None = None) -> dict[str, Any]:
    """Train the title encoder, save it, and (unless ``cfg.reindex`` is off) rebuild the titles index with it
    beside the live one, switching the alias only when it is complete."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    from jobskills.encoder import Encoder

    esco = esco or load_esco()
    if not esco.occupations:
        raise InputError("this taxonomy has no occupations to train a title encoder on")
    device, precision = training_device(cfg.device)
    base = Encoder(base_model(cfg.base, settings), device=device)  # fp32 whatever the backend
    out = Path(cfg.out).expanduser() if cfg.out else Path(settings.home) / "models" / (
        f"{Path(base.path).name}-titles-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}")
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out {out} already holds files; pick a new folder")
    if cfg.objective not in OBJECTIVES:
        raise InputError(f"unknown title objective {cfg.objective!r}; choose one of {', '.join(OBJECTIVES)}")
    evaluator = None
    if cfg.dev:
        from jobskills.evaluation import load_title_bench

        examples = load_title_bench(cfg.dev, set(esco.occupations))
        examples = random.Random(cfg.seed).sample(examples, min(cfg.dev_sample, len(examples)))
        evaluator = TitleEvaluator(examples, esco)
    report: dict[str, Any] = {"model": str(out), "objective": cfg.objective, "device": device, "precision": precision,
                              "log": []}
    if cfg.objective == "titles":
        state = out.with_name(out.name + ".checkpoints") / _STATE
        if state.is_file() and not cfg.resume:
            raise InputError(f"{state.parent} holds the state of an interrupted run; pass --resume to continue it, or delete it")
        model = base.model
        if evaluator is not None:
            report["before"] = evaluator.metrics(model)
        started = time.perf_counter()
        report["pairs"], report["steps"] = _train_title_pairs(model, cfg, esco, device, progress, report["log"], state)
        report["seconds"] = round(time.perf_counter() - started, 1)
        if evaluator is not None:
            report["after"] = evaluator.metrics(model)
        report = _finish(settings, cfg, base, model, out, device, esco, progress, report)
        shutil.rmtree(state.parent, ignore_errors=True)  # the model is saved: the run is over
        return report
    pairs = title_pairs(esco, max_skills=cfg.max_skills, seed=cfg.seed)
    rng = random.Random(cfg.seed)
    rng.shuffle(pairs)
    if cfg.max_pairs:
        pairs = pairs[: cfg.max_pairs]
    dataset = Dataset.from_dict({"title": [p.title for p in pairs], "skills": [p.skills for p in pairs]})
    model = build_title_model(base.model)
    report["pairs"] = len(pairs)
    if evaluator is not None:
        report["before"] = evaluator.metrics(model)
    loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=cfg.mini_batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else int(max(1, len(dataset) // cfg.batch_size) * cfg.epochs)
    ckpt = out.with_name(out.name + ".checkpoints")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr, warmup_steps=int(0.05 * total),
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device == "cpu", seed=cfg.seed,
        router_mapping={"title": TITLE_ROUTE, "skills": SKILLS_ROUTE},
        batch_sampler="no_duplicates",  # one occupation's titles share skills: keep their pairs apart
        logging_steps=max(1, min(50, total // 10 or 1)), save_strategy="no", report_to="none", disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                         callbacks=[ProgressCallback(progress, report["log"])])
    quiet(trainer)
    started = time.perf_counter()
    result = trainer.train()
    report["steps"], report["seconds"] = int(result.global_step), round(time.perf_counter() - started, 1)
    if evaluator is not None:
        report["after"] = evaluator.metrics(model)
    shutil.rmtree(ckpt, ignore_errors=True)
    return _finish(settings, cfg, base, model, out, device, esco, progress, report)


def _finish(settings: Settings, cfg: TitleTrainConfig, base: Any, model: Any, out: Path, device: str, esco: Esco,
            progress: Progress | None, report: dict[str, Any]) -> dict[str, Any]:
    """Save the trained model atomically (``.partial`` then rename) with its provenance, then rebuild the
    titles index with it unless ``cfg.reindex`` is off."""
    partial = partial_folder(out)
    model.save(str(partial))
    meta = {"role": "titles", "base_model": base.path, "base_fingerprint": base.fingerprint,
            "training": asdict(cfg), "metrics": {k: report.get(k) for k in ("before", "after")},
            "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(), "pairs": report["pairs"],
            "steps": report.get("steps")}
    if cfg.objective == "skills":
        meta["route"] = TITLE_ROUTE
    atomic_write_text(partial / "jobskills_config.json", json.dumps(meta, indent=2, sort_keys=True))
    publish_folder(partial, out)
    if cfg.reindex:
        try:
            report["index"] = _reindex_titles(settings, out, device, esco, progress)
        except JobskillsError as exc:
            raise TrainError(f"the title model is saved at {out}, but rebuilding the titles index failed: {exc}; "
                             "the previous titles index is still live") from exc
    return report


_STATE = "state.pt"


def _run_shape(cfg: TitleTrainConfig, steps: int) -> dict[str, Any]:
    """The settings a saved title run must share with the run that resumes it: all that shape its batches,
    its updates and its schedule (the base model is checked by loading its weights into the same layers)."""
    return {"steps": steps, "seed": cfg.seed, "batch_size": cfg.batch_size, "lr": cfg.lr, "max_pairs": cfg.max_pairs,
            "hard_negatives": cfg.hard_negatives, "scale": cfg.scale, "freeze_embeddings": cfg.freeze_embeddings}


def _train_title_pairs(model: Any, cfg: TitleTrainConfig, esco: Esco, device: str, progress: Progress | None,
                       log: list[dict[str, Any]], state: Path | None = None) -> tuple[int, int]:
    """The ``titles`` objective: batches of :func:`trainer.data.title_triples` rows, one per occupation in a batch
    (two titles of one occupation would be each other's false negatives), and the loss
    ``(CE(scale * A [P; N]') + CE(scale * P A')) / 2`` over unit vectors: each anchor against every positive and
    hard negative of the batch, and each positive back against the anchors. Returns (rows made, steps).

    Every ``cfg.save_steps`` steps the whole run (weights, optimiser, schedule, both random generators, the
    rows and the position in them) goes to ``state``, written atomically; with ``cfg.resume`` a run starts from
    there and ends with the same weights as an uninterrupted one."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    titles = occupation_titles(esco)
    if cfg.freeze_embeddings:  # the input embeddings are half of MiniLM: frozen, the shipped delta stays small
        for name, param in model.named_parameters():
            if "embeddings" in name:
                param.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    rows = title_triples(esco, rng, cfg.hard_negatives, titles)
    if cfg.max_pairs:
        rows = rows[: cfg.max_pairs]
    if len(rows) < 2:
        raise InputError("fewer than two title pairs: each occupation needs two or more titles")
    batch_size = min(cfg.batch_size, len({r.occupation for r in rows}))
    steps = cfg.max_steps if cfg.max_steps > 0 else max(1, int(len(rows) // batch_size * cfg.epochs))
    warmup = max(1, int(0.05 * steps))
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / steps))
    tokenize = getattr(model, "preprocess", None) or model.tokenize

    def embed(texts: list[str]) -> Any:
        features = {k: v.to(device) if hasattr(v, "to") else v for k, v in tokenize(texts).items()}
        return F.normalize(model(features)["sentence_embedding"], dim=-1)

    model.to(device)
    model.train()
    made, at, start = len(rows), 0, 0
    shape = _run_shape(cfg, steps)
    if cfg.resume and state is not None and state.is_file():
        saved = torch.load(state, map_location=device, weights_only=False)  # our own file, written below
        # a state from before the full record carries only its steps and seed
        before = saved.get("shape") or {"steps": saved["steps"], "seed": saved["seed"]}
        changed = [k for k in before if before[k] != shape.get(k)]
        if changed:
            said = ", ".join(f"{k} {before[k]!r} (now {shape.get(k)!r})" for k in changed)
            raise InputError(f"{state} is from a run with {said}; resume with the same settings, or delete it")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["schedule"])
        rng.setstate(saved["rng"])
        torch.set_rng_state(saved["torch_rng"])
        rows, at, made, start = saved["rows"], saved["at"], saved["made"], saved["step"] + 1
        log[:] = saved["log"]
        logger.info("resuming the title run at step %d of %d", start, steps)
    for step in range(start, steps):
        batch, seen = [], set()
        while len(batch) < batch_size:
            if at >= len(rows):  # the next pass: new pairings, new negatives
                rows, at = title_triples(esco, rng, cfg.hard_negatives, titles), 0
                if cfg.max_pairs:
                    rows = rows[: cfg.max_pairs]
                made += len(rows)
            row = rows[at]
            at += 1
            if row.occupation not in seen:
                seen.add(row.occupation)
                batch.append(row)
        a, p = embed([r.anchor for r in batch]), embed([r.positive for r in batch])
        candidates = torch.cat([p, embed([r.negative or r.positive for r in batch])]) if cfg.hard_negatives else p
        target = torch.arange(len(batch), device=a.device)
        loss = 0.5 * (F.cross_entropy(cfg.scale * a @ candidates.T, target) + F.cross_entropy(cfg.scale * p @ a.T, target))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0 or step == steps - 1:
            value = float(loss.detach())
            log.append({"step": step, "loss": round(value, 4), "lr": sched.get_last_lr()[0]})
            logger.info("title step %d: loss %.4f", step, value)
        if state is not None and cfg.save_steps > 0 and (step + 1) % cfg.save_steps == 0 and step + 1 < steps:
            state.parent.mkdir(parents=True, exist_ok=True)
            partial = state.with_name(state.name + ".partial")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": sched.state_dict(),
                        "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "rows": rows, "at": at,
                        "made": made, "step": step, "steps": steps, "seed": cfg.seed, "shape": shape,
                        "log": list(log)}, partial)
            os.replace(partial, state)
        if progress:
            progress("train", step + 1, steps)
    model.eval()
    return made, steps


def _reindex_titles(settings: Settings, model_dir: Path, device: str, esco: Esco, progress: Progress | None) -> dict[str, Any]:
    """The titles index again with the new title model, in the live one's shape, switched only when complete
    and smoke-tested (:class:`indexer.rebuild.Rebuild`)."""
    from indexer.rebuild import Rebuild
    from jobskills.encoder import Encoder
    from jobskills.store import open_store

    encoder = Encoder(model_dir, device=device)
    with open_store(settings) as store, Rebuild(settings, store, esco, keep=1, progress=progress) as rebuild:
        rebuild.build_like_live("titles", encoder)
    return rebuild.report.to_dict()
