"""Backfill: past prices of existing offers loaded as history (e.g. 90 days of AWS spot prices).

Points older than an offer's first stored price become closed intervals before it (change-only: equal
consecutive prices make one interval). Idempotent: a point at or after the offer's first stored price is
already history or present, so a second run writes nothing. Resumable: each offer commits on its own, and an
interrupted run simply continues where the stored history begins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, update

from broker.domain import OfferKey
from broker.store.ingest import offer_key_hash
from broker.store.models import Offer, PriceInterval, table

OFFERS, PRICES = table(Offer), table(PriceInterval)


@dataclass(slots=True)
class BackfillResult:
    points: int = 0
    offers: int = 0
    rows_written: int = 0
    unknown_offers: int = 0  # points for offers this source has never listed (poll it first)
    unknown_keys: set[OfferKey] = field(default_factory=set)


def load_history(engine: Engine, source: str, points: Iterable[tuple[OfferKey, datetime, Decimal]]) -> BackfillResult:
    result = BackfillResult()
    series: dict[OfferKey, dict[datetime, Decimal]] = defaultdict(dict)
    for key, at, price in points:
        if at.tzinfo is None:
            raise ValueError("backfill points must carry timezone-aware UTC times")
        result.points += 1
        series[key][at] = price.quantize(Decimal("1e-8"))
    for key, by_time in series.items():
        with engine.begin() as conn:
            # by the unique (source, key_hash): the key columns have no index of their own
            offer_id = conn.execute(
                select(OFFERS.c.id).where(OFFERS.c.source == source, OFFERS.c.key_hash == offer_key_hash(key))
            ).scalar_one_or_none()
            if offer_id is None:
                result.unknown_offers += 1
                result.unknown_keys.add(key)
                continue
            first = conn.execute(
                select(PRICES.c.id, PRICES.c.valid_from, PRICES.c.hourly_usd)
                .where(PRICES.c.offer_id == offer_id)
                .order_by(PRICES.c.valid_from)
                .limit(1)
            ).first()
            earliest = first.valid_from if first else None
            older = sorted((t, p) for t, p in by_time.items() if earliest is None or t < earliest)
            if not older:
                continue
            result.offers += 1
            # runs of equal consecutive prices: [start, last seen, price]; a row only where the price changed
            runs: list[list[Any]] = []
            for t, p in older:
                if runs and runs[-1][2] == p:
                    runs[-1][1] = t
                else:
                    runs.append([t, t, p])
            end_last: datetime | None = earliest
            if first is not None and Decimal(str(first.hourly_usd)) == runs[-1][2]:
                # the oldest stored price simply started earlier
                conn.execute(update(PRICES).where(PRICES.c.id == first.id).values(valid_from=runs[-1][0]))
                result.rows_written += 1
                end_last = runs.pop()[0]
            ends = [r[0] for r in runs[1:]] + ([end_last] if runs else [])
            rows = [
                {"offer_id": offer_id, "hourly_usd": price, "list_hourly_usd": None, "valid_from": start,
                 "valid_to": end, "last_confirmed_at": seen, "poll_run_id": None}
                for (start, seen, price), end in zip(runs, ends, strict=True)
            ]  # fmt: skip
            if rows:
                conn.execute(insert(PRICES), rows)
                result.rows_written += len(rows)
    return result
