"""``broker history`` and ``broker market GPU``."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click

from broker.cli.common import CliError, console, one_line_errors, print_json, print_table, require_schema, runtime
from broker.domain import utcnow
from broker.history.chart import draw
from broker.history.endpoints import poll_intervals, to_csv
from broker.history.market import market_view
from broker.history.schemas import AGGS, BadQuery, build_query
from broker.history.service import HistoryResult, price_history

PIVOT_MAX = 6  # up to this many series: one column each; more: one row per point


def _name(key: dict[str, Any]) -> str:
    if "offer_id" in key:
        return f"{key['provider']}/{key['region']}/{key['instance_type']}/{key['purchase']}"
    return "/".join(str(v) for v in key.values())


def _table(result: HistoryResult) -> None:
    unit = result.to_json()["unit"]
    title = f"{result.query.agg if result.query.step_s else 'raw'} price, {unit}"
    names = [_name(s.key) for s in result.series]
    if len(result.series) <= PIVOT_MAX:
        times = sorted({t for s in result.series for t, _ in s.points})
        cells = [dict(s.points) for s in result.series]
        rows = [[t.strftime("%Y-%m-%d %H:%M"), *(c.get(t) for c in cells)] for t in times]
        print_table(["time (UTC)", *names], rows, title=title)
    else:
        rows = [[n, t.strftime("%Y-%m-%d %H:%M"), v] for n, s in zip(names, result.series, strict=True)
                for t, v in s.points]  # fmt: skip
        print_table(["series", "time (UTC)", "value"], rows, title=title)
    for g in result.gaps:
        what = g["source"] if g["kind"] == "polling" else f"{g['provider']}/{g['region']}/{g['instance_type']}"
        console.print(f"[yellow]gap ({g['kind']}): {what} {g['from']} .. {g['to']}[/yellow]")


@click.command("history")
@click.option("--gpu", help="GPU model id or family (H100, A100-80GB ...)")
@click.option("--purchase", help="on_demand, spot, reserved ...")
@click.option("--provider")
@click.option("--region")
@click.option("--instance-type")
@click.option("--from", "from_", help="ISO 8601 with a zone (default: 7 days before --to)")
@click.option("--to", help="ISO 8601 with a zone (default: now)")
@click.option("--step", default="1h", show_default=True, help="15m, 1h, 1d ... or raw")
@click.option("--agg", default="min", show_default=True, type=click.Choice(list(AGGS)))
@click.option("--group-by", default="provider", show_default=True, help="offer, provider, gpu_model, purchase, region")
@click.option("--unit", default="gpu_hour", show_default=True, type=click.Choice(["gpu_hour", "instance_hour"]))
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout")
@click.option("--json", "as_json", is_flag=True, help="the API's JSON answer")
@click.option("--chart", is_flag=True, help="draw the series in the terminal")
@one_line_errors
def history(gpu: str | None, purchase: str | None, provider: str | None, region: str | None,
            instance_type: str | None, from_: str | None, to: str | None, step: str, agg: str, group_by: str,
            unit: str, as_csv: bool, as_json: bool, chart: bool) -> None:  # fmt: skip
    """Price history as step functions: a price holds until it changes; polling gaps are listed, not filled."""
    rt = runtime()
    require_schema(rt)
    now = utcnow()
    try:
        q = build_query(rt.catalog, now=now, gpu=gpu, purchase=purchase, provider=provider, region=region,
                        instance_type=instance_type, from_=from_, to=to, step=step, agg=agg, group_by=group_by,
                        unit=unit)  # fmt: skip
        result = price_history(rt.engine, q, now=now, intervals=poll_intervals(rt))
    except BadQuery as exc:
        raise CliError(f"--{exc.param.replace('_', '-')}: {exc.message}") from None
    if as_csv:
        sys.stdout.write(to_csv(result))
    elif as_json:
        print_json(result.to_json())
    elif chart:
        series = [(_name(s.key), s.points) for s in result.series]
        width = max(40, min(console.width or 100, 160) - 14)
        held = timedelta(seconds=q.step_s) if q.step_s else None
        click.echo(draw(series, width=width, unit=result.to_json()["unit"], step=held))
        if result.gaps:
            click.echo(f"{len(result.gaps)} gap(s) in polling or listing: see --json")
    else:
        _table(result)


@click.command("market")
@click.argument("gpu")
@click.option("--json", "as_json", is_flag=True, help="the API's JSON answer")
@one_line_errors
def market(gpu: str, as_json: bool) -> None:
    """One GPU model: cheapest offer per provider and purchase option now, spot discount, 7/30-day statistics."""
    rt = runtime()
    require_schema(rt)
    index = rt.index.refresh()
    try:
        view = market_view(rt.engine, rt.catalog, index, gpu, now=utcnow(), intervals=poll_intervals(rt))
    except BadQuery as exc:
        raise CliError(exc.message) from None
    if as_json:
        print_json(view)
        return
    rows = [[c["provider"], c["purchase"], c["gpu_hourly_usd"], c["hourly_usd"], c["gpu_count"], c["region"],
             c["instance_type"], c["source"], f"{c['age_s'] // 60} min"] for c in view["cheapest"]]  # fmt: skip
    print_table(["provider", "purchase", "$/GPU-h", "$/h", "GPUs", "region", "instance type", "source", "age"], rows,
                title=f"{view['gpu_model']}: cheapest now ({view['unit']})")  # fmt: skip
    d = view["spot_discount"]
    if d["overall"] is not None:
        console.print(f"spot discount vs on-demand: {d['overall']:.0%} overall; " + ", ".join(
            f"{p} {v:.0%}" for p, v in d["by_provider"].items()))  # fmt: skip
    stats = [[p, w, s["days"], s["min"], s["median"], s["max"], s["volatility"]]
             for p, windows in view["history"]["by_purchase"].items() for w, s in windows.items()]  # fmt: skip
    print_table(["purchase", "window", "days", "min", "median", "max", "volatility"], stats,
                title="daily minimum per GPU-hour across providers")  # fmt: skip
    console.print(f"volatility: {view['history']['volatility_definition']}")


commands: list[click.Command] = [history, market]
