from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from broker.gpus import GpuCatalog
from broker.history.schemas import build_query
from broker.history.service import price_history
from tests.history.helpers import T0, Piece, at, obs, poll, reference


def _history(engine: Engine, catalog: GpuCatalog, now_h: float, use_rollup: bool = True, **kw: object):  # type: ignore[no-untyped-def]
    q = build_query(catalog, now=at(now_h), **kw)  # type: ignore[arg-type]
    return price_history(engine, q, now=at(now_h), intervals={"test": 60}, use_rollup=use_rollup)


@pytest.fixture
def mid_bucket_change(engine: Engine, catalog: GpuCatalog) -> None:
    """One 8-GPU offer: $80 from 00:00, $160 from 00:30, $40 from 02:00 (instance-hour prices)."""
    for hours, price in ((0, "80"), (0.5, "160"), (1, "160"), (2, "40")):
        poll(engine, catalog, at(hours), [obs("p5.48xlarge", price, gpus=8)])


@pytest.mark.parametrize(("agg", "expected"), [
    ("min", [10.0, 20.0, 5.0]), ("max", [20.0, 20.0, 5.0]), ("avg", [15.0, 20.0, 5.0]), ("last", [20.0, 20.0, 5.0]),
])  # fmt: skip
def test_a_price_change_mid_bucket_gives_exact_figures(
    engine: Engine, catalog: GpuCatalog, mid_bucket_change: None, agg: str, expected: list[float]
) -> None:
    r = _history(engine, catalog, 3, gpu="H100", from_=at(0), to=at(3), step="1h", agg=agg)
    assert len(r.series) == 1 and r.series[0].key == {"provider": "aws"}
    assert r.series[0].points == [(at(0), expected[0]), (at(1), expected[1]), (at(2), expected[2])]
    assert r.to_json()["unit"] == "USD per GPU-hour"


def test_instance_hour_unit_is_not_divided_by_gpus(
    engine: Engine, catalog: GpuCatalog, mid_bucket_change: None
) -> None:
    r = _history(engine, catalog, 3, from_=at(0), to=at(3), step="1h", agg="avg", unit="instance_hour")
    assert [v for _, v in r.series[0].points] == [120.0, 160.0, 40.0]
    assert r.to_json()["unit"] == "USD per instance-hour"


def test_the_last_price_holds_until_now_and_no_further(
    engine: Engine, catalog: GpuCatalog, mid_bucket_change: None
) -> None:
    r = _history(engine, catalog, 4.5, from_=at(0), to=at(8), step="1h", agg="avg")
    assert [t for t, _ in r.series[0].points] == [at(h) for h in range(5)]  # nothing after now (04:30)
    assert r.series[0].points[-1][1] == 5.0


def test_raw_lists_each_change(engine: Engine, catalog: GpuCatalog, mid_bucket_change: None) -> None:
    r = _history(engine, catalog, 3, from_=at(0.25), to=at(3), step="raw", group_by="offer")
    assert r.series[0].points == [(at(0.25), 10.0), (at(0.5), 20.0), (at(2), 5.0)]
    assert r.series[0].key["instance_type"] == "p5.48xlarge" and r.series[0].key["gpu_count"] == 8


