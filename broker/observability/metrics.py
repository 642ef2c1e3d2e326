"""Prometheus metrics and the ``GET /metrics`` handler.

Counters and histograms live in one module registry and are fed by the functions below (the poll loop and the
placement service call them). Gauges about current data (offers and data age per source) are computed at scrape
time from the runtime's offer index, so they can never drift from what the API serves.

Under ``broker serve --workers N`` each API process keeps its counters in files under ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode, chosen when that variable is set before this module is imported) and a
scrape of any worker sums them all; the per-process collectors (CPU, memory, GC) are left out there, since they
would describe only the worker that happened to answer.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from litestar import Response, get
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broker.api.deps import RuntimeDep
from broker.domain import utcnow
from broker.polling.skipped import Skipped
from broker.runtime import Runtime
from broker.store.ingest import IngestResult

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
REGISTRY = CollectorRegistry()
if not MULTIPROCESS:
    ProcessCollector(registry=REGISTRY)
    PlatformCollector(registry=REGISTRY)
    GCCollector(registry=REGISTRY)

POLLS = Counter(
    "broker_polls",
    "Polls by source and outcome (ok, partial, suspect, failed, skipped)",
    ["source", "outcome"],
    registry=REGISTRY,
)
POLL_SECONDS = Histogram(
    "broker_poll_duration_seconds",
    "Wall-clock time of a poll, fetch and ingest",
    ["source"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
PLACEMENT_SECONDS = Histogram(
    "broker_placement_latency_seconds",
    "Time to compute one placement decision",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
DECISIONS = Counter(
    "broker_decisions",
    "Placement decisions by chosen provider and purchase option",
    ["provider", "purchase"],
    registry=REGISTRY,
)
REJECTED = Counter(
    "broker_rejected_requests",
    "Requests refused before or by validation, by reason",
    ["reason"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "broker_http_requests",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "broker_http_request_duration_seconds",
    "HTTP request latency by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)

REJECT_REASONS = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    413: "body_too_large",
    422: "invalid",
    429: "rate_limited",
}


def record_poll(result: IngestResult | Skipped, seconds: float) -> None:
    """Call once per ``poll_source`` with its result and wall-clock seconds."""
    if isinstance(result, Skipped):
        POLLS.labels(result.source, "skipped").inc()
        return
    POLLS.labels(result.source, result.outcome.value).inc()
    POLL_SECONDS.labels(result.source).observe(seconds)


def observe_placement_latency(seconds: float) -> None:
    PLACEMENT_SECONDS.observe(seconds)


def record_decision(provider: str, purchase: str) -> None:
    """Call once per decision served, with the chosen option's provider and purchase option."""
    DECISIONS.labels(provider, purchase).inc()


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """Called by the request middleware for every routed request."""
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_SECONDS.labels(method, route).observe(seconds)
    reason = REJECT_REASONS.get(status)
    if reason is not None:
        REJECTED.labels(reason).inc()


class IndexCollector(Collector):
    """Offers and data age per source, read from the offer index at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        holder = self.runtime.index
        index = holder.current
        now = utcnow()
        offers: Tally[str] = Tally()
        newest: dict[str, float] = {}
        for o in index.offers:
            offers[o.source] += 1
            stamp = index.confirmed_at(o).timestamp()
            if stamp > newest.get(o.source, 0.0):
                newest[o.source] = stamp
        count = GaugeMetricFamily("broker_offers", "Current offers in the index by source", labels=["source"])
        for source in sorted(set(self.runtime.settings.sources) | set(offers)):
            count.add_metric([source], offers.get(source, 0))
        age = GaugeMetricFamily(
            "broker_data_age_seconds",
            "Seconds since a poll last confirmed the source's newest price",
            labels=["source"],
        )
        for source, stamp in sorted(newest.items()):
            age.add_metric([source], max(now.timestamp() - stamp, 0.0))
        yield count
        yield age
        yield GaugeMetricFamily("broker_offer_index_loaded", "1 once the offer index was loaded", value=holder.loaded)
        yield GaugeMetricFamily(
            "broker_offer_index_age_seconds",
            "Seconds since the offer index was built",
            value=max((now - index.built_at).total_seconds(), 0.0),
        )


def exposition(runtime: Runtime) -> bytes:
    # the per-runtime collector is not registered anywhere: each scrape reads the runtime it was asked about
    return generate_latest(_all_processes() if MULTIPROCESS else REGISTRY) + generate_latest(
        _Single(IndexCollector(runtime))
    )


def _all_processes() -> CollectorRegistry:
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


class _Single:
    """The minimal registry interface ``generate_latest`` needs, around one collector."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        return iter(self.collector.collect())


@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics(runtime: RuntimeDep) -> Response[Any]:
    """Prometheus text exposition (needs a key with the read scope when auth is on)."""
    return Response(exposition(runtime), media_type=CONTENT_TYPE_LATEST)


ROUTES = [metrics]
