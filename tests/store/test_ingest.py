from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from broker.domain import Availability, Outcome
from broker.gpus import GpuCatalog
from broker.offers import repository
from broker.offers.service import IndexHolder
from broker.store import ingest
from broker.store.ingest import apply_snapshot
from broker.store.models import AvailabilityInterval, Offer, PollRun, PriceInterval
from tests.factories import obs, snap, universe


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def current(engine: Engine) -> dict[str, Decimal]:
    with engine.connect() as conn:
        return {o.key.instance_type: Decimal(str(o.hourly_usd)) for o in repository.load_current(conn).offers}


def test_first_snapshot_creates_offers_and_one_price_row_each(engine: Engine, catalog: GpuCatalog) -> None:
    result = apply_snapshot(engine, snap(universe(5)), catalog)
    assert result.outcome is Outcome.OK
    assert (result.offers_new, result.prices_changed) == (5, 5)
    assert count(engine, Offer) == 5
    assert count(engine, PriceInterval) == 5
    assert count(engine, AvailabilityInterval) == 5
    assert current(engine) == {f"type-{i}": Decimal("10.00") for i in range(5)}


def test_same_snapshot_twice_writes_no_price_rows(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap(universe(5)), catalog)
    again = apply_snapshot(engine, snap(universe(5), minutes=15), catalog)
    assert again.outcome is Outcome.OK
    assert (again.offers_new, again.prices_changed, again.offers_withdrawn) == (0, 0, 0)
    assert count(engine, PriceInterval) == 5
    assert count(engine, PollRun) == 2


def test_unchanged_poll_moves_last_confirmed_only(engine: Engine, catalog: GpuCatalog) -> None:
    first = snap([obs()])
    apply_snapshot(engine, first, catalog)
    later = snap([obs()], minutes=30)
    apply_snapshot(engine, later, catalog)
    index = IndexHolder(engine).refresh()
    (offer,) = index.offers
    assert offer.observed_at == first.taken_at
    assert index.confirmed_at(offer) == later.taken_at
    assert offer.observed_at.tzinfo is not None


def test_changed_price_closes_old_row_and_opens_new(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap([obs("a", "10"), obs("b", "20")]), catalog)
    apply_snapshot(engine, snap([obs("a", "10"), obs("b", "20")], minutes=15), catalog)
    changed = apply_snapshot(engine, snap([obs("a", "11.5"), obs("b", "20")], minutes=30), catalog)
    assert changed.prices_changed == 1
    assert count(engine, PriceInterval) == 3
    assert current(engine) == {"a": Decimal("11.5"), "b": Decimal("20")}
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                PriceInterval.hourly_usd,
                PriceInterval.valid_from,
                PriceInterval.valid_to,
                PriceInterval.last_confirmed_at,
            )
            .join(Offer, Offer.id == PriceInterval.offer_id)
            .where(Offer.instance_type == "a")
            .order_by(PriceInterval.valid_from)
        ).all()
    old, new = rows
    t0 = snap([]).taken_at
    assert old.valid_to == new.valid_from == t0.replace(minute=30)
    # the old price was last seen by the poll at +15 min, not at the change
    assert old.last_confirmed_at == t0.replace(minute=15)
    assert new.valid_to is None


def test_complete_snapshot_withdraws_missing_offer_and_reopens_it(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap(universe(10)), catalog)
    gone = apply_snapshot(engine, snap(universe(9), minutes=15), catalog)
    assert gone.outcome is Outcome.OK
    assert gone.offers_withdrawn == 1
    assert "type-9" not in current(engine)
    back = apply_snapshot(engine, snap(universe(10), minutes=30), catalog)
    assert back.offers_withdrawn == 0 and back.prices_changed == 1
    assert current(engine)["type-9"] == Decimal("10.00")
    assert count(engine, PriceInterval) == 11


def test_incomplete_snapshot_withdraws_nothing(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap(universe(10)), catalog)
    partial = apply_snapshot(engine, snap(universe(2), minutes=15, complete=False), catalog)
    assert partial.outcome is Outcome.PARTIAL
    assert partial.offers_withdrawn == 0
    assert len(current(engine)) == 10