def test_group_by_provider_and_purchase(engine: Engine, catalog: GpuCatalog) -> None:
    def universe(spot: str) -> list:  # type: ignore[type-arg]
        return [
            obs("p5.48xlarge", "80", gpus=8),
            obs("p5.48xlarge", spot, gpus=8, purchase="spot", zone="us-east-1a"),
            obs("a3-highgpu-8g", "88", gpus=8, provider="gcp", region="us-central1"),
            obs("gpu_1x_h100_sxm5", "3", gpus=1, provider="lambda", region="us-west-1"),
        ]

    poll(engine, catalog, at(0), universe("24"))
    poll(engine, catalog, at(1), universe("32"))
    r = _history(engine, catalog, 2, from_=at(0), to=at(2), step="1h", group_by="provider,purchase", agg="min")
    got = {tuple(s.key.values()): [v for _, v in s.points] for s in r.series}
    assert got == {("aws", "on_demand"): [10.0, 10.0], ("aws", "spot"): [3.0, 4.0], ("gcp", "on_demand"): [11.0, 11.0],
                   ("lambda", "on_demand"): [3.0, 3.0]}  # fmt: skip
    by_provider = _history(engine, catalog, 2, from_=at(0), to=at(2), step="1h", group_by="provider", agg="avg")
    assert [v for _, v in by_provider.series[0].points] == [6.5, 7.0]  # aws: on-demand 10 and spot 3, then 4
    one = _history(engine, catalog, 2, from_=at(0), to=at(2), step="1h", group_by="gpu_model", provider="GCP")
    assert [(s.key, [v for _, v in s.points]) for s in one.series] == [({"gpu_model": "H100-SXM"}, [11.0, 11.0])]


