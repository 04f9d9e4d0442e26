"""``jobskills index`` and ``jobskills info``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from jobskills.cli_common import (
    DeviceOpt, EngineOpt, HomeOpt, JsonOpt, ModelOpt, ThresholdOpt, emit_json, err, handle_errors, progress_bar, settings_from,
)


def _dir_size(path: Path) -> int:
    """Bytes actually allocated (the WAL files are sparse: their apparent size overstates the disk used)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) if path.exists() else 0


@handle_errors
def index(
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    threshold: ThresholdOpt = None,
    only: Annotated[Optional[str], typer.Option("--only", help="Build only 'skills' or 'titles'.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Index only the first N skills / occupations (quick trials).")] = None,
    keep: Annotated[int, typer.Option("--keep", min=0, help="Previous versions kept for --rollback.")] = 1,
    rollback: Annotated[bool, typer.Option("--rollback", help="Switch back to the previous index version instead of building.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Encode ESCO skills and job titles into the store as a new version, then switch to it atomically."""
    from jobskills.store import KINDS, open_store

    settings = settings_from(model=model, home=home, engine=engine, device=device)
    kinds = KINDS if only is None else (only,)
    if only is not None and only not in KINDS:
        raise typer.BadParameter(f"--only must be one of {', '.join(KINDS)}")
    with open_store(settings) as store:
        if rollback:
            from indexer.build import rollback as do_rollback

            moved = do_rollback(store, kinds)
            if json_out:
                emit_json({k: {"from": a, "to": b} for k, (a, b) in moved.items()})
            else:
                for k, (a, b) in moved.items():
                    typer.echo(f"{k}: {a} -> {b}")
            return
        from indexer.build import build_index
        from jobskills.encoder import Encoder

        started = time.perf_counter()
        encoder = Encoder(settings.model_path, device=settings.device)
        with progress_bar(not json_out) as update:
            report = build_index(settings, store, encoder, kinds=kinds, limit=limit, threshold=threshold, keep=keep,
                                 progress=update)
        out: dict[str, Any] = report.to_dict()
        out["total_seconds"] = round(time.perf_counter() - started, 2)
        out["store"] = store.location
        out["engine"] = store.engine
        if store.engine in ("edge", "local"):
            out["disk_bytes"] = _dir_size(Path(store.location))
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
    from jobskills.store import KINDS, open_store

    settings = settings_from(home=home, engine=engine)
    out: dict[str, Any] = {}
    with open_store(settings) as store:
        out["store"] = store.location
        out["engine"] = store.engine
        for kind in KINDS:
            found = store.current_manifest(kind)
            entry: dict[str, Any] = {"live": None, "versions": store.versions(kind)}
            if found:
                version, manifest = found
                entry["live"] = version
                entry["manifest"] = manifest
            out[kind] = entry
        if store.engine in ("edge", "local"):
            out["disk_bytes"] = _dir_size(Path(store.location))
    if json_out:
        emit_json(out)
        return
    typer.echo(f"store: {out['store']} ({out['engine']})" + (f", {out['disk_bytes'] / 1e6:.0f} MB on disk" if "disk_bytes" in out else ""))
    for kind in KINDS:
        entry = out[kind]
        if not entry["live"]:
            typer.echo(f"{kind}: not indexed (run `jobskills index`)")
            continue
        m = entry["manifest"]
        typer.echo(
            f"{kind}: {m['count']:,} points, version {entry['live']}\n"
            f"  model {m['model_name']} ({m['model_fingerprint']}), {m['dim']}-d, ESCO {m['esco_version']}, "
            f"scorer {m['scorer_version']} {m['score_config']}, threshold {m['threshold']} ({m['threshold_source']}), "
            f"built {m['created_at']}, {len(entry['versions'])} version(s) kept"
        )
    if not out["skills"]["live"]:
        err("hint: `jobskills index` builds the index (about a few minutes on 2 CPU cores)")


def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("info")(info)
