"""An API process's index after a poll: reloaded when the poll changed offers, freshened in place when it only
confirmed prices (or failed). Freshened, the offers read as confirmed by the newer poll everywhere."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

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


def test_a_new_or_withdrawn_offer_reloads_the_index(runtime: Runtime, loaded: SourceConfig) -> None:
    others = [{**OFFER, "region": region} for region in ("us-west-1", "us-south-1", "europe-central-1")]
    rewrite(loaded, [OFFER, *others])
    poll(runtime, loaded)
    assert runtime.index.refresh_if_changed()
    assert len(runtime.index.current.offers) == 4
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
