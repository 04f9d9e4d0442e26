"""The query commands: ``extract``, ``search``, ``titles``, ``analyse``, ``eval``, ``calibrate`` and ``serve``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from jobskills.cli_common import (
    DeviceOpt, EncoderBackendOpt, EngineOpt, HomeOpt, JsonOpt, ModelOpt, TaxonomyOpt, ThresholdOpt, emit_json, handle_errors, progress_bar, settings_from,
)
from jobskills.errors import InputError
from jobskills.threshold import SWEEP
from retriever.contract import EVIDENCE_WORDS
from retriever.text import MAX_TEXT_CHARS, require_words

KOpt = Annotated[int, typer.Option("-k", "--top", min=1, max=1000, help="How many results.")]


def _open(model: str | None, home: Path | None, engine: str | None, device: str | None, threshold: float | None = None,
          candidates: str = "bound", taxonomy: str | None = None, encoder_backend: str | None = None) -> Any:
    from jobskills.taxonomy import check_taxonomy_name
    from retriever.pipeline import Retriever

    check_taxonomy_name(taxonomy)  # before the store or the model is touched

    return Retriever(settings_from(model=model, home=home, engine=engine, device=device, threshold=threshold,
                                   encoder_backend=encoder_backend),
                     candidates=candidates, taxonomy=taxonomy)


def _too_long(source: str, size: str, command: str) -> InputError:
    return InputError(
        f"{source} has {size}, over the {MAX_TEXT_CHARS:,}-character limit for one text; for many ads, put one per "
        f"line of a JSONL file and use corpus mode: jobskills {command} --file ads.jsonl --text-field text --out results.jsonl"
    )


def _read_text(text: str | None, file: Path | None, command: str = "extract") -> str:
    """The text to analyse, refused when over :data:`MAX_TEXT_CHARS` before any model is loaded (a 4 GB file is
    not even read: no UTF-8 character is longer than 4 bytes)."""
    if (text is None) == (file is None):
        raise InputError("give either TEXT or --file PATH (use --file - for stdin)")
    if file is None:
        if len(text) > MAX_TEXT_CHARS:  # type: ignore[arg-type]
            raise _too_long("the text", f"{len(text):,} characters", command)  # type: ignore[arg-type]
        return text  # type: ignore[return-value]
    cap = 4 * MAX_TEXT_CHARS
    if str(file) == "-":
        data = sys.stdin.buffer.read(cap + 1)
        if len(data) > cap:
            raise _too_long("stdin", f"over {cap:,} bytes", command)
    else:
        size = Path(file).stat().st_size
        if size > cap:
            raise _too_long(str(file), f"{size:,} bytes", command)
        data = Path(file).read_bytes()
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{file} is not UTF-8 text (byte {exc.start}): convert it, e.g. iconv -f latin1 -t utf-8") from None
    if len(body) > MAX_TEXT_CHARS:
        raise _too_long("stdin" if str(file) == "-" else str(file), f"{len(body):,} characters", command)
    return body


def _need_corpus_files(file: Path | None, out: Path | None) -> None:
    if file is None or out is None:
        raise InputError("corpus mode needs --file ADS.jsonl and --out RESULTS.jsonl (and --text-field, default 'text')")


def _report_corpus(stats: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(stats)
        return
    line = (f"{stats['ads']:,} ads, {stats['sentences']:,} sentences, {stats['errors']} unusable lines -> {stats['out']} "
            f"({stats['ads_per_s']:.1f} ads/s)")
    if stats["skipped_done"]:
        line += f"; resumed after line {stats['skipped_done']}"
    if stats.get("summary"):
        line += f"; summary: {stats['summary']['pairs']:,} skill x occupation pairs -> {stats['summary']['path']}"
    typer.echo(line)


@handle_errors
def extract(
    text: Annotated[Optional[str], typer.Argument(help="Text to analyse (a sentence or a whole ad).", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read the text from a UTF-8 file ('-' = stdin).", show_default=False)] = None,
    threshold: ThresholdOpt = None,
    no_redundancy: Annotated[bool, typer.Option("--no-redundancy", help="Keep skills that no token prefers.")] = False,
    candidates: Annotated[str, typer.Option("--candidates", help="Candidate stage: bound (exact, default), qdrant, maxsim, exhaustive.")] = "bound",
    evidence: Annotated[int, typer.Option("--evidence", min=0, max=50, help="Evidence words per skill.")] = EVIDENCE_WORDS,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Corpus mode: write one JSON line per input line here (resumable).", show_default=False)] = None,
    text_field: Annotated[Optional[str], typer.Option("--text-field", help="Corpus mode: the JSONL field holding the ad text.", show_default=False)] = None,
    id_field: Annotated[Optional[str], typer.Option("--id-field", help="Corpus mode: a JSONL field copied to each output line.", show_default=False)] = None,
    taxonomy: TaxonomyOpt = None,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    encoder_backend: EncoderBackendOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """ESCO skills required by a text, per sentence, with scores and the words that carried them.

    Corpus mode (--file ads.jsonl --text-field text --out results.jsonl) streams a JSONL file of ads."""
    if out is not None or text_field is not None:
        _need_corpus_files(file, out)
        from retriever.corpus import extract_corpus

        with _open(model, home, engine, device, threshold, candidates, taxonomy, encoder_backend=encoder_backend) as r, progress_bar(not json_out) as update:
            stats = extract_corpus(r, file, out, text_field or "text", id_field, redundancy=not no_redundancy,  # type: ignore[arg-type]
                                   evidence_words=evidence, progress=update)
        _report_corpus(stats, json_out)
        return
    body = _read_text(text, file)
    if not body.strip():
        raise InputError("the text is empty; give a sentence or a job ad")
    require_words(body)  # before the model loads
    with _open(model, home, engine, device, threshold, candidates, taxonomy, encoder_backend=encoder_backend) as r:
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
    typer.echo(f"threshold {prov['threshold']:.3f}, model {prov['model']}, taxonomy {prov['taxonomy']}", err=True)


@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="Free text to match against skill labels.")],
    k: KOpt = 10,
    taxonomy: TaxonomyOpt = None,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    encoder_backend: EncoderBackendOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rank all skills of the taxonomy for a query by exact ConTeXT score (no threshold)."""
    with _open(model, home, engine, device, taxonomy=taxonomy, encoder_backend=encoder_backend) as r:
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
    method: Annotated[Optional[str], typer.Option("--method", help="hybrid (BM25 + pooled cosine from one Qdrant query, scored per occupation; default), rrf (the same lists fused title by title by Qdrant's RRF), mean (pooled cosine), maxsim (late interaction) or lexical (BM25).", show_default=False)] = None,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    encoder_backend: EncoderBackendOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Nearest ESCO occupations for a job title, with the ESCO title that matched, the ISCO group and the evidence
    that carried it (lexical: shared words, BM25; semantic: the embedding; or both)."""
    if not query.strip():
        raise InputError("the job title is empty")
    require_words(query, "the job title")  # emoji alone once got confident hits; extract refuses them too
    with _open(model, home, engine, device, encoder_backend=encoder_backend) as r:
        from retriever.titles import DEFAULT_TITLE_METHOD

        method = method or DEFAULT_TITLE_METHOD
        matches = r.titles(query, k, method=method)
        prov = r.provenance()
    if json_out:
        emit_json({"provenance": prov, "query": query, "method": method, "occupations": [m.to_dict() for m in matches]})
        return
    for i, m in enumerate(matches, 1):
        why = [f"BM25 {m.lexical_score:.2f}" if m.lexical_score is not None else "",
               f"cos {m.semantic_score:.3f}" if m.semantic_score is not None else ""]
        via = "example title" if m.matched_origin == "example" else "via"
        typer.echo(f"{i:>3}. {m.score:.4f}  {m.label}  (ISCO {m.isco_group}; {via} \"{m.matched_title}\"; {m.evidence}"
                   f"{': ' + ', '.join(w for w in why if w) if any(why) else ''})  {m.occupation_uri}")


def _subset(rows: list, limit: int | None, sample: int | None) -> list:
    from jobskills.evaluation import even_sample

    return even_sample(rows[:limit], sample)


@handle_errors
def evaluate(
    bench: Annotated[Path, typer.Argument(help="JSONL benchmark: {text, skills} lines or {title, occupation} lines.")],
    dump: Annotated[Optional[Path], typer.Option("--dump", help="Write one JSON line per sentence (gold, predicted, top-10).", show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Evaluate only the first N lines.", show_default=False)] = None,
    sample: Annotated[Optional[int], typer.Option("--sample", min=1, help="Evaluate N lines evenly spread over the file (deterministic).", show_default=False)] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="Titles: hybrid (default), rrf, mean, maxsim or lexical.", show_default=False)] = None,
    threshold: ThresholdOpt = None,
    candidates: Annotated[str, typer.Option("--candidates", help="Candidate stage for the extraction path.")] = "bound",
    taxonomy: TaxonomyOpt = None,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    encoder_backend: EncoderBackendOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Measure the index on a benchmark: RP@K, MRR, P/R/F1, redundancy, candidate recall, speed (or title accuracy)."""
    from jobskills.taxonomy import check_taxonomy_name
    from retriever import evaluate as ev

    check_taxonomy_name(taxonomy)
    kind = ev.bench_kind(bench)
    with _open(model, home, engine, device, threshold, candidates, taxonomy, encoder_backend=encoder_backend) as r:
        warnings = []
        if kind == "extraction":
            examples = _subset(ev.load_extraction_bench(bench, r.skills.row_of_uri), limit, sample)
            calibrated = (r.skills.meta.calibrated_on or {}).get("sha256")
            if threshold is None and calibrated and calibrated == ev.file_sha256(bench):
                warnings.append(f"the threshold was calibrated on this same file ({bench}); P/R/F1 are optimistic")
            report = ev.evaluate_extraction(r, examples, dump=dump)
        else:
            if r.skills.meta.limit or r.skills.meta.subset:
                warnings.append("the index holds a subset of ESCO; scores are not comparable to a full index")
            examples = _subset(ev.load_title_bench(bench), limit, sample)
            report = ev.evaluate_titles(r, examples, method=method)
            if report["example_titles"]:
                warnings.append(
                    f"{report['example_titles']} of these {len(examples)} titles are example titles of the titles index "
                    "(jobskills index --title-examples), so not held out; 'without_example_titles' has the figures "
                    "of the others")
        report["bench"] = str(bench)
        report["subset"] = {"limit": limit, "sample": sample} if (limit or sample) else None
        report["provenance"] = r.provenance()
        report["warnings"] = warnings
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    if json_out:
        emit_json(report)
        return
    if kind == "extraction":
        rk, ex = report["ranking"], report["extraction"]
        typer.echo(f"{report['sentences']} sentences ({report['sentences_with_gold']} with gold, {report['gold_links']} links); {report['ranking_method']}")
        typer.echo("ranking:    " + "  ".join(f"RP@{k.split('@')[1]} {100 * v:.2f}" for k, v in rk.items() if k.startswith("rp@")) + f"  MRR {rk['mrr']:.4f}")
        typer.echo(f"extraction: P {ex['precision']:.4f}  R {ex['recall']:.4f}  F1 {ex['f1']:.4f}  at threshold {report['threshold']:.2f}"
                   f"  (tp {ex['tp']}, fp {ex['fp']}, fn {ex['fn']})")
        typer.echo(f"redundancy rate {100 * report['redundancy_rate']:.2f}%  candidate recall {100 * report['candidate_recall']:.2f}%"
                   f"  ({report['candidates_per_sentence']:.0f} candidates/sentence)  {report['sentences_per_s']:.1f} sentences/s")
    else:
        typer.echo(f"{report['titles']} titles ({report['method']}): MRR {report['mrr']:.4f}  acc@1 {report['acc@1']:.4f}"
                   f"  acc@5 {report['acc@5']:.4f}  acc@10 {report['acc@10']:.4f}  {report['titles_per_s']:.1f} titles/s")
        other = report.get("without_example_titles")
        if other:
            typer.echo(f"{other['titles']} of them not example titles: MRR {other['mrr']:.4f}  acc@1 {other['acc@1']:.4f}"
                       f"  acc@5 {other['acc@5']:.4f}  acc@10 {other['acc@10']:.4f}")


