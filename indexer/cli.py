"""``jobskills index`` and ``jobskills info``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from jobskills.cli_common import (
    DeviceOpt, EncoderBackendOpt, EngineOpt, HomeOpt, IndexThresholdOpt, JsonOpt, ModelOpt, TaxonomyOpt, emit_json, err, handle_errors,
    progress_bar, settings_from,
)
from jobskills.fileio import disk_usage


@handle_errors
def index(
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    encoder_backend: EncoderBackendOpt = None,
    threshold: IndexThresholdOpt = None,
    only: Annotated[Optional[str], typer.Option("--only", help="Build only 'skills' or 'titles'.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Index only the first N skills / occupations (quick trials).")] = None,
    keep: Annotated[int, typer.Option("--keep", min=0, help="Previous versions kept for --rollback.")] = 1,
    rollback: Annotated[bool, typer.Option("--rollback", help="Switch back to the previous index version instead of building.")] = False,
    taxonomy: TaxonomyOpt = None,
    title_model: Annotated[Optional[str], typer.Option("--title-model", help="Model for the job-title index: a packaged name or a folder, e.g. from `jobskills train-titles` (default: the packaged jobskills-minilm-titles) [env JOBSKILLS_TITLE_MODEL].", show_default=False)] = None,
    title_examples: Annotated[Optional[str], typer.Option("--title-examples", help="Example job titles the titles index holds besides ESCO's: 'jobbert-validation' (packaged, the default), JSONL files of {title, occupation} lines, comma-separated, or 'none' [env JOBSKILLS_TITLE_EXAMPLES].", show_default=False)] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", help="Skill points: 'preferred' (one per skill) or 'all' (every alternative label too; a skill scores its best label). Default: what the model's config says, else preferred.", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Encode ESCO skills and job titles into the store as a new version, then switch to it atomically.

    With --taxonomy NAME, index an imported skill list instead (skills only)."""
    from jobskills.store import KINDS, open_store
    from jobskills.taxonomy import DEFAULT_TAXONOMY, load_taxonomy, skills_kind

    settings = settings_from(model=model, home=home, engine=engine, device=device, encoder_backend=encoder_backend,
                             title_model=title_model, title_examples=title_examples)
    custom = taxonomy not in (None, DEFAULT_TAXONOMY)
    kinds = (("skills",) if custom else KINDS) if only is None else (only,)
    if only is not None and only not in KINDS:
        raise typer.BadParameter(f"--only must be one of {', '.join(KINDS)}")
    tax = load_taxonomy(settings.home, taxonomy)  # a clear error for an unknown name, before loading a model
    with open_store(settings) as store:
        if rollback:
            from indexer.build import rollback as do_rollback

            moved = do_rollback(store, [skills_kind(taxonomy) if k == "skills" else k for k in kinds])
            if json_out:
                emit_json({k: {"from": a, "to": b} for k, (a, b) in moved.items()})
            else:
                for k, (a, b) in moved.items():
                    typer.echo(f"{k}: {a} -> {b}")
            return
        from indexer.rebuild import Rebuild
        from jobskills.encoder import Encoder

        # build every kind beside the live ones, then switch them together (indexer.rebuild); entering takes
        # the build lock, so a second build of this home fails here, before a model is loaded
        with progress_bar(not json_out) as update, Rebuild(settings, store, tax, keep=keep, progress=update) as rebuild:
            started = time.perf_counter()
            encoder = Encoder(settings.model_path, device=settings.device)
            title_path = settings.title_model_path if "titles" in kinds else None
            separate = title_path is not None and Path(title_path).resolve() != Path(encoder.path).resolve()
            title_encoder = Encoder(title_path, device=settings.device) if separate else encoder
            for kind in kinds:
                if separate and kind == "titles":  # its own model: its own threshold and label mode
                    rebuild.build(kind, title_encoder, limit=limit)
                else:
                    rebuild.build(kind, encoder, limit=limit, threshold=threshold, labels=labels)
        report = rebuild.report
        out: dict[str, Any] = report.to_dict()
        out["total_seconds"] = round(time.perf_counter() - started, 2)
        out["store"] = store.location
        out["engine"] = store.engine
        if store.engine in ("edge", "local"):
            out["disk_bytes"] = disk_usage(store.location)
    if json_out:
        emit_json(out)
        return
    for kind, version in report.versions.items():
        typer.echo(f"{kind}: {report.counts[kind]:,} points -> {version} ({report.seconds[kind]:.1f} s)")
    typer.echo(f"threshold {report.threshold:.3f}; store {out['store']} ({out['engine']})"
               + (f", {out['disk_bytes'] / 1e6:.0f} MB" if "disk_bytes" in out else "")
               + f"; {out['total_seconds']:.0f} s in all")


@handle_errors
def info(
    home: HomeOpt = None,
    engine: EngineOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What is indexed: model, dims, ESCO version, scorer, counts, threshold, versions kept for rollback."""
    from jobskills.schema import Manifest
    from jobskills.store import KINDS, open_store
    from jobskills.taxonomy import list_taxonomies, skills_kind

    settings = settings_from(home=home, engine=engine)
    out: dict[str, Any] = {}
    kinds = [*KINDS, *(skills_kind(t["name"]) for t in list_taxonomies(settings.home) if not t["builtin"])]
    with open_store(settings) as store:
        out["store"] = store.location
        out["engine"] = store.engine
        for kind in kinds:
            found = store.current_manifest(kind)
            entry: dict[str, Any] = {"live": None, "versions": store.versions(kind)}
            if found:
                version, manifest = found
                entry["live"] = version
                entry["manifest"] = manifest
            out[kind] = entry
        if store.engine in ("edge", "local"):
            out["disk_bytes"] = disk_usage(store.location)
    if json_out:
        emit_json(out)
        return
    typer.echo(f"store: {out['store']} ({out['engine']})" + (f", {out['disk_bytes'] / 1e6:.0f} MB on disk" if "disk_bytes" in out else ""))
    for kind in kinds:
        entry = out[kind]
        if not entry["live"]:
            hint = f" --taxonomy {kind.split('_', 1)[1]}" if "_" in kind else ""
            typer.echo(f"{kind}: not indexed (run `jobskills index{hint}`)")
            continue
        m = Manifest.from_dict(entry["manifest"])
        typer.echo(
            f"{kind}: {m.count:,} points, version {entry['live']}\n"
            f"  model {m.model_name} ({m.model_fingerprint}), {m.dim}-d, taxonomy {m.taxonomy} "
            f"({m.taxonomy_fingerprint or m.esco_fingerprint}), "
            f"scorer {m.scorer_version} {m.score_config}, threshold {m.threshold} ({m.threshold_source}), "
            f"built {m.created_at}, {len(entry['versions'])} version(s) kept"
            + (f", {m.skills:,} skills as {m.labels} labels" if m.labels == "all" else "")
        )
        ex = m.title_examples
        if ex:
            sets = ", ".join(f"{e['name']} ({e['lines']:,} lines)" for e in ex.get("sets", []))
            typer.echo(f"  example titles: {sets}; {ex.get('links', 0):,} occupation links")
        t = m.model_training
        if t:
            dev = " ".join(f"{k} {v}" for k, v in (t.get("dev") or {}).items())
            typer.echo(f"  fine-tuned from {t['base']} ({t.get('steps')} steps, data {t.get('data_fingerprint')}); dev {dev}")
    if not out["skills"]["live"]:
        err("hint: `jobskills index` builds the index (about a few minutes on 2 CPU cores)")




def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("info")(info)
