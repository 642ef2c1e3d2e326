from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from broker.history.demo import SOURCE, load_demo_history
from broker.history.schemas import build_query
from broker.history.service import price_history
from broker.runtime import Runtime


def test_demo_history_loads_a_month_that_moves_and_loads_once(runtime: Runtime) -> None:
    now = datetime(2026, 11, 27, 10, 20, tzinfo=UTC)
    applied = load_demo_history(runtime, now=now)
    assert applied > 500
    with runtime.engine.connect() as conn:
        runs = conn.execute(text("SELECT count(*), max(snapshot_taken_at) FROM poll_runs WHERE source = :s"),
                            {"s": SOURCE}).one()  # fmt: skip
        rows = conn.execute(text("SELECT count(*) FROM price_intervals")).scalar_one()
    assert runs[0] == applied
    assert load_demo_history(runtime, now=now + timedelta(days=1)) == 0  # idempotent: writes nothing
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM price_intervals")).scalar_one() == rows
        assert conn.execute(text("SELECT count(*) FROM poll_runs")).scalar_one() == runs[0]

    q = build_query(runtime.catalog, now=now, gpu="H100-SXM", from_=now - timedelta(days=7), step="6h",
                    group_by="provider")  # fmt: skip
    result = price_history(runtime.engine, q, now=now)
    assert result.series, "the last week has H100 prices"
    moving = [s for s in result.series if len({v for _, v in s.points}) > 1]
    assert moving, "some provider's price changed during the week"
    assert all(0.5 < v < 10 for s in result.series for _, v in s.points)  # USD per GPU-hour, plausible
    offers = runtime.index.current.by_gpu.get("H100-SXM", ())
    assert offers and all(o.demo and o.source == SOURCE for o in offers)
