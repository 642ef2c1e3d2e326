"""The Litestar application: ``create_app()`` wires the domain packages' endpoints onto one runtime."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from broker import __version__
from broker.api.deps import provide_runtime
from broker.api.problems import EXCEPTION_HANDLERS
from broker.auth.endpoints import ROUTES as key_routes
from broker.auth.guards import api_key_guard
from broker.domain import utcnow
from broker.exports.endpoints import ROUTES as export_routes
from broker.gcpause import gc_paused
from broker.health.endpoints import healthz, readyz
from broker.history import rollup
from broker.history.endpoints import ROUTES as history_routes
from broker.observability.logging import RequestContextMiddleware, configure_service_logging
from broker.observability.metrics import ROUTES as metric_routes
from broker.offers.endpoints import list_offers
from broker.pacing import one_at_a_time, paced
from broker.placement.endpoints import ROUTES as placement_routes
from broker.placement.service import DecisionLog
from broker.polling.scheduler import PollScheduler
from broker.providers.endpoints import list_providers
from broker.reports.endpoints import ROUTES as report_routes
from broker.risk.endpoints import ROUTES as risk_routes
from broker.runtime import Runtime
from broker.ui.endpoints import ROUTES as ui_routes
from broker.usage.endpoints import ROUTES as usage_routes

log = logging.getLogger(__name__)
REBUILD_SWITCH_INTERVAL_S = 0.0005


class IndexRefresher:
    """Rebuilds the offer index when another process (a poll, another replica) recorded a poll, paced to at most
    ``share`` of the time so that the requests served meanwhile keep the interpreter (broker.pacing)."""

    def __init__(self, runtime: Runtime, every_s: float, share: float = 1.0) -> None:
        self.runtime = runtime
        self.every_s = every_s
        self.share = share
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="index-refresher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _one_at_a_time(self) -> AbstractContextManager[None]:
        return one_at_a_time(self.runtime.settings.data_dir / ".index-rebuild.lock")

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            # A rebuild takes a second or two of interpreter time next to the requests. Handing the interpreter
            # back every 0.5 ms instead of 5 ms keeps each request's wait for it short meanwhile.
            interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, REBUILD_SWITCH_INTERVAL_S))
            try:
                # the collector stays off until the new index is frozen: switched on before, its first pass would
                # walk all of it in one go (a stall of 100+ ms) and free nothing
                with gc_paused(), paced(self.share):
                    if self.runtime.index.refresh_if_changed(gate=self._one_at_a_time):
                        gc.freeze()  # long-lived: keep the collector from rescanning it per request
            except Exception as exc:  # the database may be away for a while: keep serving the last index
                log.warning("offer index refresh failed: %s", exc)
            finally:
                sys.setswitchinterval(interval)


def _refresh_rollups(runtime: Runtime) -> None:
    try:
        rollup.refresh(runtime.engine, utcnow())
    except Exception as exc:  # history answers from raw rows meanwhile
        log.warning("history summaries not refreshed: %s", exc)


def create_app(runtime: Runtime | None = None, *, schedule: bool = False, demo: bool | None = None) -> Litestar:
    runtime = runtime or Runtime.create(demo=bool(demo))
    if demo is not None:
        runtime.demo = demo
    settings = runtime.settings

    runtime.placement_config  # noqa: B018  (a bad placement/egress file stops the start, not the first request)
    decisions = DecisionLog(runtime)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            with gc_paused():  # frozen before the collector is back on (IndexRefresher._loop says why)
                runtime.index.refresh()
                gc.freeze()
        except Exception as exc:
            log.warning("offer index not loaded at start: %s", exc)
        refresher = IndexRefresher(runtime, settings.server.index_refresh_seconds, settings.server.background_share)
        refresher.start()
        # bring the daily history summaries up to date off the request path (a first build can take a while)
        rollups = threading.Thread(target=_refresh_rollups, args=(runtime,), name="history-rollup", daemon=True)
        rollups.start()
        decisions.start()
        scheduler = PollScheduler(runtime, demo=runtime.demo) if schedule else None
        if scheduler is not None:
            scheduler.start()
            app.state.scheduler = scheduler
        try:
            yield
        finally:
            refresher.stop()
            decisions.stop()
            rollups.join(timeout=30)  # it builds a week per transaction: never leave one half-way at shutdown
            if scheduler is not None:
                scheduler.shutdown()

    cors = CORSConfig(allow_origins=list(settings.server.cors_origins)) if settings.server.cors_origins else None
    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            list_offers,
            list_providers,
            *placement_routes,
            *usage_routes,
            *risk_routes,
            *report_routes,
            *export_routes,
            *key_routes,
            *metric_routes,
            *history_routes,
            *ui_routes,
        ],
        guards=[api_key_guard(runtime)],
        middleware=[RequestContextMiddleware()],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=[lifespan],
        state=State({"runtime": runtime, "scheduler": None, "decisions": decisions}),
        cors_config=cors,
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="GPU price-arbitrage broker",
            version=__version__,
            path="/schema",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", description="an API key from `broker keys`"),
                    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
                }
            ),
            security=[{"bearer": []}, {"apiKey": []}],
        ),
        debug=False,
        # logging is ours (configure_logging: JSON lines, secrets redacted); Litestar's default config would
        # replace the root handler with its own plain-text queue handler
        logging_config=None,
    )


# `broker serve --workers N` hands its command-line choices to the API processes it starts (JSON)
SERVE_OPTIONS_ENV = "BROKER_SERVE_OPTIONS"


def serving_runtime(*, demo: bool, no_auth: bool) -> Runtime:
    """The runtime ``broker serve`` answers from: settings from the environment, auth turned off on request."""
    runtime = Runtime.create(demo=demo)
    if no_auth:
        server = runtime.settings.server.model_copy(update={"auth": False})
        runtime.settings = dataclasses.replace(runtime.settings, server=server)
    return runtime


def worker_app() -> Litestar:
    """One API process of ``broker serve --workers N`` (a uvicorn app factory). It serves only: the scheduled
    polls run in ``broker worker``, so that no API process stalls on a large ingest."""
    options = json.loads(os.environ.get(SERVE_OPTIONS_ENV) or "{}")
    configure_service_logging()
    demo = bool(options.get("demo", False))
    runtime = serving_runtime(demo=demo, no_auth=bool(options.get("no_auth", False)))
    return create_app(runtime, schedule=False, demo=demo)
