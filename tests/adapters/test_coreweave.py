"""CoreWeave: the project's own rate card of CoreWeave's published prices, through the real source."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.base import SourceContext
from adapters.coreweave import CoreWeaveSource
from adapters.ratecard import load_ratecard
from broker.domain import Availability, OfferKey, Purchase, SourceError
from broker.gpus import GpuCatalog

CONFIG = Path(__file__).resolve().parents[2] / "config"
CARD = CONFIG / "ratecards" / "coreweave.toml"


def source(now: datetime = datetime(2026, 11, 27, tzinfo=UTC), **options: Any) -> CoreWeaveSource:
    return CoreWeaveSource(SourceContext(name="coreweave", options=options, env={}, catalog=GpuCatalog([]),
                                         config_dir=CONFIG, now=lambda: now))


def test_default_card_yields_coreweave_offers() -> None:
    snap = source().fetch()
    assert (snap.source, snap.naming, snap.complete, snap.warnings) == ("coreweave", "coreweave", True, [])
    by_key = {o.key: o for o in snap.observations}
    h100 = by_key[OfferKey("coreweave", "US-EAST-04", "gd-8xh100ib-i128", Purchase.ON_DEMAND)]
    assert (h100.hourly_usd, h100.gpu_count, h100.gpu_name) == (Decimal("49.24"), 8, "HGX H100")
    assert by_key[OfferKey("coreweave", "US-EAST-04", "gd-8xh100ib-i128", Purchase.SPOT)].hourly_usd == Decimal("19.71")
    gb200 = by_key[OfferKey("coreweave", "US-WEST-01", "gb200-4x", Purchase.ON_DEMAND)]
    assert (gb200.hourly_usd, gb200.gpu_count) == (Decimal("42.00"), 4)
    assert all(o.availability is Availability.UNKNOWN for o in snap.observations)
    assert all(o.attrs["price_source"] == "ratecard" for o in snap.observations)
    assert all(o.attrs["ratecard_source"].startswith("https://") for o in snap.observations)


def test_card_covers_the_published_lineup_with_provenance() -> None:
    card = load_ratecard(CARD)
    on_demand = {e.instance_type: e.hourly_usd() for e in card.entries if e.purchase is Purchase.ON_DEMAND}
    assert on_demand == {
        "gb200-4x": Decimal("42.00"),
        "b200-8x": Decimal("68.80"),
        "gd-8xh200ib-i128": Decimal("50.44"),
        "gd-8xh100ib-i128": Decimal("49.24"),
        "gd-8xa100-i128": Decimal("21.60"),
        "rtxp6000-8x": Decimal("20.00"),
        "gd-8xl40s-i128": Decimal("18.00"),
        "gd-8xl40-i128": Decimal("10.00"),
        "gd-1xgh200": Decimal("6.50"),
    }
    # spot is never dearer than on demand for the same instance
    for e in card.entries:
        if e.purchase is Purchase.SPOT:
            assert e.hourly_usd() < on_demand[e.instance_type]
    assert card.source == "https://www.coreweave.com/pricing"


def test_past_valid_until_the_prices_are_flagged_stale() -> None:
    snap = source(now=datetime(2027, 3, 21, tzinfo=UTC)).fetch()
    assert snap.observations and all(o.attrs["ratecard_stale"] is True for o in snap.observations)
    assert any("expired on 2027-03-20" in w for w in snap.warnings)


def test_a_card_for_another_provider_is_refused(tmp_path: Path) -> None:
    card = tmp_path / "aws.toml"
    card.write_text(CARD.read_text(encoding="utf-8").replace('provider = "coreweave"', 'provider = "aws"'),
                    encoding="utf-8")
    with pytest.raises(SourceError, match=r"another provider: aws\.toml \(aws\)"):
        source(paths=[str(card)]).fetch()
