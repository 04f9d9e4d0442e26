"""``jobskills taxonomy add|list|remove``: imported skill lists live in core (:mod:`jobskills.taxonomy`), so
their commands do too; ``remove`` also drops the taxonomy's index collections through the core store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from jobskills.cli_common import EngineOpt, HomeOpt, JsonOpt, emit_json, handle_errors, new_app, settings_from

taxonomy_app = new_app("Skill taxonomies beside the built-in ESCO v1.1.0: add a CSV, list, remove.")


@taxonomy_app.command("add")
@handle_errors
def taxonomy_add(
    name: Annotated[str, typer.Argument(help="Name for the taxonomy (lowercase letters, digits, '-').")],
    csv_file: Annotated[Path, typer.Argument(help="UTF-8 CSV file with one skill per row.")],
    id_column: Annotated[str, typer.Option("--id-column", help="Column with the unique skill id.")] = "id",
    label_column: Annotated[str, typer.Option("--label-column", help="Column with the skill label.")] = "label",
    description_column: Annotated[Optional[str], typer.Option("--description-column", show_default=False)] = None,
    alt_labels_column: Annotated[Optional[str], typer.Option("--alt-labels-column", help="Alternative labels, separated by '|' or newlines.", show_default=False)] = None,
    group_column: Annotated[Optional[str], typer.Option("--group-column", help="A grouping (like ESCO's Level-2 groups).", show_default=False)] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a taxonomy of the same name.")] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate and store a CSV skill list; then `jobskills index --taxonomy NAME`."""
    from jobskills.taxonomy import import_csv

    settings = settings_from(home=home)
    meta = import_csv(settings.home, name, csv_file, id_column, label_column, description_column, alt_labels_column,
                      group_column, replace=replace)
    if json_out:
        emit_json(meta)
        return
    typer.echo(f"taxonomy {name}: {meta['skills']:,} skills ({meta['with_alt_labels']} with alternative labels), "
               f"fingerprint {meta['fingerprint']}; next: jobskills index --taxonomy {name}")


@taxonomy_app.command("list")
@handle_errors
def taxonomy_list(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """The built-in ESCO and every imported taxonomy."""
    from jobskills.taxonomy import list_taxonomies

    items = list_taxonomies(settings_from(home=home).home)
    if json_out:
        emit_json(items)
        return
    for t in items:
        typer.echo(f"{t['name']:<20} {t['skills']:>7,} skills  fingerprint {t['fingerprint']}" + ("  (built-in)" if t["builtin"] else f"  from {t.get('source')}"))


@taxonomy_app.command("remove")
@handle_errors
def taxonomy_remove(
    name: Annotated[str, typer.Argument(help="Imported taxonomy to remove, with its index collections.")],
    home: HomeOpt = None,
    engine: EngineOpt = None,
) -> None:
    """Remove an imported taxonomy and its collections; nothing else is touched."""
    from jobskills.store import open_store
    from jobskills.taxonomy import load_taxonomy, remove_taxonomy, skills_kind

    settings = settings_from(home=home, engine=engine)
    load_taxonomy(settings.home, name)  # exists?
    kind = skills_kind(name)
    with open_store(settings) as store:
        versions = store.all_versions(kind)
        for v in versions:
            store.drop(kind, v)
        store.clear_current(kind)
    remove_taxonomy(settings.home, name)
    typer.echo(f"removed taxonomy {name} and {len(versions)} index version(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(taxonomy_app, name="taxonomy")
