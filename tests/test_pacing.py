"""Paced bulk work (broker.pacing): how much it rests, and that it changes no result."""

from __future__ import annotations

import random
import weakref

import pytest

import broker.pacing as pacing
from broker.offers.index import OfferIndex, _sorted_paced
from broker.pacing import active, paced, pause_point, release
from tests.placement.conftest import NOW, offer


class FakeClock:
    """perf_counter and sleep for broker.pacing: the work between pause points takes ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self.slept: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(step=0.001)
    monkeypatch.setattr(pacing.time, "perf_counter", fake.perf_counter)
    monkeypatch.setattr(pacing.time, "sleep", fake.sleep)
    return fake


def work(clock: FakeClock, steps: int) -> None:
    for _ in range(steps):
        clock.now += clock.step
        pause_point()


def test_paced_work_rests_so_it_takes_at_most_its_share_of_the_time(clock: FakeClock) -> None:
    with paced(0.25, slice_s=0.002):
        assert active()
        work(clock, 100)  # 100 ms of work
    assert not active()
    assert clock.slept == [pytest.approx(0.006)] * 50  # after every 2 ms slice, 3 times as long at rest
    assert sum(clock.slept) / clock.now == pytest.approx(0.75)


def test_outside_a_paced_block_and_at_a_full_share_nothing_rests(clock: FakeClock) -> None:
    work(clock, 50)
    with paced(1.0):
        assert not active()
        work(clock, 50)
    assert clock.slept == []


def test_a_nested_block_restores_the_outer_pace(clock: FakeClock) -> None:
    with paced(0.5, slice_s=0.002):
        with paced(1.0):
            work(clock, 10)
        assert clock.slept == []
        work(clock, 4)
    assert clock.slept == [pytest.approx(0.002)] * 2


@pytest.mark.parametrize("share", [0, -0.5, 1.5])
def test_a_share_outside_0_to_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share must be in"), paced(share):
        pass


class Leaf:
    pass


def test_release_frees_everything_a_slice_at_a_time(clock: FakeClock) -> None:
    objects: list[object] = [Leaf() for _ in range(1000)]
    refs = [weakref.ref(o) for o in objects]
    with paced(0.5, slice_s=0.0):  # rest after every slice
        release(objects, slice_len=64)
    assert objects == []
    assert all(r() is None for r in refs)
    assert len(clock.slept) == 16  # ceil(1000 / 64) slices, a pause after each


def test_the_paced_sort_keeps_the_index_order_ties_included() -> None:
    # few distinct prices and places: many offers compare equal, and the order among them must not change
    rng = random.Random(7)
    offers = [
        offer(rng.choice(["aws", "gcp"]), rng.choice(["r1", "r2"]), "it", hourly=rng.choice([8.0, 16.0, 24.0]))
        for _ in range(10_000)
    ]
    plain = OfferIndex.build(offers, NOW)
    with paced(1.0):
        assert list(_sorted_paced(offers)) == list(plain.offers)
    with paced(0.9, slice_s=1.0):
        assert OfferIndex.build(offers, NOW).offers == plain.offers


def test_one_at_a_time_keeps_a_second_holder_waiting_until_the_first_leaves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    from broker.pacing import one_at_a_time

    lock = tmp_path / ".index-rebuild.lock"
    first_in, first_may_leave, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with one_at_a_time(lock):
            first_in.set()
            first_may_leave.wait(10)

    def second() -> None:
        with one_at_a_time(lock):  # a lock file opened anew: to flock, as another process
            second_in.set()

    a = threading.Thread(target=first)
    a.start()
    assert first_in.wait(10)
    b = threading.Thread(target=second)
    b.start()
    assert not second_in.wait(0.3)
    first_may_leave.set()
    assert second_in.wait(10)
    a.join(10)
    b.join(10)


def test_without_a_usable_lock_file_nobody_waits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from broker.pacing import one_at_a_time

    with one_at_a_time(tmp_path / "missing" / "dir" / "lock"), one_at_a_time(tmp_path / "missing" / "dir" / "lock"):
        pass