def test_withdrawing_too_much_is_suspect_and_withdraws_nothing(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap(universe(10)), catalog)
    truncated = [obs(f"type-{i}", "12.00", gpu="A100-80GB") for i in range(6)]  # 4 of 10 missing: 40% > 30%
    result = apply_snapshot(engine, snap(truncated, minutes=15), catalog)
    assert result.outcome is Outcome.SUSPECT
    assert result.offers_withdrawn == 0
    assert "nothing withdrawn" in result.warnings[-1]
    prices = current(engine)
    assert len(prices) == 10
    assert prices["type-0"] == Decimal("12.00")  # the prices it did carry are applied
    assert prices["type-9"] == Decimal("10.00")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (obs("zero", "0"), "price <= 0"),
        (obs("neg", "-1"), "price <= 0"),
        (obs("eur", "5", currency="EUR"), "currency is not USD"),
        (obs("weird", "5", purchase="lease"), "unknown purchase option"),
        (obs("", "5"), "missing instance type"),
    ],
)
def test_invalid_rows_are_rejected_one_by_one(engine: Engine, catalog: GpuCatalog, bad: object, reason: str) -> None:
    result = apply_snapshot(engine, snap([*universe(3), bad]), catalog)  # type: ignore[list-item]
    assert result.outcome is Outcome.PARTIAL
    assert result.rejected == {reason: 1}
    assert len(current(engine)) == 3
    with engine.connect() as conn:
        run = conn.execute(select(PollRun.rejected, PollRun.outcome)).one()
    assert run.rejected == {reason: 1} and run.outcome == "partial"


def test_absurd_price_jump_is_rejected_and_old_price_kept(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap([obs("a", "10"), obs("b", "10")]), catalog)
    result = apply_snapshot(engine, snap([obs("a", "101"), obs("b", "10")], minutes=15), catalog)
    assert result.rejected == {"price more than 10x away from the stored price": 1}
    assert result.offers_withdrawn == 0
    assert current(engine) == {"a": Decimal("10"), "b": Decimal("10")}


def test_error_midway_leaves_previous_state_untouched(
    engine: Engine, catalog: GpuCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_snapshot(engine, snap(universe(10)), catalog)
    before = (count(engine, Offer), count(engine, PriceInterval), count(engine, PollRun), current(engine))

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure after prices were written")

    monkeypatch.setattr(ingest, "_withdraw", boom)
    changed = [obs(f"type-{i}", "11.00", gpu="A100-80GB") for i in range(9)] + [obs("new", "3", gpu="L4", gpus=1)]
    with pytest.raises(RuntimeError, match="injected"):
        apply_snapshot(engine, snap(changed, minutes=15), catalog)
    after = (count(engine, Offer), count(engine, PriceInterval), count(engine, PollRun), current(engine))
    assert after == before


def test_unknown_gpu_is_stored_as_is_and_flagged(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap([obs("x1", "4", gpu="Quantum Flux 9000", gpus=1)]), catalog)
    with engine.connect() as conn:
        (offer,) = repository.load_current(conn).offers
    assert offer.gpu_model == "Quantum Flux 9000"
    assert offer.gpu_known is False


def test_availability_is_change_only(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap([obs(availability=Availability.AVAILABLE)]), catalog)
    apply_snapshot(engine, snap([obs(availability=Availability.AVAILABLE)], minutes=15), catalog)
    assert count(engine, AvailabilityInterval) == 1
    apply_snapshot(engine, snap([obs(availability=Availability.UNAVAILABLE)], minutes=30), catalog)
    assert count(engine, AvailabilityInterval) == 2
    assert count(engine, PriceInterval) == 1
    with engine.connect() as conn:
        (offer,) = repository.load_current(conn).offers
    assert offer.availability is Availability.UNAVAILABLE


def test_failed_poll_is_recorded_and_touches_nothing(engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap(universe(3)), catalog)
    before = current(engine)
    result = ingest.record_failure(engine, "test", snap([]).taken_at, "HTTP 503 from provider")
    assert result.outcome is Outcome.FAILED
    assert current(engine) == before
    with engine.connect() as conn:
        outcomes = conn.execute(select(PollRun.outcome).order_by(PollRun.id)).scalars().all()
    assert outcomes == ["ok", "failed"]


def test_naive_timestamp_is_refused(engine: Engine, catalog: GpuCatalog) -> None:
    s = snap(universe(1))
    s.taken_at = s.taken_at.replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_snapshot(engine, s, catalog)
