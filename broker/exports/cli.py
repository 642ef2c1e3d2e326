"""``broker export commitments``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from broker.cli.common import CliError, one_line_errors, require_schema, runtime
from broker.exports.endpoints import ExportFormat, render
from broker.exports.service import ExportParams


@click.group("export")
def export() -> None:
    """Exports for negotiation and FinOps tools."""


@export.command("commitments")
@click.option("--lookback-days", type=click.IntRange(1, 1095), default=90, show_default=True)
@click.option("--gpu", help="GPU model id or family (default: every GPU with usage)")
@click.option("--provider", help="only this provider's usage and commitments")
@click.option(
    "--format", "fmt", type=click.Choice([f.value for f in ExportFormat]), default="json", show_default=True
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="file (default: stdout)")
@one_line_errors
def commitments(lookback_days: int, gpu: str | None, provider: str | None, fmt: str, output: Path | None) -> None:
    """Usage profile, recommended commitment per term on offer, market evidence and a target price."""
    fmt_ = ExportFormat(fmt)
    if fmt_ is ExportFormat.XLSX and output is None:
        raise CliError("--format xlsx needs --output FILE (a workbook is not terminal text)")
    rt = runtime()
    require_schema(rt)
    rt.index.refresh()
    body, _media = render(rt, ExportParams(lookback_days=lookback_days, gpu=gpu, provider=provider), fmt_)
    data = body if isinstance(body, bytes) else (json.dumps(body, indent=2) + "\n" if isinstance(body, dict) else body)
    if output is None:
        sys.stdout.write(data if isinstance(data, str) else data.decode())
        return
    if isinstance(data, bytes):
        output.write_bytes(data)
    else:
        output.write_text(data, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)


commands: list[click.Command] = [export]
