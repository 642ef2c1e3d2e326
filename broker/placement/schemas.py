"""Request and answer models of ``POST /v1/place``. Field names are API: clients code against them.

Unknown fields are refused (``extra="forbid"``) so that a misspelt constraint fails loudly instead of being ignored.
Money is Decimal USD; the request's hourly limits are USD per hour for *all* nodes of an option.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from broker.domain import COMMITTED_PURCHASES, Availability, Purchase

_STRICT = ConfigDict(extra="forbid")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOCATION = re.compile(r"^[a-z0-9_-]+:[A-Za-z0-9_.-]+$")


class Arch(StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"


class Vendor(StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"
    INTEL = "intel"


class Workload(StrEnum):
    TRAINING = "training"
    BATCH = "batch"
    INFERENCE = "inference"


class RejectReason(StrEnum):
    """Why a candidate offer was ruled out; the first failing check names it."""

    WRONG_GPU = "wrong_gpu"  # model/memory/compute capability/vendor not acceptable, or GPU unknown
    NOT_PORTABLE = "not_portable"  # the image cannot run there (CPU architecture, GPU vendor stack)
    CONSTRAINT = "constraint"  # provider/region/jurisdiction/purchase/size/interconnect rule
    STALE_PRICE = "stale_price"
    UNAVAILABLE = "unavailable"
    OVER_BUDGET = "over_budget"
    MISSES_DEADLINE = "misses_deadline"


class GpuRequest(BaseModel):
    model_config = _STRICT

    count: int = Field(ge=1, le=4096, description="GPUs the job needs in total")
    models: list[str] = Field(default_factory=list, description="acceptable model ids or families")
    min_memory_gb: float | None = Field(default=None, gt=0, description="per GPU")
    vendor: Vendor | None = None
    min_compute_capability: float | None = Field(default=None, ge=0)


class Interconnect(BaseModel):
    """What a multi-node job needs between nodes; single-node options ignore it."""

    model_config = _STRICT

    fabrics: list[str] = Field(default_factory=list, description='accepted fabrics, e.g. ["infiniband", "efa"]')
    min_gbps: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # "infiniband" is accepted as shorthand for {"fabrics": ["infiniband"]}
        if isinstance(value, str):
            return {"fabrics": [value]}
        return value

    @field_validator("fabrics")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [f.strip().lower() for f in v if f.strip()]


class Work(BaseModel):
    model_config = _STRICT

    # at least a second: shorter lengths underflow to 0 h of work on a faster GPU (a division by zero)
    hours: float = Field(ge=1 / 3600, le=1_000_000, description="job length measured on reference_gpu")
    reference_gpu: str = Field(min_length=1)
    speedups: dict[str, float] = Field(
        default_factory=dict, description="{model or family: throughput relative to reference_gpu}"
    )

    @field_validator("speedups")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, f in v.items() if not f > 0]
        if bad:
            raise ValueError(f"speedup factors must be > 0 (bad: {', '.join(sorted(bad))})")
        return v


class Checkpoint(BaseModel):
    """Checkpoint/restart costs; unset values take config/placement.toml defaults."""

    model_config = _STRICT

    interval_minutes: float | Literal["auto"] = "auto"  # "auto" = Young/Daly optimum for each option
    write_minutes: float | None = Field(default=None, ge=0, le=24 * 60)
    restart_minutes: float | None = Field(default=None, ge=0, le=24 * 60)
    size_gb: float | None = Field(default=None, ge=0)

    @field_validator("interval_minutes")
    @classmethod
    def _interval(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and not v > 0:
            raise ValueError('interval_minutes must be > 0 or "auto"')
        return v


class DataSpec(BaseModel):
    model_config = _STRICT

    location: str = Field(description='where the input data lives, "provider:region"')
    size_gb: float = Field(default=0, ge=0)

    @field_validator("location")
    @classmethod
    def _location(cls, v: str) -> str:
        if not _LOCATION.match(v):
            raise ValueError('location must look like "provider:region", e.g. "aws:us-east-1"')
        return v

    @property
    def provider(self) -> str:
        return self.location.split(":", 1)[0]

    @property
    def region(self) -> str:
        return self.location.split(":", 1)[1]


class Constraints(BaseModel):
    model_config = _STRICT

    providers: list[str] = Field(default_factory=list, description="only these providers (empty: any)")
    exclude_providers: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list, description="only these regions (empty: any)")
    jurisdictions: list[str] = Field(default_factory=list, description='e.g. ["EU"], ["US", "CA"], ["DE"]')
    max_hourly_usd: Decimal | None = Field(default=None, gt=0, description="USD per hour for all nodes")
    max_total_usd: Decimal | None = Field(default=None, gt=0)
    deadline_hours: float | None = Field(default=None, gt=0)
    max_price_age_minutes: float | None = Field(default=None, gt=0)
    require_available: bool = False


class HeldCommitment(BaseModel):
    """A commitment the user already pays for; unset fields match anything.

    ``unused_instances`` is how many instances of it sit idle now: up to that many nodes cost nothing extra.
    """

    model_config = _STRICT

    provider: str
    purchase: Purchase | None = None
    region: str | None = None
    instance_type: str | None = None
    unused_instances: int | None = Field(default=None, ge=0)

    @field_validator("purchase")
    @classmethod
    def _committed(cls, v: Purchase | None) -> Purchase | None:
        if v is not None and v not in COMMITTED_PURCHASES:
            raise ValueError(f"purchase must be a committed one: {', '.join(sorted(COMMITTED_PURCHASES))}")
        return v


class PlaceRequest(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, max_length=200)
    image: str = Field(min_length=1, max_length=500)
    command: list[str] | str = Field(default_factory=list, description="exec form (list) or a shell line")
    env: dict[str, str] = Field(default_factory=dict)
    arch: Arch = Arch.X86_64
    gpu: GpuRequest
    cpus: float | None = Field(default=None, gt=0, description="per node")
    memory_gb: float | None = Field(default=None, gt=0, description="per node")
    interconnect: Interconnect | None = None
    work: Work
    workload: Workload = Workload.TRAINING
    interruptible: bool | None = Field(default=None, description="unset: training/batch yes, inference no")
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    data: DataSpec | None = None
    constraints: Constraints = Field(default_factory=Constraints)
    held_commitments: list[HeldCommitment] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    alternatives: int = Field(default=5, ge=0, le=50)

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"not valid environment variable names: {', '.join(sorted(bad))}")
        return v

    @property
    def spot_allowed(self) -> bool:
        if self.interruptible is not None:
            return self.interruptible
        return self.workload is not Workload.INFERENCE


# The answer's models are msgspec Structs, not pydantic models: every field is computed by the engine (nothing to
# validate), and building them and encoding them to JSON in C took a fifth of a decision's time under pydantic.
# Decimal encodes as a string and datetime as RFC 3339, as the API has always written them.


class Breakdown(msgspec.Struct, kw_only=True):
    """Parts of ``expected_cost_usd``; they sum to it exactly."""

    compute: Decimal  # failure-free run, checkpoint writes included
    interruptions: Decimal  # re-done work and restarts
    egress: Decimal  # moving the input data to the option's region
    checkpoint_storage: Decimal


class Option(msgspec.Struct, kw_only=True):
    offer_id: int
    provider: str
    region: str
    zone: str
    instance_type: str
    purchase: str
    term: str
    gpu_model: str
    gpus_per_node: int
    nodes: int
    hourly_usd: Decimal  # all nodes, what this job adds per hour (0 on an idle held commitment)
    price_observed_at: datetime  # the last poll that saw this price
    availability: Availability
    work_hours: float  # job hours on this GPU model, before interruptions
    expected_hours: float  # billed wall clock, interruptions included
    expected_makespan_hours: float  # expected_hours plus waiting for capacity and data transfer
    expected_interruptions: float
    interruption_rate_per_hour: float  # for the whole gang of nodes
    checkpoint_interval_minutes: float | None  # None: no periodic checkpoint pays off
    expected_cost_usd: Decimal
    breakdown: Breakdown
    reasons: list[str]
    demo: bool = False


class LaunchSpec(msgspec.Struct, kw_only=True):
    skypilot_yaml: str
    kubernetes_job: dict[str, Any]


class Decision(msgspec.Struct, kw_only=True):
    choice: Option
    alternatives: list[Option]
    # Every offer in the index is in exactly one of: rejected (by reason, zeros included), feasible, not_examined.
    rejected: dict[str, int]  # ruled out by the first failing check, for a whole group at once or one by one
    examined: int  # offers evaluated one by one (feasible or rejected)
    feasible: int  # examined offers that fit the job: choice and alternatives are the cheapest of them
    not_examined: int  # skipped by the cost bound: even their lowest possible cost could not enter the answer
    launch: LaunchSpec


class PlaceAnswer(Decision, kw_only=True):
    """The ``POST /v1/place`` answer as the OpenAPI schema documents it: the decision, and the id to report runs of
    it against (``POST /v1/placements/{placement_id}/report``)."""

    placement_id: str
    created_at: datetime


# Documented with the request body: also the fuzzer's one valid job, since free-form ids rarely name a catalog GPU
PLACE_EXAMPLE: dict[str, Any] = {
    "name": "fine-tune",
    "image": "ghcr.io/acme/train:1.2",
    "command": ["python", "train.py"],
    "gpu": {"count": 8, "models": ["H100", "A100-80GB"]},
    "work": {"hours": 10, "reference_gpu": "A100-80GB"},
    "checkpoint": {"interval_minutes": "auto", "write_minutes": 2, "restart_minutes": 5, "size_gb": 50},
    "labels": {"team": "research"},
    "alternatives": 3,
}
