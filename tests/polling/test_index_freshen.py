"""An API process's index after a poll: reloaded when the poll changed offers, freshened in place when it only
confirmed prices (or failed). Freshened, the offers read as confirmed by the newer poll everywhere."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Engine, select

from broker.domain import utcnow
from broker.offers.schemas import offer_out
from broker.polling.service import poll_source
from broker.runtime import Runtime
from broker.settings import SourceConfig
from broker.store.models import PollRun
from tests.polling.test_polling import OFFER, file_source


def changes(engine: Engine) -> list[int | None]:
    with engine.connect() as conn:
        return list(conn.execute(select(PollRun.offers_changed).order_by(PollRun.id)).scalars())


def poll(runtime: Runtime, cfg: SourceConfig) -> None:
    poll_source(runtime, cfg, refresh_index=False)  # as `broker worker` does: the API process refreshes itself


def rewrite(cfg: SourceConfig, offers: list[dict[str, object]]) -> None:
    doc = {"format": "gpu-broker.snapshot/v1", "complete": True, "offers": offers}
    Path(str(cfg.options["path"])).write_text(json.dumps(doc))


@pytest.fixture
def loaded(runtime: Runtime, tmp_path: Path) -> SourceConfig:
    cfg = file_source(tmp_path, [OFFER])
    poll(runtime, cfg)
    assert runtime.index.refresh_if_changed()
    assert runtime.index.reloads == 1
    return cfg


def test_a_poll_that_only_confirms_prices_freshens_the_index_without_reloading(
    runtime: Runtime, loaded: SourceConfig
) -> None:
    before = runtime.index.current
    first_seen = before.offers[0].last_confirmed_at
    poll(runtime, loaded)
    assert changes(runtime.engine)[-1] == 0
    assert runtime.index.refresh_if_changed()
    after = runtime.index.current
    assert runtime.index.reloads == 1
    assert after is not before and after.offers is before.offers  # the same offers, not read again
    confirmed = after.confirmed_at(after.offers[0])
    assert confirmed > first_seen
    assert offer_out(after.offers[0], after)["last_confirmed_at"] == confirmed.isoformat()
    assert not runtime.index.refresh_if_changed()  # nothing new since


def test_a_poll_that_changes_a_price_or_availability_reloads_the_index(
    runtime: Runtime, loaded: SourceConfig
) -> None:
    rewrite(loaded, [{**OFFER, "hourly_usd": "2.19"}])
    poll(runtime, loaded)
    assert runtime.index.refresh_if_changed()
    assert runtime.index.reloads == 2
    assert [o.hourly_usd for o in runtime.index.current.offers] == [2.19]

    rewrite(loaded, [{**OFFER, "hourly_usd": "2.19", "availability": "available"}])
    poll(runtime, loaded)
    assert runtime.index.refresh_if_changed()
    assert runtime.index.reloads == 3
    assert [str(o.availability) for o in runtime.index.current.offers] == ["available"]

    rewrite(loaded, [{**OFFER, "hourly_usd": "2.19", "availability": "available", "vcpus": 26}])
    poll(runtime, loaded)  # the listing itself changed (a descriptive column)
    assert runtime.index.refresh_if_changed()
    assert runtime.index.reloads == 4
    assert [o.vcpus for o in runtime.index.current.offers] == [26.0]
    assert all(n is not None and n > 0 for n in changes(runtime.engine))


def test_a_new_or_withdrawn_offer_reloads_the_index(
    runtime: Runtime, loaded: SourceConfig, caplog: pytest.LogCaptureFixture
) -> None:
    others = [{**OFFER, "region": region} for region in ("us-west-1", "us-south-1", "europe-central-1")]
    rewrite(loaded, [OFFER, *others])
    poll(runtime, loaded)
    with caplog.at_level(logging.INFO, logger="broker.offers.service"):
        assert runtime.index.refresh_if_changed()
    assert len(runtime.index.current.offers) == 4
    # operators see each reload, what it kept and what it cost
    (reloaded,) = [r for r in caplog.records if r.getMessage().startswith("offer index reloaded")]
    assert reloaded.getMessage() == "offer index reloaded: 4 offers, 1 of them unchanged"
    assert reloaded.__dict__["seconds"] >= reloaded.__dict__["cpu_seconds"] >= 0
    rewrite(loaded, others)  # one of four withdrawn (a larger share would be held back as suspect)
    poll(runtime, loaded)
    assert runtime.index.refresh_if_changed()
    assert sorted(o.key.region for o in runtime.index.current.offers) == ["europe-central-1", "us-south-1", "us-west-1"]
    assert runtime.index.reloads == 3


def test_a_failed_poll_keeps_the_offers_and_their_confirmation(runtime: Runtime, loaded: SourceConfig) -> None:
    before = runtime.index.current
    Path(str(loaded.options["path"])).write_text("{not json")
    poll(runtime, loaded)
    assert changes(runtime.engine)[-1] == 0
    assert runtime.index.refresh_if_changed()
    after = runtime.index.current
    assert runtime.index.reloads == 1 and after.offers is before.offers
    assert after.confirmed_at(after.offers[0]) == before.offers[0].last_confirmed_at


def test_runs_before_the_count_existed_reload(runtime: Runtime, loaded: SourceConfig) -> None:
    poll(runtime, loaded)
    with runtime.engine.begin() as conn:  # a run recorded by a broker that did not count its changes
        conn.execute(PollRun.__table__.update().values(offers_changed=None))
    assert runtime.index.refresh_if_changed()
    assert runtime.index.reloads == 2


def test_a_new_day_reloads_even_when_nothing_changed(
    runtime: Runtime, loaded: SourceConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dated price rules apply per UTC day: at least one full rebuild a day."""
    poll(runtime, loaded)
    tomorrow = utcnow() + timedelta(days=1)
    monkeypatch.setattr("broker.offers.service.utcnow", lambda: tomorrow)
    assert runtime.index.refresh_if_changed()
    assert runtime.index.reloads == 2


