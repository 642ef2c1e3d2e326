"""``broker usage import FILE``."""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.common import CliError, one_line_errors, print_json, require_schema, runtime
from broker.usage.importer import ImportRejected, import_focus


@click.group("usage")
def usage() -> None:
    """Usage records (reported runs, imported billing history)."""


@usage.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@one_line_errors
def import_cmd(file: Path, as_json: bool) -> None:
    """Import a FOCUS-format usage CSV: every row validates, or nothing is stored."""
    rt = runtime()
    require_schema(rt)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(f"{file}: not UTF-8 text ({exc.reason})") from None
    try:
        result = import_focus(rt.engine, rt.catalog, text)
    except ImportRejected as exc:
        for line, message in exc.errors:
            click.echo(f"{file}:{line}: {message}", err=True)
        raise CliError(f"{len(exc.errors)} row(s) failed validation: nothing was imported") from None
    if as_json:
        print_json({"imported": result.imported, "already_stored": result.already_stored, "skipped": result.skipped})
        return
    click.echo(f"imported {result.imported} usage row(s); {result.already_stored} already stored")
    for reason, lines in sorted(result.skipped.items()):
        shown = ", ".join(str(n) for n in lines[:20]) + (" ..." if len(lines) > 20 else "")
        click.echo(f"skipped {len(lines)}: {reason} (lines {shown})")


commands: list[click.Command] = [usage]
