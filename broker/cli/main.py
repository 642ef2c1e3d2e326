"""The ``broker`` command."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import click

from broker import __version__
from broker.auth.guards import check_auth_mode
from broker.cli.common import (
    CliError,
    console,
    err_console,
    one_line_errors,
    print_json,
    print_table,
    require_schema,
    runtime,
)
from broker.domain import ConfigError, Purchase
from broker.observability.logging import configure_logging, configure_service_logging
from broker.offers.schemas import OfferFilter, offer_out
from broker.offers.service import select_offers
from broker.polling.service import poll_source
from broker.polling.skipped import Skipped
from broker.providers.service import provider_status
from broker.runtime import Runtime
from broker.settings import load_settings
from broker.store import migrate
from broker.store.ingest import IngestResult


@click.group()
@click.version_option(__version__, prog_name="broker")
@click.option("-v", "--verbose", is_flag=True, help="log progress to stderr")
def cli(verbose: bool) -> None:
    """Multi-cloud GPU price-arbitrage broker."""
    configure_logging(logging.INFO if verbose else logging.WARNING, json_format=False)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@one_line_errors
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema."""
    rt = runtime()
    migrate.upgrade(rt.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(rt.engine)}")


@db.command("downgrade")
@click.argument("revision")
@one_line_errors
def db_downgrade(revision: str) -> None:
    """Migrate the schema down to REVISION ("base" drops everything)."""
    rt = runtime()
    migrate.downgrade(rt.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(rt.engine) or 'base'}")


@db.command("current")
@one_line_errors
def db_current() -> None:
    """Print the schema revision."""
    rt = runtime()
    click.echo(f"current: {migrate.current_revision(rt.engine) or 'base'}; head: {migrate.head_revision()}")


def _poll_row(result: IngestResult | Skipped, seconds: float) -> list[Any]:
    if isinstance(result, Skipped):
        return [result.source, "skipped", "", "", "", "", result.reason]
    rejected = ", ".join(f"{k}: {v}" for k, v in sorted(result.rejected.items()))
    note = result.error or "; ".join(result.warnings)
    return [
        result.source,
        result.outcome.value,
        result.offers_seen,
        result.prices_changed,
        result.offers_withdrawn,
        rejected,
        f"{note} ({seconds:.1f}s)".strip(),
    ]


def _load_demo_history(rt: Runtime, *, quiet: bool = False) -> None:
    from broker.history.demo import load_demo_history

    with err_console.status("loading a month of recorded price history ...", spinner="dots"):
        polls = load_demo_history(rt)
    if polls and not quiet:
        click.echo(f"demo data: recorded price history: {polls} polls")


@cli.command()
@click.argument("sources", nargs=-1)
@click.option("--demo", is_flag=True, help="replay the project's recorded payloads instead of calling live APIs")
@click.option("--json", "as_json", is_flag=True)
@one_line_errors
def poll(sources: tuple[str, ...], demo: bool, as_json: bool) -> None:
    """Poll SOURCES once (default: every configured source) and print a summary per source."""
    import time

    rt = runtime(demo)
    require_schema(rt)
    configured = rt.settings.sources
    unknown = [s for s in sources if s not in configured]
    if unknown:
        raise CliError(f"unknown source(s) {', '.join(unknown)}; configured: {', '.join(configured)}")
    if demo and not sources:
        _load_demo_history(rt, quiet=as_json)
    rows: list[list[Any]] = []
    summaries: list[dict[str, Any]] = []
    failed = False
    for name in sources or tuple(configured):
        cfg = configured[name]
        started = time.monotonic()
        with console.status(f"polling {name} ...", spinner="dots") if not as_json else _null():
            result = poll_source(rt, cfg, demo=demo, refresh_index=False)  # nothing here reads the index
        took = time.monotonic() - started
        rows.append(_poll_row(result, took))
        if isinstance(result, Skipped):
            summaries.append({"source": name, "outcome": "skipped", "reason": result.reason})
        else:
            summaries.append({**result.summary(), "seconds": round(took, 3)})
            failed = failed or result.outcome.value == "failed"
    if as_json:
        print_json(summaries)
    else:
        print_table(["source", "outcome", "offers seen", "prices changed", "withdrawn", "rejected", "note"], rows)
    if failed:
        raise SystemExit(1)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@cli.command()
