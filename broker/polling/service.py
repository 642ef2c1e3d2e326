"""Running sources: build the adapter, fetch within the poll's time budget, ingest, record the run."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime

import httpx

from adapters.base import Source, SourceContext, load_source_class
from broker.domain import Snapshot, SourceError, TransientSourceError, utcnow
from broker.observability.metrics import record_poll
from broker.observability.redact import Redactor, secrets_in_env
from broker.polling.skipped import Skipped
from broker.runtime import Runtime
from broker.settings import SourceConfig
from broker.store.ingest import IngestResult, apply_snapshot
from broker.store.ingest import record_failure as _record_failure

log = logging.getLogger(__name__)


def build_source(runtime: Runtime, cfg: SourceConfig, *, demo: bool, http: httpx.Client | None = None) -> Source:
    cls = load_source_class(cfg.kind)
    ctx = SourceContext(
        name=cfg.name,
        options=cfg.options,
        env=runtime.env,
        catalog=runtime.catalog,
        config_dir=runtime.settings.config_dir,
        demo=demo,
        http=http,
        timeout_s=cfg.timeout_seconds,
    )
    return cls(ctx)


def skip_reason(runtime: Runtime, cfg: SourceConfig, *, demo: bool) -> str | None:
    """Why this source will not poll (disabled, unknown kind, missing credentials), or None."""
    if not cfg.enabled:
        return "disabled in config"
    try:
        source = build_source(runtime, cfg, demo=demo)
    except (KeyError, TypeError) as exc:
        return str(exc).strip("'\"")
    if demo:
        return None
    return source.missing_credentials()


def _fetch_with_timeout(source: Source, timeout_s: float) -> Snapshot:
    """Run fetch in a daemon thread so a hung provider cannot hold the poll past its budget."""
    box: queue.Queue[Snapshot | BaseException] = queue.Queue(maxsize=1)

    def work() -> None:
        try:
            box.put(source.fetch())
        except BaseException as exc:  # handed to the caller, which decides
            box.put(exc)

    threading.Thread(target=work, name=f"poll-{source.ctx.name}", daemon=True).start()
    try:
        got = box.get(timeout=timeout_s)
    except queue.Empty:
        raise SourceError(f"timed out after {timeout_s:.0f} s (raise timeout_seconds if the source is slow)") from None
    if isinstance(got, BaseException):
        raise got
    return got


def record_failure(runtime: Runtime, source: str, started: datetime, error: str, *, demo: bool) -> IngestResult:
    """A failed poll, its message cleared of credential values (a provider may echo a request back)."""
    return _record_failure(runtime.engine, source, started, Redactor(secrets_in_env(runtime.env))(error), demo=demo)


def poll_source(
    runtime: Runtime,
    cfg: SourceConfig,
    *,
    demo: bool = False,
    http: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    refresh_index: bool = True,
) -> IngestResult | Skipped:
    """Poll one source: fetch within its time budget (retrying transient errors), ingest, refresh the index.

    ``refresh_index=False`` where this process serves no offers (``broker worker``): the API processes rebuild
    their own index when they see the poll, and a rebuild of 100k offers costs seconds."""
    began = time.monotonic()
    result = _poll(runtime, cfg, demo=demo, http=http, sleep=sleep, refresh_index=refresh_index)
    record_poll(result, time.monotonic() - began)
    return result


def _poll(
    runtime: Runtime,
    cfg: SourceConfig,
    *,
    demo: bool,
    http: httpx.Client | None,
    sleep: Callable[[float], None],
    refresh_index: bool,
) -> IngestResult | Skipped:
    reason = skip_reason(runtime, cfg, demo=demo) if http is None else None
    if reason is not None:
        return Skipped(cfg.name, reason)
    started: datetime = utcnow()
    deadline = time.monotonic() + cfg.timeout_seconds
    delay = 2.0
    for attempt in range(1, cfg.max_attempts + 1):
        source = build_source(runtime, cfg, demo=demo, http=http)
        try:
            snapshot = _fetch_with_timeout(source, max(deadline - time.monotonic(), 1.0))
            break
        except TransientSourceError as exc:
            if attempt == cfg.max_attempts or time.monotonic() + delay >= deadline:
                return record_failure(runtime, cfg.name, started, f"{exc} (after {attempt} attempts)", demo=demo)
            log.warning("poll %s attempt %d failed, retrying in %.0fs: %s", cfg.name, attempt, delay, exc)
            sleep(delay)
            delay *= 2
        except SourceError as exc:
            return record_failure(runtime, cfg.name, started, str(exc), demo=demo)
        except Exception as exc:  # a bug in an adapter must not take the scheduler down
            log.exception("poll %s crashed", cfg.name)
            return record_failure(runtime, cfg.name, started, f"internal error: {type(exc).__name__}: {exc}", demo=demo)
    snapshot.source = cfg.name
    result = apply_snapshot(
        runtime.engine,
        snapshot,
        runtime.catalog,
        max_withdraw_share=runtime.settings.ingest.max_withdraw_share,
        started_at=started,
    )
    if refresh_index:  # a reload, or only newer confirmations when the poll changed no offer
        runtime.index.refresh_if_changed()
    return result