def test_a_poll_committed_after_the_version_was_read_is_left_to_the_next_refresh(
    runtime: Runtime, loaded: SourceConfig
) -> None:
    """The refresher reads the version, then the confirmations: a poll that lands in between (here: one that
    changed a price) must not lend its confirmation time to the old prices."""
    from broker.offers import repository

    with runtime.engine.connect() as conn:
        version = repository.data_version(conn)
    before = runtime.index.current
    rewrite(loaded, [{**OFFER, "hourly_usd": "2.19"}])
    poll(runtime, loaded)
    with runtime.engine.connect() as conn:
        assert repository.confirmations_since(conn, version, version) == {}
        assert repository.confirmations_since(conn, version, version + 1) is None
    assert runtime.index.refresh_if_changed()
    assert runtime.index.reloads == 2 and runtime.index.current.offers is not before.offers


def test_a_reload_reuses_the_offers_a_poll_left_alone_and_their_preparation(
    runtime: Runtime, tmp_path: Path
) -> None:
    """A poll that changes one price of three: the reload makes that offer anew and keeps the other two (the same
    objects, with the same placement preparation), and placement answers as from a preparation made afresh."""
    from broker.placement import place
    from broker.placement.engine import _CACHE, _prepare, _prepared, _Reuse
    from broker.placement.schemas import PlaceRequest

    offers = [{**OFFER, "region": region} for region in ("us-east-1", "us-west-2", "eu-central-1")]
    cfg = file_source(tmp_path, offers)
    poll(runtime, cfg)
    assert runtime.index.refresh_if_changed()
    before = {o.key.region: o for o in runtime.index.current.offers}
    rewrite(cfg, [{**offers[0], "hourly_usd": "1.99"}, *offers[1:]])
    poll(runtime, cfg)
    assert runtime.index.refresh_if_changed()
    assert runtime.index.reloads == 2
    index = runtime.index.current
    after = {o.key.region: o for o in index.offers}
    assert after["us-east-1"] is not before["us-east-1"] and after["us-east-1"].hourly_usd == 1.99
    assert after["us-west-2"] is before["us-west-2"] and after["eu-central-1"] is before["eu-central-1"]
    # each source's latest poll confirms its offers, reused or not
    assert {index.confirmed_at(o) for o in index.offers} == {index.confirmed["files"]}

    prep = _prepared(index, runtime.catalog, runtime.placement_config)
    older = _CACHE[1][3]
    preps = {p.offer.key.region: p for b in _buckets_of(prep) for p in b.offers}
    kept = {p.offer.key.region: p for b in _buckets_of(older) for p in b.offers}
    assert preps["us-west-2"] is kept["us-west-2"] and preps["us-east-1"] is not kept["us-east-1"]

    work = {"hours": 2, "reference_gpu": "H100-PCIE"}
    job = PlaceRequest.model_validate(
        {"name": "j", "image": "i", "gpu": {"count": 1, "models": ["H100-PCIE"]}, "work": work, "alternatives": 5}
    )
    now = utcnow()
    answer = place(job, index, runtime.catalog, runtime.placement_config, now)
    made_afresh = _prepare(index, runtime.catalog, runtime.placement_config, _Reuse())
    _CACHE.insert(0, (index, runtime.catalog, runtime.placement_config, made_afresh))
    afresh = place(job, index, runtime.catalog, runtime.placement_config, now)
    assert answer.choice.region == "us-east-1"  # its new, lower price
    assert sorted(o.region for o in answer.alternatives) == ["eu-central-1", "us-west-2"]
    assert msgspec.json.encode(afresh.choice) == msgspec.json.encode(answer.choice)
    assert msgspec.json.encode(afresh.alternatives) == msgspec.json.encode(answer.alternatives)


def _buckets_of(prep):  # type: ignore[no-untyped-def]
    from broker.placement.engine import _buckets

    return [bucket for _, bucket in _buckets(prep)]


def test_only_a_reload_waits_for_its_turn(runtime: Runtime, loaded: SourceConfig) -> None:
    """The API processes of one machine take turns to rebuild (the gate); a freshen is milliseconds and needs none."""
    from contextlib import contextmanager

    turns = 0

    @contextmanager
    def gate():  # type: ignore[no-untyped-def]
        nonlocal turns
        turns += 1
        yield

    poll(runtime, loaded)  # confirms prices only
    assert runtime.index.refresh_if_changed(gate=gate)
    assert (turns, runtime.index.reloads) == (0, 1)
    rewrite(loaded, [{**OFFER, "hourly_usd": "1.99"}])
    poll(runtime, loaded)
    assert runtime.index.refresh_if_changed(gate=gate)
    assert (turns, runtime.index.reloads) == (1, 2)
