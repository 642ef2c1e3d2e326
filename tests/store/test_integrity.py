"""What the interval tables' missing foreign keys and the hashed offer key rely on (see broker/store/models.py).

Ingest is the writer of offers and intervals. Whatever a snapshot does (new, changed, withdrawn, reopened, rejected,
suspect, partial, failed half-way), no interval may point at a missing offer or poll run, and every live offer has
exactly one open price and one open availability row.
"""

from __future__ import annotations

import importlib.util
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from broker.domain import Availability, OfferKey, Outcome, PriceObservation
from broker.gpus import GpuCatalog
from broker.store import ingest
from broker.store.ingest import apply_snapshot, offer_key_hash, record_failure
from broker.store.models import Offer, PriceInterval, table
from tests.factories import obs, snap, universe

ROOT = Path(__file__).resolve().parents[2]


def violations(engine: Engine) -> dict[str, int]:
    checks = {
        "price rows without offer": "SELECT COUNT(*) FROM price_intervals p "
        "WHERE NOT EXISTS (SELECT 1 FROM offers o WHERE o.id = p.offer_id)",
        "availability rows without offer": "SELECT COUNT(*) FROM availability_intervals a "
        "WHERE NOT EXISTS (SELECT 1 FROM offers o WHERE o.id = a.offer_id)",
        "price rows without poll run": "SELECT COUNT(*) FROM price_intervals p WHERE p.poll_run_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM poll_runs r WHERE r.id = p.poll_run_id)",
        "live offers without exactly one open price": "SELECT COUNT(*) FROM offers o WHERE o.withdrawn_at IS NULL "
        "AND (SELECT COUNT(*) FROM price_intervals p WHERE p.offer_id = o.id AND p.valid_to IS NULL) <> 1",
        "live offers without exactly one open availability": "SELECT COUNT(*) FROM offers o "
        "WHERE o.withdrawn_at IS NULL AND (SELECT COUNT(*) FROM availability_intervals a "
        "WHERE a.offer_id = o.id AND a.valid_to IS NULL) <> 1",
        "withdrawn offers with open rows": "SELECT COUNT(*) FROM offers o WHERE o.withdrawn_at IS NOT NULL AND "
        "(EXISTS (SELECT 1 FROM price_intervals p WHERE p.offer_id = o.id AND p.valid_to IS NULL) OR "
        "EXISTS (SELECT 1 FROM availability_intervals a WHERE a.offer_id = o.id AND a.valid_to IS NULL))",
    }
    with engine.connect() as conn:
        found = {name: int(conn.execute(text(sql)).scalar_one()) for name, sql in checks.items()}
    return {name: n for name, n in found.items() if n}


