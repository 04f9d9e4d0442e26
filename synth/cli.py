"""``jobskills synth skills | multi | negatives``: LLM-written training data (no torch imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from jobskills.cli_common import HomeOpt, JsonOpt, TaxonomyOpt, emit_json, handle_errors, new_app, progress_bar, settings_from

app = new_app("Synthetic training data from any OpenAI-compatible endpoint (resumable JSONL).")

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output JSONL (appended; rerun the same command to resume).")]
BaseUrlOpt = Annotated[Optional[str], typer.Option("--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible endpoint.", show_default=False)]
ApiKeyOpt = Annotated[Optional[str], typer.Option("--api-key", envvar="OPENAI_API_KEY", help="API key (not needed by most local servers).", show_default=False)]
ModelNameOpt = Annotated[str, typer.Option("--model", help="Model name at the endpoint.")]
ConcOpt = Annotated[int, typer.Option("--concurrency", min=1, max=256, help="Requests in flight.")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="At most N prompts.", show_default=False)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Sampling seed (also sent to the endpoint).")]
TempOpt = Annotated[float, typer.Option("--temperature", min=0.0, max=2.0)]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds per request (a local model on a busy CPU needs minutes).")]


def _config(base_url: str | None, api_key: str | None, model: str, concurrency: int, seed: int, temperature: float,
            timeout: float = 60.0) -> Any:
    from synth.run import SynthConfig

    return SynthConfig(base_url=base_url, api_key=api_key, model=model, concurrency=concurrency, seed=seed,
                       temperature=temperature, timeout=timeout)


def _run(tasks: list, cfg: Any, out: Path, json_out: bool) -> None:
    """Run the prompts with a progress bar, then print the summary."""
    from synth.run import run_tasks

    with progress_bar(not json_out) as update:
        stats = run_tasks(tasks, cfg, out, progress=lambda d, t: update("prompts", d, t))
    _report(stats, json_out)


def _report(stats: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(stats)
        return
    typer.echo(f"{stats['rows']:,} rows -> {stats['out']}; {stats['rejects']} rejected prompts -> {stats['rejects_file']}; "
               f"{stats['duplicates']} duplicates dropped; {stats['retries']} retries, {stats['repairs']} repairs; "
               f"{stats['tokens']:,} tokens ({stats['tokens_per_second']} generated/s); "
               f"{stats['sentences_per_minute']:.1f} sentences/minute; valid JSON {stats['valid_json_rate']}, "
               f"skill named literally {stats['named_rate']}, near-duplicates {stats['duplicate_rate']}"
               + (f"; {stats['skipped_done']} prompts already done" if stats["skipped_done"] else ""))


def _skill_uris(skills: list[str] | None, skills_file: Path | None) -> list[str] | None:
    uris = list(skills or [])
    if skills_file is not None:
        uris += [ln.strip() for ln in skills_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return uris or None


@app.command("skills")
@handle_errors
def skills_cmd(
    out: OutOpt,
    per_skill: Annotated[int, typer.Option("--per-skill", min=1, max=50, help="Sentences per skill.")] = 10,
    skills: Annotated[Optional[list[str]], typer.Option("--skills", help="Only these skill URIs (repeatable).", show_default=False)] = None,
    skills_file: Annotated[Optional[Path], typer.Option("--skills-file", help="Only the skill URIs listed in this file.", show_default=False)] = None,
    order: Annotated[str, typer.Option("--order", help="demand: skills most occupations require first (ESCO relations); taxonomy: file order.")] = "demand",
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, model: ModelNameOpt = "gpt-4o-mini",
    concurrency: ConcOpt = 4, limit: LimitOpt = None, seed: SeedOpt = 0, temperature: TempOpt = 0.9, timeout: TimeoutOpt = 60.0,
    taxonomy: TaxonomyOpt = None, home: HomeOpt = None, json_out: JsonOpt = False,
) -> None:
    """Sentences per skill, written from its label, description and alternative labels."""
    from jobskills.errors import InputError
    from jobskills.taxonomy import load_taxonomy
    from synth.run import skill_tasks

    tax = load_taxonomy(settings_from(home=home).home, taxonomy)
    uris = _skill_uris(skills, skills_file)
    unknown = [u for u in uris or [] if u not in tax.skills]
    if unknown:
        raise InputError(f"unknown skill URI {unknown[0]}")
    _run(skill_tasks(tax, per_skill, uris, limit, order=order), _config(base_url, api_key, model, concurrency, seed, temperature, timeout), out, json_out)


@app.command("multi")
@handle_errors
def multi_cmd(
    out: OutOpt,
    per_group: Annotated[int, typer.Option("--per-group", min=1, max=50, help="Sentences per prompt.")] = 5,
    groups: Annotated[str, typer.Option("--groups", help="Grouping that constrains co-occurring skills.")] = "level2",
    draws: Annotated[int, typer.Option("--draws", min=1, help="Prompts per group (each a fresh draw of skills).")] = 1,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, model: ModelNameOpt = "gpt-4o-mini",
    concurrency: ConcOpt = 4, limit: LimitOpt = None, seed: SeedOpt = 0, temperature: TempOpt = 0.9, timeout: TimeoutOpt = 60.0,
    taxonomy: TaxonomyOpt = None, home: HomeOpt = None, json_out: JsonOpt = False,
) -> None:
    """Sentences that each need 2-4 skills of one ESCO Level-2 group, labelled with all of them."""
    from jobskills.errors import InputError
    from jobskills.taxonomy import load_taxonomy
    from synth.run import multi_tasks

    if groups != "level2":
        raise InputError("only --groups level2 is supported")
    tax = load_taxonomy(settings_from(home=home).home, taxonomy)
    _run(multi_tasks(tax, per_group, seed=seed, draws=draws, limit=limit),
         _config(base_url, api_key, model, concurrency, seed, temperature, timeout), out, json_out)


@app.command("negatives")
@handle_errors
def negatives_cmd(
    out: OutOpt,
    n: Annotated[int, typer.Option("-n", min=1, help="Sentences wanted (10 per prompt).")] = 100,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, model: ModelNameOpt = "gpt-4o-mini",
    concurrency: ConcOpt = 4, seed: SeedOpt = 0, temperature: TempOpt = 0.9, timeout: TimeoutOpt = 60.0, json_out: JsonOpt = False,
) -> None:
    """Job-ad sentences that ask for no skill (benefits, company blurbs, logistics), labelled with no skill."""
    from synth.run import negative_tasks

    _run(negative_tasks(n, seed=seed), _config(base_url, api_key, model, concurrency, seed, temperature, timeout), out, json_out)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="synth")



