from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broker.gpus import GpuCatalog
from broker.store.ingest import apply_snapshot
from broker.usage.models import UsageRecord
from tests.factories import obs, snap

NOW = datetime(2026, 11, 27, tzinfo=UTC)
OD_GPU_HOUR = Decimal("98.32") / 8  # p5.48xlarge on-demand per GPU-hour


def market(engine: Engine, catalog: GpuCatalog) -> None:
    """AWS p5 on-demand, spot and 1y/3y reserved; Lambda 1-GPU on-demand whose price falls on 10 Nov."""
    first = [
        obs("p5.48xlarge", "98.32"),
        obs("p5.48xlarge", "40.00", purchase="spot", zone="us-east-1a"),
        obs("p5.48xlarge", "60.00", purchase="reserved", term="1y"),
        obs("p5.48xlarge", "40.00", purchase="reserved", term="3y"),
        obs("gpu_1x_h100_sxm5", "2.99", provider="lambda", region="us-east-3", gpus=1),
    ]
    apply_snapshot(engine, snap(first, at=datetime(2026, 10, 1, tzinfo=UTC)), catalog)
    second = [*first[:4], obs("gpu_1x_h100_sxm5", "2.49", provider="lambda", region="us-east-3", gpus=1)]
    apply_snapshot(engine, snap(second, at=datetime(2026, 11, 10, tzinfo=UTC)), catalog)


def add_usage(
    engine: Engine,
    started: datetime,
    hours: float,
    gpus: int,
    *,
    cost_per_gpu_hour: Decimal = OD_GPU_HOUR,
    provider: str = "aws",
    purchase: str = "on_demand",
    labels: dict[str, str] | None = None,
    predictions: int | None = None,
    report_id: str | None = None,
) -> None:
    gpu_hours = Decimal(str(hours)) * gpus
    with Session(engine) as s:
        s.add(
            UsageRecord(
                report_id=report_id or f"r-{started.isoformat()}-{gpus}-{provider}-{hours}",
                content_hash="x",
                origin="report",
                placement_id=None,
                received_at=NOW,
                started_at=started,
                ended_at=started + timedelta(hours=hours),
                gpu_hours=gpu_hours,
                interruptions=0,
                predictions=predictions,
                billed_usd=None,
                cost_usd=(gpu_hours * cost_per_gpu_hour).quantize(Decimal("1e-8")),
                cost_estimated=True,
                provider=provider,
                region="us-east-1" if provider == "aws" else "us-east-3",
                instance_type="p5.48xlarge" if provider == "aws" else "gpu_1x_h100_sxm5",
                purchase=purchase,
                gpu_model="H100-SXM",
                gpus_per_node=8 if provider == "aws" else 1,
                labels=labels or {},
            )
        )
        s.commit()


def base_and_bursts(engine: Engine, start: datetime, days: int) -> None:
    """16 GPUs around the clock, plus 48 more for two hours every day."""
    add_usage(engine, start, days * 24, 16)
    for d in range(days):
        add_usage(engine, start + timedelta(days=d, hours=14), 2, 48)
