"""A snapshot file in the broker's own interchange format (``gpu-broker.snapshot/v1``).

Lets operators feed prices from anywhere (a script, another tool, a spreadsheet export) before or beside the
cloud adapters. The format, documented in the README::

    {"format": "gpu-broker.snapshot/v1", "taken_at": "2026-11-01T00:00:00Z", "complete": true,
     "naming": "canonical",
     "offers": [{"provider": "aws", "region": "us-east-1", "zone": null, "instance_type": "p5.48xlarge",
                 "purchase": "on_demand", "term": null, "payment": null, "plan": null,
                 "gpu": "H100-SXM", "gpu_count": 8, "gpu_memory_gb": 80, "vcpus": 192, "memory_gb": 2048,
                 "hourly_usd": "98.32", "currency": "USD", "availability": "unknown"}]}

``hourly_usd`` is USD per instance-hour (a string keeps it exact). Options: ``path`` (a file, or a directory
whose ``*.json`` files are read in name order), relative to the config directory.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from adapters.base import DEMO_PAYLOADS, Source
from broker.domain import Availability, OfferKey, PriceObservation, Snapshot, SourceError

FORMAT = "gpu-broker.snapshot/v1"
REQUIRED = ("provider", "region", "instance_type", "purchase", "gpu", "gpu_count", "hourly_usd")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_offer(row: Any) -> PriceObservation:
    """One offer of the interchange format; raises ValueError naming what is wrong."""
    if not isinstance(row, dict):
        raise ValueError("offer is not an object")
    for name in REQUIRED:
        if row.get(name) in (None, ""):
            raise ValueError(f"missing field {name}")
    try:
        price = Decimal(str(row["hourly_usd"]))
        list_price = None if row.get("list_hourly_usd") is None else Decimal(str(row["list_hourly_usd"]))
    except InvalidOperation:
        raise ValueError("hourly_usd is not a number") from None
    try:
        availability = Availability(row.get("availability") or "unknown")
    except ValueError:
        raise ValueError("unknown availability state") from None
    return PriceObservation(
        key=OfferKey(
            provider=str(row["provider"]),
            region=str(row["region"]),
            zone=str(row.get("zone") or ""),
            instance_type=str(row["instance_type"]),
            purchase=str(row["purchase"]),
            term=str(row.get("term") or ""),
            payment=str(row.get("payment") or ""),
            plan=str(row.get("plan") or ""),
        ),
        hourly_usd=price,
        list_hourly_usd=list_price,
        currency=str(row.get("currency") or "USD"),
        gpu_name=str(row["gpu"]),
        gpu_count=int(row["gpu_count"]),
        gpu_memory_gb=_opt_float(row.get("gpu_memory_gb")),
        vcpus=_opt_float(row.get("vcpus")),
        memory_gb=_opt_float(row.get("memory_gb")),
        availability=availability,
        available_quantity=None if row.get("available_quantity") is None else int(row["available_quantity"]),
        attrs=dict(row.get("attrs") or {}),
    )


class FileSnapshotSource(Source):
    kind = "file"
    naming = "canonical"

    def _paths(self) -> list[Path]:
        if self.ctx.demo:
            return sorted((DEMO_PAYLOADS / "file").glob("*.json"))
        raw = self.ctx.options.get("path")
        if not raw:
            raise SourceError(f"source {self.ctx.name}: option 'path' is not set (a snapshot file or directory)")
        path = Path(str(raw))
        path = path if path.is_absolute() else self.ctx.config_dir / path
        if path.is_dir():
            return sorted(path.glob("*.json"))
        if not path.exists():
            raise SourceError(f"source {self.ctx.name}: snapshot file {path} does not exist")
        return [path]

    def missing_credentials(self) -> str | None:
        raw = self.ctx.options.get("path")
        if not raw:
            return "option 'path' is not set"
        path = Path(str(raw))
        path = path if path.is_absolute() else self.ctx.config_dir / path
        if not path.exists() or (path.is_dir() and not any(path.glob("*.json"))):
            return f"no snapshot files at {path}"
        return None

    def fetch(self) -> Snapshot:
        paths = self._paths()
        if not paths:
            raise SourceError(f"source {self.ctx.name}: no snapshot files found")
        observations: list[PriceObservation] = []
        rejected: Counter[str] = Counter()
        taken: list[datetime] = []
        complete = True
        naming = self.naming
        for path in paths:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise SourceError(f"snapshot file {path}: cannot read it as JSON ({exc})") from None
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise SourceError(f"snapshot file {path}: 'format' must be {FORMAT!r}")
            offers = doc.get("offers")
            if not isinstance(offers, list):
                raise SourceError(f"snapshot file {path}: 'offers' must be a list")
            try:
                if doc.get("taken_at"):
                    at = datetime.fromisoformat(str(doc["taken_at"]).replace("Z", "+00:00"))
                    if at.tzinfo is None:
                        raise ValueError("no timezone")
                    taken.append(at.astimezone(UTC))
            except ValueError as exc:
                raise SourceError(f"snapshot file {path}: 'taken_at' is not an ISO 8601 UTC time ({exc})") from None
            complete = complete and bool(doc.get("complete", True))
            naming = str(doc.get("naming") or naming)
            for row in offers:
                try:
                    observations.append(parse_offer(row))
                except (ValueError, TypeError) as exc:
                    rejected[str(exc)] += 1
        return Snapshot(
            source=self.ctx.name,
            naming=naming,
            # demo files are replayed as if seen now, so the demo answers with fresh prices
            taken_at=max(taken) if taken and not self.ctx.demo else self.ctx.now(),
            observations=observations,
            complete=complete,
            rejected=rejected,
            demo=self.ctx.demo,
        )