@pytest.mark.parametrize("use_rollup", [True, False])
def test_polling_gaps_and_withdrawals_are_reported_not_filled(
    engine: Engine, catalog: GpuCatalog, use_rollup: bool
) -> None:
    keep = [obs(f"keep-{i}", "10", gpus=1) for i in range(4)]
    going = obs("going.1", "20", gpus=1)
    for h in range(0, 24):  # day 0 polled hourly: rolled up; day 1 is "today"
        poll(engine, catalog, at(h), [*keep, going])
    d1 = 24
    poll(engine, catalog, at(d1 + 1), [*keep, going])
    poll(engine, catalog, at(d1 + 2), keep)  # going.1 withdrawn at 02:00
    # no poll from 02:00 to 06:00 (interval 60 min: more than 2.5 intervals)
    poll(engine, catalog, at(d1 + 6), [*keep, going])  # back at 06:00
    r = _history(engine, catalog, d1 + 7, use_rollup, from_=at(d1), to=at(d1 + 7), step="1h", group_by="offer",
                 instance_type="going.1")  # fmt: skip
    assert [t for t, _ in r.series[0].points] == [at(d1), at(d1 + 1), at(d1 + 6)]  # nothing while withdrawn
    gaps = r.to_json()["gaps"]
    assert {"kind": "polling", "from": at(d1 + 2).isoformat(), "to": at(d1 + 6).isoformat()}.items() <= gaps[0].items()
    withdrawn = [g for g in gaps if g["kind"] == "withdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0]["instance_type"] == "going.1"
    assert (withdrawn[0]["from"], withdrawn[0]["to"]) == (at(d1 + 2).isoformat(), at(d1 + 6).isoformat())
    week = _history(engine, catalog, d1 + 7, use_rollup, from_=at(-24), step="1d", group_by="provider")
    # the same gaps over a week, most of it rolled up; before the first poll ever there is no data, not a gap
    assert [(g["kind"], g["from"]) for g in week.to_json()["gaps"]] == [(k, at(d1 + 2).isoformat()) for k in
                                                                        ("polling", "withdrawn")]  # fmt: skip


def _random_history(engine: Engine, catalog: GpuCatalog, seed: int) -> list[Piece]:
    """Eight offers over ten days: random changes (some mid-day, some days long), one offer withdrawn for a while."""
    rng = random.Random(seed)
    shapes = [(f"t{i}", rng.choice(["aws", "gcp"]), rng.choice(["spot", "on_demand"]), rng.choice([1, 8]))
              for i in range(8)]  # fmt: skip
    prices = {s[0]: rng.randint(20, 90) for s in shapes}
    pieces: dict[str, Piece] = {}
    out: list[Piece] = []
    t = at(0)
    while t < at(days=10):
        for name, *_ in shapes:
            if name in pieces and rng.random() < 0.2:
                prices[name] = rng.randint(20, 90)
        absent = at(days=3) <= t < at(days=5)
        listed = [obs(n, str(prices[n]), provider=p, purchase=pu, gpus=g) for n, p, pu, g in shapes
                  if not (absent and n == "t0")]  # fmt: skip
        poll(engine, catalog, t, listed)
        for name, provider, purchase, gpus in shapes:
            cur = pieces.get(name)
            live = not (absent and name == "t0")
            price = prices[name] / gpus
            if cur is not None and (not live or cur.price != price):
                cur.t1 = t
                out.append(cur)
                del pieces[name]
            if live and name not in pieces:
                pieces[name] = Piece((provider, purchase), t, None, price, name)
        t += timedelta(hours=rng.choice([1, 2, 5, 11, 30]))
    return out + list(pieces.values())


@pytest.mark.parametrize("seed", [1, 2])
def test_roll_up_and_scan_agree_with_the_definition(engine: Engine, catalog: GpuCatalog, seed: int) -> None:
    pieces = _random_history(engine, catalog, seed)
    t0 = sorted((p for p in pieces if p.offer == "t0"), key=lambda p: p.t0)
    withdrawn = [(a.t1.isoformat(), b.t0.isoformat()) for a, b in itertools.pairwise(t0) if a.t1 and b.t0 > a.t1]
    assert len(withdrawn) == 1  # t0 is unlisted on days 3 and 4
    now = 24 * 10 + 7.5  # mid-morning of day 10: closed days come from the roll-up, today from the intervals
    for step, agg in (("1d", "min"), ("1d", "max"), ("1d", "avg"), ("1d", "last"), ("2d", "avg"), ("2d", "last"),
                      ("6h", "min"), ("6h", "last")):  # fmt: skip
        want = reference(pieces, at(0), at(now), timedelta(days=2 if step == "2d" else 1 if step == "1d" else 0.25),
                         agg)  # fmt: skip
        for use_rollup in (True, False):
            r = _history(engine, catalog, now, use_rollup, from_=at(0), to=at(days=11), step=step, agg=agg,
                         group_by="provider,purchase")  # fmt: skip
            got: dict[tuple[str, ...], list[tuple[datetime, float]]] = {
                (s.key["provider"], s.key["purchase"]): s.points for s in r.series
            }
            gaps = r.to_json()["gaps"]
            assert [(g["from"], g["to"]) for g in gaps if g["kind"] == "withdrawn"] == withdrawn, (step, use_rollup)
            assert got.keys() == want.keys(), (step, agg, use_rollup)
            for g, points in want.items():
                assert [t for t, _ in got[g]] == [t for t, _ in points], (step, agg, use_rollup, g)
                assert [v for _, v in got[g]] == pytest.approx([v for _, v in points], rel=1e-9), (step, agg, g)


def test_a_backfill_rebuilds_the_roll_up(engine: Engine, catalog: GpuCatalog) -> None:
    poll(engine, catalog, at(days=0), [obs("a.1", "10", gpus=1), obs("b.1", "10", gpus=1)])
    poll(engine, catalog, at(days=2), [obs("a.1", "10", gpus=1), obs("b.1", "10", gpus=1)])
    first = _history(engine, catalog, 24 * 3 + 2, from_=at(0), to=at(days=3), step="1d", group_by="gpu_model")
    assert [v for _, v in first.series[0].points] == [10.0, 10.0, 10.0]
    poll(engine, catalog, at(days=2.5), [obs("a.1", "4", gpus=1), obs("b.1", "10", gpus=1)])  # recorded late
    again = _history(engine, catalog, 24 * 3 + 2, from_=at(0), to=at(days=3), step="1d", group_by="gpu_model")
    assert [v for _, v in again.series[0].points] == [10.0, 10.0, 4.0]


# --- the open tail after the roll-up, from the stored cut-off ------------------------------------------------------

# name -> (provider, purchase, GPUs); prices per instance-hour by poll hour (None: not listed, i.e. withdrawn)
TAIL_SHAPES = {"a": ("aws", "on_demand", 8), "b": ("aws", "spot", 8), "c": ("gcp", "on_demand", 1),
               "d": ("gcp", "spot", 1), "e": ("aws", "on_demand", 1), "f": ("aws", "spot", 1),
               "g": ("gcp", "on_demand", 8)}  # fmt: skip


def _tail_listing(h: int) -> dict[str, str]:
    """Around the cut-off at 48h (day 2): ``a`` never changes; ``b`` changes in the tail; ``c`` is withdrawn in the
    tail and comes back; ``d`` changes and ``g`` is withdrawn exactly at the cut-off; ``e`` is new in the tail;
    ``f`` was withdrawn for good before it. ``g`` comes back after the next midnight."""
    prices = {"a": "80", "b": "40" if h < 50 else "24", "c": "12" if 10 <= h < 52 else "11" if h >= 60 else None,
              "d": "5" if h < 48 else "6", "e": "3" if h >= 53 else None, "f": "9" if h < 30 else None,
              "g": "88" if h < 48 or h >= 73 else None}  # fmt: skip
    return {name: price for name, price in prices.items() if price is not None}


def _tail_polls(engine: Engine, catalog: GpuCatalog, hours: range, pieces: dict[str, list[Piece]]) -> None:
    """Hourly polls (none from 20h to 23h, before the cut-off, nor from 61h to 64h, in the tail), recording each
    offer's prices as pieces (per GPU-hour) for the reference."""
    for h in hours:
        if 20 <= h < 24 or 61 <= h < 65:
            continue
        listed = _tail_listing(h)
        poll(engine, catalog, at(h), [obs(f"{n}.x", p, provider=TAIL_SHAPES[n][0], purchase=TAIL_SHAPES[n][1],
                                          gpus=TAIL_SHAPES[n][2]) for n, p in listed.items()])  # fmt: skip
        for name, (provider, purchase, gpus) in TAIL_SHAPES.items():
            cur = pieces[name][-1] if pieces.get(name) and pieces[name][-1].t1 is None else None
            price = float(listed[name]) / gpus if name in listed else None
            if cur is not None and cur.price != price:
                cur.t1 = at(h)
                cur = None
            if price is not None and cur is None:
                pieces.setdefault(name, []).append(Piece((provider, purchase), at(h), None, price, name))


def _cutoffs(engine: Engine) -> dict[int, set[str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT c.day, o.instance_type FROM history_price_cutoff c "
                                 "JOIN offers o ON o.id = c.offer_id")).all()  # fmt: skip
    out: dict[int, set[str]] = {}
    for day, instance_type in rows:
        out.setdefault(int(day) - int(T0.timestamp()) // 86400, set()).add(instance_type[0])
    return out


def test_the_open_tail_from_the_stored_cut_off_agrees_with_the_definition(engine: Engine, catalog: GpuCatalog) -> None:
    pieces: dict[str, list[Piece]] = {}
    polled = 0
    for upto, now, cutoffs in (
        (56, 55.5, {2: {"a", "b", "c"}}),  # tail within day 2
        (73, 72.5, {2: {"a", "b", "c"}}),  # tail across midnight into day 3 (day 2 is not rolled up before 01:00)
        (74, 73.5, {2: {"a", "b", "c"}, 3: {"a", "b", "c", "d", "e"}}),  # rolled up to day 3: both cut-offs kept
        (98, 97.5, {3: {"a", "b", "c", "d", "e"}, 4: {"a", "b", "c", "d", "e", "g"}}),  # the oldest dropped
    ):
        _tail_polls(engine, catalog, range(polled, upto), pieces)
        polled = upto
        flat = [p for ps in pieces.values() for p in ps]
        for step, agg, group_by in (("1d", "min", "provider,purchase"), ("1d", "max", "provider,purchase"),
                                    ("1d", "avg", "provider,purchase"), ("1d", "last", "provider,purchase"),
                                    ("2d", "avg", "provider,purchase"), ("2d", "last", "provider,purchase"),
                                    ("1d", "min", "gpu_model"), ("1d", "last", "provider")):  # fmt: skip
            days = 2 if step == "2d" else 1
            if group_by == "provider,purchase":
                want = reference(flat, at(0), at(now), timedelta(days=days), agg)
            else:
                dim = 0 if group_by == "provider" else None
                want = reference([Piece((p.group[dim],) if dim is not None else ("H100-SXM",), p.t0, p.t1, p.price)
                                  for p in flat], at(0), at(now), timedelta(days=days), agg)  # fmt: skip
            rolled = _history(engine, catalog, now, True, from_=at(0), to=at(days=5), step=step, agg=agg,
                              group_by=group_by)  # fmt: skip
            scanned = _history(engine, catalog, now, False, from_=at(0), to=at(days=5), step=step, agg=agg,
                               group_by=group_by)  # fmt: skip
            for r in (rolled, scanned):
                got = {tuple(s.key.values()): s.points for s in r.series}
                assert got.keys() == want.keys(), (now, step, agg, group_by)
                for g, points in want.items():
                    assert [t for t, _ in got[g]] == [t for t, _ in points], (now, step, agg, g)
                    # answers are rounded to 8 decimals
                    assert [v for _, v in got[g]] == pytest.approx([v for _, v in points], abs=1e-8), (now, agg, g)
            assert rolled.to_json()["gaps"] == scanned.to_json()["gaps"], (now, step, agg)
        assert _cutoffs(engine) == cutoffs, now
        kinds = {(g["kind"], g["from"]) for g in rolled.to_json()["gaps"]}
        assert ("withdrawn", at(30).isoformat()) in kinds and ("polling", at(19).isoformat()) in kinds
        if now > 60:  # c withdrawn in the tail, and no poll from 61h to 64h
            assert {("withdrawn", at(52).isoformat()), ("polling", at(60).isoformat())} <= kinds


def test_a_backfill_before_the_cut_off_rewrites_it(engine: Engine, catalog: GpuCatalog) -> None:
    both = [obs("a.1", "10", gpus=1), obs("b.1", "10", gpus=1)]
    poll(engine, catalog, at(0), both)
    poll(engine, catalog, at(30), both)
    first = _history(engine, catalog, 50, from_=at(0), to=at(50), step="1d", group_by="gpu_model")
    assert [v for _, v in first.series[0].points] == [10.0, 10.0, 10.0]  # day 2 (the tail) from the cut-off
    poll(engine, catalog, at(40), [obs("a.1", "4", gpus=1), obs("b.1", "10", gpus=1)])  # recorded late, day 1
    again = _history(engine, catalog, 50, from_=at(0), to=at(50), step="1d", group_by="gpu_model")
    assert [v for _, v in again.series[0].points] == [10.0, 4.0, 4.0]  # a.1's price at the cut-off is 4 now
    scanned = _history(engine, catalog, 50, False, from_=at(0), to=at(50), step="1d", group_by="gpu_model")
    assert scanned.series[0].points == again.series[0].points


def test_a_roll_up_without_a_cut_off_writes_one(engine: Engine, catalog: GpuCatalog) -> None:
    """Roll-ups built before the cut-off existed (migration 0005) get theirs at the next refresh, no rebuild."""
    poll(engine, catalog, at(0), [obs("a.1", "10", gpus=1)])
    poll(engine, catalog, at(49), [obs("a.1", "6", gpus=1), obs("b.1", "8", gpus=1)])
    first = _history(engine, catalog, 50, from_=at(0), to=at(50), step="1d", group_by="gpu_model", agg="max")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM history_price_cutoff"))
        conn.execute(text("UPDATE history_rollup_state SET cutoff_at = NULL"))
    again = _history(engine, catalog, 50, from_=at(0), to=at(50), step="1d", group_by="gpu_model", agg="max")
    assert again.series == first.series and [v for _, v in again.series[0].points] == [10.0, 10.0, 10.0]
    assert _cutoffs(engine) == {2: {"a"}}
