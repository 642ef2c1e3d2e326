"""Placement as a service: validate the job, decide over the current index, remember the decision.

Decisions are recorded write-behind: a request is answered as soon as it is decided, and a background writer
stores decisions in batches (one transaction per batch, not per request), so ``/v1/place`` keeps its latency
under load. ``GET /v1/placements/{id}`` also looks in the not-yet-written batch, so a decision is readable the
moment it is returned. The writer flushes on shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from pydantic import ValidationError

from broker.api.problems import Problem, invalid_request
from broker.domain import utcnow
from broker.gpus import UnknownGpu
from broker.ids import random_uuid
from broker.observability.metrics import observe_placement_latency, record_decision
from broker.pacing import paced, pause_point
from broker.placement import repository
from broker.placement.engine import Infeasible, place
from broker.placement.schemas import PlaceAnswer, PlaceRequest
from broker.runtime import Runtime

log = logging.getLogger(__name__)


FLUSH_SLICE = 100


class DecisionLog:
    """Batches decisions to the database from a background thread."""

    def __init__(self, runtime: Runtime, every_s: float = 0.2) -> None:
        self.runtime = runtime
        self.every_s = every_s
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="decision-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._pending[row["id"]] = row
        if self._thread is None:  # no writer running (CLI, tests): write now
            self.flush()

    def pending(self, placement_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._pending.get(placement_id)

    def flush(self) -> None:
        with self._lock:
            batch = list(self._pending.values())
        # a slice per transaction, with a pause point between (broker.pacing): after the database was away or
        # locked by a long ingest, thousands of decisions wait, and one insert of them all would hold the GIL
        # for a long time in a serving process
        for start in range(0, len(batch), FLUSH_SLICE):
            rows = batch[start : start + FLUSH_SLICE]
            with self.runtime.engine.begin() as conn:
                repository.save_many(conn, [_encoded(row) for row in rows])
            with self._lock:
                for row in rows:
                    self._pending.pop(row["id"], None)
            pause_point()

    def _loop(self) -> None:
        share = self.runtime.settings.server.background_share
        while not self._stop.wait(self.every_s):
            try:
                with paced(share):
                    self.flush()
            except Exception as exc:  # the database may be away: keep the batch and retry
                log.warning("could not store placement decisions yet: %s", exc)


def parse_job(body: Any) -> PlaceRequest:
    """A job from decoded JSON/YAML; raises ``Problem`` 400 naming each bad field."""
    if not isinstance(body, Mapping):
        raise Problem(400, "Invalid request", "the job must be an object (a mapping of fields)", slug="invalid-request")
    try:
        return PlaceRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc, "job") from None


def decide(runtime: Runtime, job: PlaceRequest, decisions: DecisionLog, *, now: datetime | None = None) -> bytes:
    """Decide over the current index and record; returns the answer as JSON. Raises ``Problem`` 400 or 409."""
    now = now or utcnow()
    began = time.perf_counter()
    try:
        decision = place(job, runtime.index.current, runtime.catalog, runtime.placement_config, now)
    except UnknownGpu as exc:
        raise Problem(
            400,
            "Invalid request",
            str(exc),
            slug="invalid-request",
            extensions={"errors": [{"field": "gpu", "message": str(exc)}]},
        ) from None
    except Infeasible as exc:
        grouped = {k: v for k, v in exc.rejected.items() if v}
        # not_examined: offers the search never needed to look at (it stops once nothing left can fit)
        extensions = {"rejected": grouped, "not_examined": exc.not_examined}
        raise Problem(409, "No feasible option", str(exc), slug="no-feasible-option", extensions=extensions) from None
    observe_placement_latency(time.perf_counter() - began)
    choice = decision.choice
    record_decision(choice.provider, str(choice.purchase))
    placement_id = str(random_uuid())
    # encoded once: the same bytes are the HTTP answer and the stored decision (json columns write Raw verbatim)
    answer = msgspec.json.encode(
        PlaceAnswer(placement_id=placement_id, created_at=now, **msgspec.structs.asdict(decision))
    )
    decisions.add(
        {
            "id": placement_id,
            "created_at": now,
            "request": job,  # encoded by the writer (``_encoded``), off the request path
            "decision": msgspec.Raw(answer),
            "provider": choice.provider,
            "purchase": str(choice.purchase),
            "gpu_model": choice.gpu_model,
            "expected_cost_usd": Decimal(str(choice.expected_cost_usd)),
            "labels": dict(job.labels),
        }
    )
    return answer


def stored(runtime: Runtime, decisions: DecisionLog, placement_id: str) -> dict[str, Any]:
    row = decisions.pending(placement_id)
    if row is None:
        with runtime.engine.connect() as conn:
            row = repository.get(conn, placement_id)
    if row is None:
        raise Problem(404, "Not found", f"no placement {placement_id!r}", slug="not-found")
    return {
        "placement_id": placement_id,
        "created_at": row["created_at"],
        "request": _json(row["request"]),
        "decision": _json(row["decision"]),
        "labels": row["labels"],
    }


def _encoded(row: dict[str, Any]) -> dict[str, Any]:
    """A pending decision (``decide`` adds them) as its table row: the job encoded (json columns write Raw verbatim)."""
    return {**row, "request": msgspec.Raw(row["request"].model_dump_json())}


def _json(value: Any) -> Any:
    """A JSON column's value as read back: a pending decision holds its job, and its answer still encoded."""
    if isinstance(value, PlaceRequest):
        return value.model_dump(mode="json")
    return msgspec.json.decode(value) if isinstance(value, msgspec.Raw) else value