def test_ingest_never_writes_an_orphan_or_a_second_current_row(
    engine: Engine, catalog: GpuCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[tuple[str, Outcome]] = []

    def apply(name: str, observations: list[PriceObservation], minutes: int, complete: bool = True) -> None:
        result = apply_snapshot(engine, snap(observations, minutes=minutes, complete=complete), catalog)
        steps.append((name, result.outcome))
        assert violations(engine) == {}, name

    base = universe(20)
    apply("first", base, 0)
    apply("again", base, 15)
    changed = [obs(f"type-{i}", "11.00" if i % 3 == 0 else "10.00", gpu="A100-80GB") for i in range(20)]
    changed[1] = obs("type-1", "10.00", gpu="A100-80GB", availability=Availability.AVAILABLE)
    apply("prices and availability change", changed, 30)
    apply("three withdrawn, two new", [*changed[:17], obs("n1", "5", gpu="L4", gpus=1), obs("n2", "6")], 45)
    apply("withdrawn ones back", [*changed, obs("n1", "5", gpu="L4", gpus=1), obs("n2", "6")], 60)
    apply("partial", changed[:5], 75, complete=False)
    apply("suspect", changed[:5], 90)
    apply("rejected rows", [*changed, obs("n1", "5", gpu="L4", gpus=1), obs("n2", "0"), obs("", "3")], 105)
    record_failure(engine, "test", snap([]).taken_at, "HTTP 500")
    assert violations(engine) == {}

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(ingest, "_withdraw", boom)
    with pytest.raises(RuntimeError):
        apply("failed half-way", [obs(f"type-{i}", "12.00", gpu="A100-80GB") for i in range(25)], 120)
    assert violations(engine) == {}
    assert [outcome for _, outcome in steps] == [Outcome.OK] * 5 + [Outcome.PARTIAL, Outcome.SUSPECT, Outcome.PARTIAL]


def test_violations_are_seen(engine: Engine, catalog: GpuCatalog) -> None:
    """The checks above can fail: an interval pointing nowhere is reported."""
    apply_snapshot(engine, snap(universe(2)), catalog)
    with engine.begin() as conn:
        conn.execute(text("UPDATE price_intervals SET offer_id = offer_id + 1000, poll_run_id = 9999"))
    assert set(violations(engine)) == {
        "price rows without offer",
        "price rows without poll run",
        "live offers without exactly one open price",
    }


def test_offers_are_keyed_by_the_hash_of_their_key(engine: Engine, catalog: GpuCatalog) -> None:
    observations = [obs("a"), obs("a", zone="us-east-1b", purchase="spot"), obs("b", term="1y", purchase="reserved")]
    apply_snapshot(engine, snap(observations), catalog)
    spec = importlib.util.spec_from_file_location("m0006", ROOT / "migrations/versions/0006_ingest_key_hash.py")
    assert spec and spec.loader
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with engine.connect() as conn:
        rows = conn.execute(select(Offer)).all()
    assert len(rows) == 3
    for r in rows:
        key = OfferKey(provider=r.provider, region=r.region, zone=r.zone, instance_type=r.instance_type,
                       purchase=r.purchase, term=r.term, payment=r.payment, plan=r.plan)  # fmt: skip
        assert r.key_hash == offer_key_hash(key)
        # the migration fills key_hash of existing offers with its own frozen copy of the function
        assert migration.key_hash([getattr(r, c) for c in migration.KEY_COLUMNS]) == r.key_hash
    assert len({r.key_hash for r in rows}) == 3


def test_the_database_refuses_a_second_offer_with_the_same_key(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap([obs("a")]), catalog)
    offers = table(Offer)
    cols = [c for c in offers.c if c.name != "id"]
    with engine.connect() as conn:
        row = conn.execute(select(*cols)).one()
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(offers.insert(), {c.name: v for c, v in zip(cols, row, strict=True)})


def test_a_nul_in_the_key_is_rejected_not_stored(engine: Engine, catalog: GpuCatalog) -> None:
    # "a\0b" + "c" and "a" + "b\0c" would join to the same bytes
    result = apply_snapshot(engine, snap([obs("p5"), obs("p5", zone="x\x00y")]), catalog)
    assert result.rejected == {"NUL character in the offer key": 1}
    assert result.offers_new == 1


def _stamps(engine: Engine) -> list[tuple[Decimal, datetime | None, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(PriceInterval.hourly_usd, PriceInterval.valid_to, PriceInterval.last_confirmed_at).order_by(
                PriceInterval.id
            )
        ).all()
    return [(Decimal(str(r[0])), r[1], r[2]) for r in rows]


@pytest.mark.parametrize(
    ("polls", "seen_at"),
    [
        # (minutes, complete, price): the last poll changes the price and closes the first row
        ([(0, True, "10"), (15, True, "10"), (30, True, "11")], 15),  # the last complete poll vouched for it
        ([(0, True, "10"), (15, True, "10"), (20, False, "10"), (30, True, "11")], 20),  # a later partial one
        ([(0, False, "10"), (20, False, "10"), (30, False, "11")], 20),  # partial polls only
        ([(0, False, "10"), (40, False, "10"), (30, False, "11")], 30),  # never after the closing poll
        ([(0, True, "10"), (40, False, "10"), (30, True, "11")], 0),  # ... the complete poll before it counts
        ([(0, True, "10"), (40, True, "10"), (30, True, "11")], 0),  # a complete poll after it does not
    ],
)
def test_a_closing_row_keeps_when_it_was_last_seen(
    engine: Engine, catalog: GpuCatalog, polls: list[tuple[int, bool, str]], seen_at: int
) -> None:
    for minutes, complete, price in polls:
        apply_snapshot(engine, snap([obs("a", price)], minutes=minutes, complete=complete), catalog)
    first, *_ = _stamps(engine)
    closing = polls[-1][0]
    t0 = snap([]).taken_at
    assert first[1] == t0.replace(minute=closing)
    assert first[2] == t0.replace(minute=seen_at)
