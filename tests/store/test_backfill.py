from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from broker.domain import OfferKey
from broker.gpus import GpuCatalog
from broker.store.backfill import load_history
from broker.store.ingest import apply_snapshot
from broker.store.models import Offer, PriceInterval
from tests.factories import T0, obs, snap

KEY = OfferKey(provider="aws", region="us-east-1", zone="us-east-1a", instance_type="p5.48xlarge", purchase="spot")


def history(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            (r.valid_from, r.valid_to, Decimal(str(r.hourly_usd)))
            for r in conn.execute(
                select(PriceInterval.valid_from, PriceInterval.valid_to, PriceInterval.hourly_usd)
                .join(Offer, Offer.id == PriceInterval.offer_id)
                .order_by(PriceInterval.valid_from)
            )
        ]


@pytest.fixture
def spot(engine: Engine, catalog: GpuCatalog) -> Engine:
    apply_snapshot(engine, snap([obs(zone="us-east-1a", purchase="spot", price="30")], source="aws"), catalog)
    return engine


def h(hours: int) -> object:
    return T0 - timedelta(hours=hours)


def test_backfill_adds_change_only_history_before_current_price(spot: Engine) -> None:
    points = [
        (KEY, h(30), Decimal("28")),
        (KEY, h(20), Decimal("28")),
        (KEY, h(10), Decimal("31")),
        (KEY, h(5), Decimal("30")),
    ]
    result = load_history(spot, "aws", points)
    assert (result.offers, result.unknown_offers) == (1, 0)
    assert history(spot) == [
        (h(30), h(10), Decimal("28")),  # 28 held from -30h until the change at -10h (the -20h point adds no row)
        (h(10), h(5), Decimal("31")),
        (h(5), None, Decimal("30")),  # the current price simply started at -5h
    ]


def test_backfill_is_idempotent(spot: Engine) -> None:
    points = [(KEY, h(10), Decimal("31")), (KEY, h(5), Decimal("29"))]
    load_history(spot, "aws", points)
    before = history(spot)
    again = load_history(spot, "aws", points)
    assert again.rows_written == 0
    assert history(spot) == before


def test_points_for_unlisted_offers_are_counted_not_invented(spot: Engine) -> None:
    other = OfferKey(
        provider="aws", region="us-west-2", instance_type="p5.48xlarge", purchase="spot", zone="us-west-2b"
    )
    result = load_history(spot, "aws", [(other, h(3), Decimal("20"))])
    assert result.unknown_offers == 1
    assert result.rows_written == 0
