"""A week of polls for the dashboard tests: four sources polled every 6 hours, prices that move, one polling gap
and one failed poll. Times are relative to now so the dashboard's "last 7 days" shows all of it."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from broker.domain import Snapshot
from broker.runtime import Runtime
from broker.settings import Settings
from broker.store.ingest import apply_snapshot, record_failure
from tests.factories import obs

POLL_EVERY = timedelta(hours=6)
INTERVAL_MINUTES = 360  # the configured interval of the seeded sources: the history gaps are 2.5x this
LAMBDA_ERROR = "HTTP 503 from cloud.lambdalabs.com: service unavailable (3 attempts)"
AZURE_GAP_DAYS = (3, 2)  # azure is not polled from 3 days ago until 2 days ago (longer than 2.5 intervals)

# (source, region, zone, instance type, purchase, gpu, gpus) -> [(days ago the price took effect, USD/instance-hour)]
Offer = tuple[str, str, str, str, str, str, int]
PRICES: dict[Offer, list[tuple[float, str]]] = {
    ("aws", "us-east-1", "", "p5.48xlarge", "on_demand", "H100-SXM", 8): [(8, "55.04")],
    ("aws", "us-east-1", "us-east-1a", "p5.48xlarge", "spot", "H100-SXM", 8): [
        (8, "24.16"), (5, "22.80"), (3, "26.40"), (1, "21.60")],
    ("aws", "us-east-1", "", "p4de.24xlarge", "on_demand", "A100-80GB", 8): [(8, "40.97")],
    ("aws", "us-east-1", "us-east-1b", "p4de.24xlarge", "spot", "A100-80GB", 8): [
        (8, "16.24"), (4, "14.80"), (2, "17.36")],
    ("azure", "eastus", "", "Standard_ND96isr_H100_v5", "on_demand", "H100-SXM", 8): [(8, "98.32")],
    ("azure", "eastus", "", "Standard_ND96isr_H100_v5", "spot", "H100-SXM", 8): [(8, "30.00"), (4.5, "28.48")],
    ("azure", "eastus", "", "Standard_ND96amsr_A100_v4", "on_demand", "A100-80GB", 8): [(8, "32.77")],
    ("azure", "eastus", "", "Standard_ND96amsr_A100_v4", "spot", "A100-80GB", 8): [(8, "13.12"), (5, "12.40")],
    ("lambda", "us-east-1", "", "gpu_8x_h100_sxm5", "on_demand", "H100-SXM", 8): [(8, "23.92"), (2, "19.92")],
    ("lambda", "us-east-1", "", "gpu_8x_a100_80gb_sxm4", "on_demand", "A100-80GB", 8): [(8, "14.32")],
    ("coreweave", "US-EAST-04", "", "gd-8xh100ib-i128", "on_demand", "H100-SXM", 8): [(8, "49.24")],
    ("coreweave", "US-EAST-04", "", "gd-8xa100-i128", "on_demand", "A100-80GB", 8): [(8, "21.60")],
}  # fmt: skip
SOURCES = sorted({o[0] for o in PRICES})
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example", "LAMBDA_API_KEY": "example"}


def seeded_settings(settings: Settings) -> Settings:
    """The project's configuration with the seeded sources polled every 6 hours and authentication off."""
    sources = {
        name: dataclasses.replace(cfg, interval_minutes=INTERVAL_MINUTES) if name in SOURCES else cfg
        for name, cfg in settings.sources.items()
    }
    missing = set(SOURCES) - set(sources)
    assert not missing, f"config/broker.toml no longer has the sources {missing}"
    return dataclasses.replace(settings, sources=sources, server=settings.server.model_copy(update={"auth": False}))


def price_at(history: list[tuple[float, str]], now: datetime, t: datetime) -> str:
    current = history[0][1]
    for days_ago, price in history:
        if t >= now - timedelta(days=days_ago):
            current = price
    return current


def seed(runtime: Runtime, now: datetime) -> None:
    first = now - timedelta(days=7, hours=5)
    gap_from, gap_to = (now - timedelta(days=d) for d in AZURE_GAP_DAYS)
    times = [first + i * POLL_EVERY for i in range(int((now - first) / POLL_EVERY) + 1)]
    times.append(now - timedelta(minutes=3))
    for source in SOURCES:
        for t in times:
            if source == "azure" and gap_from < t < gap_to:
                continue
            observations = [
                obs(it, price_at(hist, now, t), provider=src, region=region, zone=zone, purchase=purchase, gpu=gpu,
                    gpus=gpus)
                for (src, region, zone, it, purchase, gpu, gpus), hist in PRICES.items()
                if src == source
            ]  # fmt: skip
            snapshot = Snapshot(source=source, naming="canonical", taken_at=t, observations=observations, complete=True)
            result = apply_snapshot(runtime.engine, snapshot, runtime.catalog, started_at=t)
            assert result.outcome.value == "ok", result.summary()
    # lambda's newest poll failed: its prices stay, its health row shows the error
    record_failure(runtime.engine, "lambda", now - timedelta(minutes=1), LAMBDA_ERROR)
