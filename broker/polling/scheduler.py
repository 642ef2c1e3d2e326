"""Scheduled polling inside ``broker serve`` (APScheduler 3.x).

Every replica schedules every enabled source; a database lease per source makes sure only one replica polls
it per interval. The lease is taken for the poll's timeout (a replica that dies mid-poll loses it when it
expires) and, once the poll is done, kept until the interval is nearly over so the others skip this round.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from broker.domain import utcnow
from broker.history import rollup
from broker.polling import lease
from broker.polling.service import poll_source, skip_reason
from broker.polling.skipped import Skipped
from broker.runtime import Runtime
from broker.settings import SourceConfig

log = logging.getLogger(__name__)
LEASE_MARGIN = timedelta(seconds=30)


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class PollScheduler:
    def __init__(
        self, runtime: Runtime, *, demo: bool = False, holder: str | None = None, refresh_index: bool = True
    ) -> None:
        self.runtime = runtime
        self.demo = demo
        self.refresh_index = refresh_index  # False in `broker worker`, which serves no offers
        self.holder = holder or replica_id()
        self._scheduler: Any = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        self.skipped: dict[str, str] = {}

    def start(self, *, run_now: bool = True) -> None:
        for cfg in self.runtime.settings.sources.values():
            reason = skip_reason(self.runtime, cfg, demo=self.demo)
            if reason is not None:
                self.skipped[cfg.name] = reason
                log.info("source %s skipped: %s", cfg.name, reason)
                continue
            self._scheduler.add_job(
                self.run_once,
                IntervalTrigger(minutes=cfg.interval_minutes, jitter=int(cfg.jitter_seconds)),
                args=[cfg],
                id=f"poll:{cfg.name}",
                name=f"poll {cfg.name}",
                next_run_time=utcnow() if run_now else None,
            )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def next_run(self, source: str) -> datetime | None:
        job = self._scheduler.get_job(f"poll:{source}")
        return job.next_run_time if job is not None else None

    def run_once(self, cfg: SourceConfig) -> bool:
        """Poll ``cfg`` if this replica wins the lease; returns whether it polled."""
        name = f"poll:{cfg.name}"
        started = utcnow()
        ttl = timedelta(seconds=cfg.timeout_seconds) + LEASE_MARGIN
        if not lease.acquire(self.runtime.engine, name, self.holder, ttl, now=started):
            return False
        try:
            result = poll_source(self.runtime, cfg, demo=self.demo, refresh_index=self.refresh_index)
        except Exception:  # recorded by poll_source where it can be; the schedule goes on regardless
            log.exception("poll %s failed", cfg.name)
            lease.release(self.runtime.engine, name, self.holder)
            return True
        if isinstance(result, Skipped):
            log.info("source %s skipped: %s", cfg.name, result.reason)
        else:
            log.info("poll %s: %s", cfg.name, result.summary())
            try:
                rollup.refresh(self.runtime.engine, utcnow())  # incremental: the days this poll closed
            except Exception as exc:
                log.warning("history summaries not refreshed after %s: %s", cfg.name, exc)
        # Hold the lease past this replica's own next run (it can always retake its own lease), so the others skip
        # every round while it keeps polling, and take over only if it misses a run.
        hold_until = started + timedelta(minutes=cfg.interval_minutes) + timedelta(seconds=cfg.jitter_seconds + 5)
        lease.extend(self.runtime.engine, name, self.holder, max(hold_until, utcnow()))
        return True
