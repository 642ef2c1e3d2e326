"""The FOCUS 1.2-aligned usage export: the usage records of the lookback window, with their list price basis."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broker.domain import utcnow
from broker.exports.service import ExportParams, gpu_models
from broker.gpus import GpuCatalog
from broker.usage import focus, repository
from broker.usage.prices import OnDemandReference


def focus_csv(engine: Engine, catalog: GpuCatalog, params: ExportParams) -> str:
    now = params.now or utcnow()
    start = now - timedelta(days=params.lookback_days)
    models = gpu_models(catalog, params.gpu)
    with Session(engine) as session:
        records = repository.load(session, start, now, gpu_models=models, provider=params.provider)
        if not records:
            return focus.write_csv([])
        earliest = min(r.started_at for r in records)
        refs = OnDemandReference.load(session, {r.gpu_model for r in records}, earliest, now + timedelta(seconds=1))
        rows = [focus.export_row(r, refs.at(r.gpu_model, r.provider, r.region, r.started_at)) for r in records]
    return focus.write_csv(rows)
