"""``jobskills extract``, ``jobskills search``, ``jobskills titles``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from jobskills.cli_common import (
    DeviceOpt, EngineOpt, HomeOpt, JsonOpt, ModelOpt, ThresholdOpt, emit_json, handle_errors, settings_from,
)
from jobskills.errors import InputError

KOpt = Annotated[int, typer.Option("-k", "--top", min=1, max=1000, help="How many results.")]


def _open(model: str | None, home: Path | None, engine: str | None, device: str | None, threshold: float | None = None,
          candidates: str = "bound") -> Any:
    from retriever.pipeline import Retriever

    return Retriever(settings_from(model=model, home=home, engine=engine, device=device, threshold=threshold), candidates=candidates)


def _read_text(text: str | None, file: Path | None) -> str:
    if (text is None) == (file is None):
        raise InputError("give either TEXT or --file PATH (use --file - for stdin)")
    if file is None:
        return text  # type: ignore[return-value]
    data = sys.stdin.buffer.read() if str(file) == "-" else Path(file).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{file} is not UTF-8 text (byte {exc.start}): convert it, e.g. iconv -f latin1 -t utf-8") from None


@handle_errors
def extract(
    text: Annotated[Optional[str], typer.Argument(help="Text to analyse (a sentence or a whole ad).", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read the text from a UTF-8 file ('-' = stdin).", show_default=False)] = None,
    threshold: ThresholdOpt = None,
    no_redundancy: Annotated[bool, typer.Option("--no-redundancy", help="Keep skills that no token prefers.")] = False,
    candidates: Annotated[str, typer.Option("--candidates", help="Candidate stage: bound (exact, default), qdrant, maxsim, exhaustive.")] = "bound",
    evidence: Annotated[int, typer.Option("--evidence", min=0, max=50, help="Evidence words per skill.")] = 3,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """ESCO skills required by a text, per sentence, with scores and the words that carried them."""
    body = _read_text(text, file)
    with _open(model, home, engine, device, threshold, candidates) as r:
        results = r.extract(body, redundancy=not no_redundancy, evidence_words=evidence)
        prov = r.provenance()
    if json_out:
        emit_json({"provenance": prov, "sentences": [s.to_dict() for s in results]})
        return
    for s in results:
        typer.echo(s.text)
        if not s.skills:
            typer.echo("    (no skill above threshold)")
        for m in s.skills:
            ev = ", ".join(f"{e.text} {e.weight:.2f}" for e in m.evidence)
            typer.echo(f"    {m.score:.3f}  {m.label}  [{m.skill_type or '-'}]  <- {ev}")
            typer.echo(f"           {m.uri}")
    typer.echo(f"threshold {prov['threshold']:.3f}, model {prov['model']}, ESCO {prov['esco_version']}", err=True)


@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="Free text to match against skill labels.")],
    k: KOpt = 10,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rank all ESCO skills for a query by exact ConTeXT score (no threshold)."""
    with _open(model, home, engine, device) as r:
        matches = r.search(query, k)
        prov = r.provenance()
    if json_out:
        emit_json({"provenance": prov, "query": query, "skills": [m.to_dict() for m in matches]})
        return
    for i, m in enumerate(matches, 1):
        typer.echo(f"{i:>3}. {m.score:.3f}  {m.label}  [{m.skill_type or '-'}]  {m.uri}")


@handle_errors
def titles(
    query: Annotated[str, typer.Argument(help="A free-text job title.")],
    k: KOpt = 10,
    method: Annotated[str, typer.Option("--method", help="maxsim (late interaction, default) or mean (pooled cosine).")] = "maxsim",
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Nearest ESCO occupations for a job title, with the ESCO title that matched and the ISCO group."""
    with _open(model, home, engine, device) as r:
        matches = r.titles(query, k, method=method)
        prov = r.provenance()
    if json_out:
        emit_json({"provenance": prov, "query": query, "method": method, "occupations": [m.to_dict() for m in matches]})
        return
    for i, m in enumerate(matches, 1):
        typer.echo(f"{i:>3}. {m.score:.3f}  {m.label}  (ISCO {m.isco_group}; via \"{m.matched_title}\")  {m.occupation_uri}")


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.command("search")(search)
    app.command("titles")(titles)