@handle_errors
def calibrate(
    dev: Annotated[Path, typer.Argument(help="Skill-extraction JSONL ({text, skills}) to calibrate on.")],
    lo: Annotated[float, typer.Option("--from", help="Lowest threshold.")] = SWEEP[0],
    hi: Annotated[float, typer.Option("--to", help="Highest threshold.")] = SWEEP[1],
    step: Annotated[float, typer.Option("--step", help="Sweep step.")] = SWEEP[2],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Save the P/R/F1 curve as a PNG (needs matplotlib).", show_default=False)] = None,
    write_model: Annotated[bool, typer.Option("--write-model", help="Also write the threshold into the model folder's jobskills_config.json.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the curve, store nothing.")] = False,
    taxonomy: TaxonomyOpt = None,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    encoder_backend: EncoderBackendOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sweep the threshold, keep the best F1 (redundancy filter on), store it with the index and the model."""
    from jobskills.taxonomy import check_taxonomy_name
    from retriever import evaluate as ev
    from retriever.calibrate import plot_curve, store_calibration, sweep_thresholds

    check_taxonomy_name(taxonomy)
    if ev.bench_kind(dev) != "extraction":
        raise InputError(f"{dev} is not a skill-extraction benchmark ({{text, skills}} lines)")
    with _open(model, home, engine, device, taxonomy=taxonomy, encoder_backend=encoder_backend) as r:
        examples = ev.load_extraction_bench(dev, r.skills.row_of_uri)
        previous = r.threshold
        curve, best = sweep_thresholds(r, examples, lo, hi, step)
        stored = None if dry_run else store_calibration(r, best, dev, write_model=write_model)
    if plot is not None:
        plot_curve(curve, best, plot)
    if json_out:
        emit_json({"best": best, "previous_threshold": previous, "curve": curve, "stored": stored})
        return
    typer.echo("threshold  precision  recall  F1")
    for c in curve:
        mark = "  <- best" if c["threshold"] == best["threshold"] else ""
        typer.echo(f"{c['threshold']:>9.2f}  {c['precision']:>9.4f}  {c['recall']:>6.4f}  {c['f1']:.4f}{mark}")
    typer.echo(f"best F1 {best['f1']:.4f} at threshold {best['threshold']:.2f} (was {previous:.2f})"
               + ("; not stored (--dry-run)" if dry_run else f"; stored in index {stored['index_version']} and {', '.join(stored['model_config'])}"))
    typer.echo("note: evaluating on this same file will give optimistic P/R/F1; keep a separate test set", err=True)


@handle_errors
def analyse(
    text: Annotated[Optional[str], typer.Argument(help="The ad text.", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read the ad from a UTF-8 file ('-' = stdin).", show_default=False)] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="The ad's job title (improves the occupation).", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Corpus mode: one JSON line per input line (resumable).", show_default=False)] = None,
    text_field: Annotated[Optional[str], typer.Option("--text-field", help="Corpus mode: JSONL field with the ad text.", show_default=False)] = None,
    title_field: Annotated[Optional[str], typer.Option("--title-field", help="Corpus mode: JSONL field with the job title.", show_default=False)] = None,
    id_field: Annotated[Optional[str], typer.Option("--id-field", help="Corpus mode: a JSONL field copied to each output line.", show_default=False)] = None,
    summary: Annotated[Optional[Path], typer.Option("--summary", help="Corpus mode: skill x occupation counts as CSV.", show_default=False)] = None,
    k: KOpt = 5,
    threshold: ThresholdOpt = None,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    encoder_backend: EncoderBackendOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A whole ad: its skills (deduplicated), likely ESCO occupations from title and skills, expected skills it omits.

    Corpus mode (--file ads.jsonl --text-field text --title-field title --out results.jsonl --summary s.csv)."""
    from retriever.analyse import analyse_ad, analyse_corpus

    if out is not None or text_field is not None or title_field is not None or summary is not None:
        _need_corpus_files(file, out)
        with _open(model, home, engine, device, threshold, encoder_backend=encoder_backend) as r, progress_bar(not json_out) as update:
            stats = analyse_corpus(r, file, out, text_field or "text", title_field, id_field, k=k, progress=update,
                                   summary=summary)
        _report_corpus(stats, json_out)
        return
    body = _read_text(text, file, "analyse")
    if not body.strip():
        raise InputError("the ad is empty")
    require_words(body, "the ad")
    with _open(model, home, engine, device, threshold, encoder_backend=encoder_backend) as r, progress_bar(not json_out) as update:
        result = analyse_ad(r, body, title=title, k=k, progress=update)
    if json_out:
        emit_json(result.to_dict())
        return
    typer.echo(f"{len(result.skills)} skills in {result.sentences} sentences")
    for s in result.skills:
        typer.echo(f"  {s.score:.3f}  {s.label}  [{s.pillar}]  x{s.sentences}")
    typer.echo("occupations:")
    for o in result.occupations:
        why = []
        if o.matched_title:
            why.append(f'title "{o.matched_title}"')
        if o.shared_essential:
            why.append(f"{len(o.shared_essential)} essential skills: " + ", ".join(o.shared_essential[:4]))
        typer.echo(f"  {o.score:.3f}  {o.label} (ISCO {o.isco_group})  <- " + "; ".join(why or ["-"]))
    if result.expected_missing:
        typer.echo(f"expected for {result.occupations[0].label}, not mentioned ({len(result.expected_missing)}; ESCO's general profile, not a verdict):")
        for m in result.expected_missing[:15]:
            typer.echo(f"  - {m['label']}")


@handle_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind (the default serves this machine only; see the README before 0.0.0.0).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes, each with its own model copy.")] = 1,
    model: ModelOpt = None,
    home: HomeOpt = None,
    engine: EngineOpt = None,
    device: DeviceOpt = None,
    encoder_backend: EncoderBackendOpt = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs): /extract, /analyse, /search, /titles, /healthz, /info.
    JOBSKILLS_API_KEY turns on the API key; JOBSKILLS_RELOAD_S sets how often it looks for a new index."""
    import os

    import uvicorn

    from retriever.api import create_app
    from retriever.pipeline import Retriever

    settings = settings_from(model=model, home=home, engine=engine, device=device, encoder_backend=encoder_backend)
    r = Retriever(settings)  # load before binding: a bad index or model fails here, with one line
    if workers == 1:
        try:
            uvicorn.run(create_app(retriever=r), host=host, port=port, log_level="info")
        finally:
            r.close()
        return
    r.close()
    # each worker process builds its app from the environment: hand it the settings resolved here
    for key, var in (("home", "JOBSKILLS_HOME"), ("model", "JOBSKILLS_MODEL"), ("engine", "JOBSKILLS_ENGINE"),
                     ("device", "JOBSKILLS_DEVICE"), ("encoder_backend", "JOBSKILLS_ENCODER_BACKEND")):
        value = getattr(settings, key)
        if value is not None:
            os.environ[var] = str(value)
    uvicorn.run("retriever.api:app_from_env", factory=True, workers=workers, host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.command("search")(search)
    app.command("titles")(titles)
    app.command("eval")(evaluate)
    app.command("calibrate")(calibrate)
    app.command("serve")(serve)
    app.command("analyse")(analyse)
