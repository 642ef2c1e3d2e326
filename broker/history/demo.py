"""Recorded price history for ``--demo``: a month of a real GPU marketplace, replayed through ingest.

The data (``adapters/demo_payloads/history/``, see PROVENANCE.txt there) is hourly polls of per-provider minimum
prices per GPU; its timeline is shifted so the last poll lands in the current hour, so a new user's dashboard shows
a month of moving prices at once. ``load_demo_history`` is idempotent: once the source has polls it writes nothing.

``python -m broker.history.demo TRACKER_DIR`` rebuilds the data file from the tracker's ``*.jsonl``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from adapters.base import DEMO_PAYLOADS
from broker.domain import Availability, OfferKey, PriceObservation, Snapshot, utcnow
from broker.runtime import Runtime
from broker.store.ingest import GpuResolver, apply_snapshot

SOURCE = "demo-history"
FORMAT = "gpu-broker.history/v1"
DATA = DEMO_PAYLOADS / "history" / "primeintellect-marketplace-history.json"
# tracker (gpu_type, socket) -> catalog model; instance types as in demo_payloads/file/
MODELS = {("A100_80GB", "PCIe"): "A100-80GB", ("A100_80GB", "SXM4"): "A100-80GB", ("B200_180GB", None): "B200",
          ("GH200_96GB", None): "GH200", ("H100_80GB", "PCIe"): "H100-PCIE", ("H100_80GB", "SXM5"): "H100-SXM",
          ("H200_141GB", None): "H200"}  # fmt: skip
PRICE_NOTE = "Prime Intellect marketplace aggregate, minimum per provider (tugot17/gpu-price-tracker), replayed"


def load_demo_history(runtime: Runtime, path: Path = DATA, now: datetime | None = None) -> int:
    """Apply the recorded polls in time order; returns how many were applied (0 when already loaded)."""
    with runtime.engine.connect() as conn:
        if conn.execute(text("SELECT 1 FROM poll_runs WHERE source = :s LIMIT 1"), {"s": SOURCE}).first():
            return 0
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    step = timedelta(minutes=int(data["step_minutes"]))
    hour = (now or utcnow()).replace(minute=0, second=0, microsecond=0)
    shift = hour - (datetime.fromisoformat(data["start"]) + step * data["hours"][-1])
    start = datetime.fromisoformat(data["start"]) + shift
    offers = data["offers"]
    changes: dict[int, list[tuple[int, str | None]]] = {}
    for h, i, price in data["changes"]:
        changes.setdefault(h, []).append((i, price))
    resolve = GpuResolver(runtime.catalog)
    state: dict[int, str] = {}
    applied = 0
    for h in data["hours"]:
        for i, price in changes.get(h, ()):
            if price is None:
                state.pop(i, None)
            else:
                state[i] = price
        t = start + step * h
        observations = [_observation(offers[i], price) for i, price in sorted(state.items())]
        snap = Snapshot(source=SOURCE, naming="canonical", taken_at=t, observations=observations, demo=True)
        apply_snapshot(runtime.engine, snap, resolve, started_at=t)
        applied += 1
    runtime.index.refresh()
    return applied


def _observation(offer: list[Any], price: str) -> PriceObservation:
    provider, instance_type, gpu, memory = offer
    return PriceObservation(
        key=OfferKey(provider=provider, region="marketplace", instance_type=instance_type, purchase="on_demand"),
        hourly_usd=Decimal(price), gpu_name=gpu, gpu_count=1, gpu_memory_gb=float(memory),
        availability=Availability.UNKNOWN, attrs={"price_source": PRICE_NOTE},
    )  # fmt: skip


def derive(tracker: Path) -> dict[str, Any]:
    """Hourly polls from the tracker's snapshots (~every 40 min per GPU type): per hour, per GPU type, its last
    snapshot in that hour; a GPU type with no snapshot in an hour keeps its prices; hours with none are gaps."""
    per_hour: dict[datetime, dict[str, dict[str, str]]] = {}
    offers: list[list[Any]] = []
    index: dict[tuple[str, str], int] = {}
    for f in sorted(tracker.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            model = MODELS[(rec["gpu_type"], rec.get("socket_type"))]
            itype = f"{rec['gpu_type'].lower()}-{(rec.get('socket_type') or 'std').lower()}-1x"
            memory = float(rec["gpu_type"].rsplit("_", 1)[1].removesuffix("GB"))
            t = datetime.fromisoformat(rec["timestamp"]).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            prices = {}
            for provider, stats in sorted(rec["by_provider"].items()):
                if (provider, itype) not in index:
                    index[(provider, itype)] = len(offers)
                    offers.append([provider, itype, model, memory])
                prices[provider] = str(Decimal(str(stats["min"])))
            per_hour.setdefault(t, {})[itype] = prices
    hours = sorted(per_hour)
    start = hours[0]
    state: dict[int, str] = {}
    changes: list[list[Any]] = []
    for t in hours:
        h = int((t - start).total_seconds() // 3600)
        for itype, prices in per_hour[t].items():
            now = {index[(p, itype)]: v for p, v in prices.items()}
            for i in sorted({i for i in state if offers[i][1] == itype} | set(now)):
                if state.get(i) != now.get(i):
                    changes.append([h, i, now.get(i)])
                    if i in now:
                        state[i] = now[i]
                    else:
                        del state[i]
    return {
        "format": FORMAT, "start": start.isoformat(), "step_minutes": 60,
        "hours": [int((t - start).total_seconds() // 3600) for t in hours],
        "offers": offers, "changes": changes,
    }  # fmt: skip


if __name__ == "__main__":
    out = derive(Path(sys.argv[1]))
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{DATA}: {len(out['hours'])} polls, {len(out['offers'])} offers, {len(out['changes'])} changes")