@click.option("--gpu", help="GPU model or family, e.g. H100, A100-80GB")
@click.option("--min-gpus", type=click.IntRange(min=1), help="at least this many GPUs per instance")
@click.option("--purchase", type=click.Choice([p.value for p in Purchase]))
@click.option("--provider")
@click.option("--region")
@click.option("--unknown-gpus", is_flag=True, help="list offers whose GPU name the catalog does not know")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="the same offer objects as GET /v1/offers")
@one_line_errors
def offers(
    gpu: str | None,
    min_gpus: int | None,
    purchase: str | None,
    provider: str | None,
    region: str | None,
    unknown_gpus: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Current offers, cheapest per GPU-hour first."""
    rt = runtime()
    require_schema(rt)
    index = rt.index.refresh()
    f = OfferFilter(
        gpu=gpu,
        min_gpus=min_gpus,
        purchase=Purchase(purchase) if purchase else None,
        provider=provider,
        region=region,
        unknown_gpus=unknown_gpus,
    )
    found = select_offers(index, rt.catalog, f)[:limit]
    if as_json:
        print_json([offer_out(o, index) for o in found])
        return
    if not found:
        click.echo("no offers match (run `broker poll` first, or widen the filters)")
        return
    rows = [
        [
            o.key.provider,
            o.key.region + (f"/{o.key.zone}" if o.key.zone else ""),
            o.key.instance_type,
            o.key.purchase + (f" {o.key.term}" if o.key.term else ""),
            o.gpu_model + ("" if o.gpu_known else " (unknown)"),
            o.gpu_count,
            f"{o.hourly_usd:.4f}",
            f"{o.gpu_hourly_usd:.4f}",
            o.availability.value,
            o.source + (" [demo]" if o.demo else ""),
        ]
        for o in found
    ]
    print_table(
        [
            "provider",
            "region",
            "instance type",
            "purchase",
            "gpu",
            "gpus",
            "$/hour",
            "$/gpu-hour",
            "availability",
            "source",
        ],
        rows,
    )


@cli.command()
@click.option("--demo", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@one_line_errors
def providers(demo: bool, as_json: bool) -> None:
    """Each source: last poll, data age, configured or skipped (and why)."""
    rt = runtime(demo)
    require_schema(rt)
    rt.index.refresh()
    status = provider_status(rt, demo=demo)
    if as_json:
        print_json(status)
        return
    rows = []
    for s in status:
        last = s["last_poll"] or {}
        rows.append(
            [
                s["source"],
                s["kind"],
                "yes" if s["configured"] else f"no: {s['skipped_reason']}",
                last.get("outcome", "never"),
                last.get("finished_at", ""),
                s["offers"],
                s["data_age_seconds"],
                last.get("error") or "",
            ]
        )
    print_table(["source", "kind", "configured", "last outcome", "finished", "offers", "age (s)", "error"], rows)


@cli.command()
@click.option("--host", default=None, help="default: server.host from config (127.0.0.1)")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="default: server.port from config (8000)")
@click.option("--demo", is_flag=True, help="load the recorded demo data first, and keep polling it offline")
@click.option("--no-schedule", is_flag=True, help="serve only: do not run the scheduled polls")
@click.option("--no-auth", is_flag=True, help="accept requests without an API key (refused unless on loopback)")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    help="API processes sharing the port (more than 1: serve only, run the polls with `broker worker`)",
)
@one_line_errors
def serve(host: str | None, port: int | None, demo: bool, no_schedule: bool, no_auth: bool, workers: int) -> None:
    """Run the HTTP API and the scheduled polls."""
    import shutil
    import tempfile

    import uvicorn

    from broker.api.app import SERVE_OPTIONS_ENV, create_app, serving_runtime
    from broker.api.serving import ReusePortMultiprocess

    if workers > 1 and not no_schedule:
        raise CliError("--workers serves the API only: add --no-schedule and run the polls with `broker worker`")
    rt = serving_runtime(demo=demo, no_auth=no_auth)
    require_schema(rt)
    host = host or rt.settings.server.host
    port = port or rt.settings.server.port
    if warning := check_auth_mode(host, rt.settings.server.auth):
        click.echo(warning, err=True)
    configure_service_logging()
    if demo:
        _load_demo_history(rt)
        for cfg in rt.settings.sources.values():
            result = poll_source(rt, cfg, demo=True, refresh_index=False)  # the app builds it once at start
            if not isinstance(result, Skipped):
                click.echo(f"demo data: {cfg.name}: {result.outcome.value}, {result.offers_seen} offers")
    click.echo(f"serving on http://{host}:{port} (OpenAPI at /schema, offers at /v1/offers)")
    if workers == 1:
        app = create_app(rt, schedule=not no_schedule, demo=demo)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
        return
    # each API process is a fresh interpreter (spawned by uvicorn): it reads these before importing metrics
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="broker-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[SERVE_OPTIONS_ENV] = json.dumps({"demo": demo, "no_auth": no_auth})
    try:
        config = uvicorn.Config(
            "broker.api.app:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
        )
        ReusePortMultiprocess(config).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@cli.group()
def backfill() -> None:
    """Load past prices as history."""


@backfill.command("aws-spot")
@click.option("--days", type=click.FloatRange(0, 90, min_open=True), default=90, show_default=True)
@click.option("--source", "source_name", default="aws", show_default=True, help="the configured AWS source")
@click.option("--demo", is_flag=True, help="replay the recorded spot history instead of calling AWS")
@one_line_errors
def backfill_aws_spot(days: float, source_name: str, demo: bool) -> None:
    """Up to 90 days of AWS spot prices for the offers the AWS source lists (poll it first)."""
    from adapters.aws import iter_spot_history
    from broker.polling.service import build_source
    from broker.store.backfill import load_history

    rt = runtime(demo)
    require_schema(rt)
    cfg = rt.settings.sources.get(source_name)
    if cfg is None or cfg.kind != "aws":
        raise CliError(f"no AWS source named {source_name!r} in {rt.settings.config_path}")
    source = build_source(rt, cfg, demo=demo)
    if not demo and (reason := source.missing_credentials()):
        raise CliError(f"{source_name}: {reason}")
    with console.status(f"loading {days:g} days of spot history ...", spinner="dots"):
        result = load_history(rt.engine, source_name, iter_spot_history(source.ctx, days))
    click.echo(
        f"{result.points} price points for {result.offers} offers: {result.rows_written} rows written"
        + (
            f"; {result.unknown_offers} offers not listed by {source_name} yet (run `broker poll {source_name}` first)"
            if result.unknown_offers
            else ""
        )
    )


@cli.command()
@click.option("--demo", is_flag=True, help="poll the recorded demo payloads instead of the live APIs")
@click.option(
    "--background",
    is_flag=True,
    help="poll only on CPU time nothing else wants (Linux SCHED_IDLE, elsewhere the lowest nice): beside the API "
    "on one machine, requests then never wait for a poll",
)
@one_line_errors
def worker(demo: bool, background: bool) -> None:
    """Run only the scheduled polls (no HTTP API): pair it with `broker serve --no-schedule` replicas so
    large ingests never compete with requests in one process."""
    import signal
    import threading

    from broker.polling.scheduler import PollScheduler

    if background:
        _to_background()
    rt = runtime(demo)
    require_schema(rt)
    configure_service_logging()
    scheduler = PollScheduler(rt, demo=demo, refresh_index=False)
    scheduler.start()
    for name, reason in scheduler.skipped.items():
        click.echo(f"{name}: skipped ({reason})", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown()


def _to_background() -> None:
    """This process and the threads it starts run only when a core has nothing else to do.

    Not merely a high nice: Linux (EEVDF) still gives a nice 10 process slices of a few milliseconds between
    the requests of the API beside it, which measured p99 35 ms at 1000 requests/s instead of 8 ms."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif hasattr(os, "nice"):
        os.nice(19)
    else:
        raise CliError("--background needs Linux or another Unix system")


@cli.command("check-config")
@one_line_errors
def check_config() -> None:
    """Validate settings and config files, then exit."""
    settings = load_settings()
    rt = runtime()
    if not settings.sources:
        raise ConfigError(f"{settings.config_path}: no sources configured")
    click.echo(
        f"ok: {len(settings.sources)} sources, {len(rt.catalog.models())} GPU models, "
        f"database {rt.engine.url.render_as_string(hide_password=True)}"
    )


def _add_commands() -> None:
    from broker.auth.cli import commands as key_commands
    from broker.exports.cli import commands as export_commands
    from broker.history.cli import commands as history_commands
    from broker.placement.cli import commands as placement_commands
    from broker.usage.cli import commands as usage_commands

    for command in (*placement_commands, *history_commands, *usage_commands, *export_commands, *key_commands):
        cli.add_command(command)


_add_commands()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:  # raised while building settings before any command ran
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
