"""Lambda Cloud ``GET /api/v1/instance-types`` -> on-demand GPU offers, one per known region.

Lambda prices each instance type once (in US cents per hour) and lists only the regions that have capacity
right now. Prices are uniform across regions, so every known region gets an offer at that price; a region
absent from ``regions_with_capacity_available`` is UNAVAILABLE (Lambda says it is sold out there), not UNKNOWN.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from adapters.base import Source, SourceContext
from adapters.http import client_for, get_json
from broker.domain import Availability, ConfigError, OfferKey, PriceObservation, Purchase, Snapshot, SourceError

DEFAULT_BASE_URL = "https://cloud.lambda.ai"
API_KEY_ENV = "LAMBDA_API_KEY"
# Lambda's public region names (as listed by SkyPilot's Lambda catalog, late 2026).
DEFAULT_REGIONS = (
    "asia-northeast-1", "asia-northeast-2", "asia-south-1", "australia-east-1", "europe-central-1",
    "europe-south-1", "me-west-1", "us-east-1", "us-east-2", "us-east-3", "us-midwest-1", "us-south-1",
    "us-south-2", "us-south-3", "us-west-1", "us-west-2", "us-west-3",
)  # fmt: skip
# "8x H100 (80 GB SXM5)" / "1x Tesla V100 (16 GB)": count, GPU spelling, memory per GPU.
DESCRIPTION = re.compile(r"^(\d+)x (.+?\((\d+) GB.*\))\s*$")
MEMORY = re.compile(r"\((\d+) GB")


@dataclass(frozen=True, slots=True)
class LambdaType:
    name: str
    cents: Decimal
    gpu_name: str
    gpu_count: int
    gpu_memory_gb: float | None
    vcpus: float | None
    memory_gb: float | None
    description: str
    available: frozenset[str]


def _cents(value: object) -> Decimal | None:
    # The schema says integer; Lambda's own OpenAPI example sends a string: accept numbers and numeric strings.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cents = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return cents if cents.is_finite() else None


def _number(specs: Mapping[str, Any], field: str) -> float | None:
    value = specs.get(field)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_type(name: str, entry: object) -> LambdaType | str:
    """One entry of ``data`` -> a LambdaType, or the reason it is refused (a CPU-only type returns "")."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("instance_type"), Mapping):
        return "missing field instance_type"
    itype: Mapping[str, Any] = entry["instance_type"]
    if "price_cents_per_hour" not in itype:
        return "missing field price_cents_per_hour"
    cents = _cents(itype["price_cents_per_hour"])
    if cents is None:
        return "price is not a number"
    description = str(itype.get("description", ""))
    raw_specs = itype.get("specs")
    specs: Mapping[str, Any] = raw_specs if isinstance(raw_specs, Mapping) else {}
    parsed = DESCRIPTION.match(description)
    gpu_name = itype.get("gpu_description") or (parsed.group(2) if parsed else None)
    count = specs.get("gpus", int(parsed.group(1)) if parsed else None)
    if count == 0 or (count is None and name.startswith("cpu_")):
        return ""  # CPU-only instance: not a GPU offer
    if not isinstance(gpu_name, str) or not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return "cannot tell the GPU model or count"
    memory = MEMORY.search(gpu_name)
    regions = entry.get("regions_with_capacity_available", [])
    if not isinstance(regions, list):
        return "malformed regions_with_capacity_available"
    available = frozenset(r["name"] for r in regions if isinstance(r, Mapping) and isinstance(r.get("name"), str))
    return LambdaType(
        name=name, cents=cents, gpu_name=gpu_name, gpu_count=count,
        gpu_memory_gb=float(memory.group(1)) if memory else None,
        vcpus=_number(specs, "vcpus"), memory_gb=_number(specs, "memory_gib"),  # GiB, as Lambda sizes memory
        description=description, available=available,
    )  # fmt: skip


class LambdaSource(Source):
    kind: ClassVar[str] = "lambda"
    naming: ClassVar[str] = "lambda"

    def __init__(self, ctx: SourceContext, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(ctx)
        self.sleep = sleep
        self.base_url = str(ctx.options.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
        regions = ctx.options.get("regions", DEFAULT_REGIONS)
        if isinstance(regions, str) or not all(isinstance(r, str) for r in regions):
            raise ConfigError("option regions must be a list of Lambda region names, e.g. ['us-east-1']")
        self.regions: tuple[str, ...] = tuple(regions)

    def missing_credentials(self) -> str | None:
        if self.ctx.demo or self.ctx.env.get(API_KEY_ENV):
            return None
        return f"{API_KEY_ENV} is not set (create an API key in the Lambda Cloud dashboard)"

    def fetch(self) -> Snapshot:
        missing = self.missing_credentials()
        if missing:
            raise SourceError(missing)
        headers = {} if self.ctx.demo else {"Authorization": f"Bearer {self.ctx.env[API_KEY_ENV]}"}
        client = client_for(self.ctx, self.kind, DEMO_ROUTES)
        body = get_json(
            self.ctx, client, f"{self.base_url}/api/v1/instance-types", what="Lambda instance types",
            headers=headers, sleep=self.sleep, auth_hint=f"{API_KEY_ENV} was rejected: create a new API key",
        )  # fmt: skip
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, Mapping):
            raise SourceError(f"Lambda instance types: no 'data' object in the response{_error_text(body)}")
        snap = Snapshot(source=self.ctx.name, naming=self.naming, taken_at=self.ctx.now(), demo=self.ctx.demo)
        for name, entry in data.items():
            parsed = parse_type(str(name), entry)
            if isinstance(parsed, str):
                if parsed:
                    snap.rejected[parsed] += 1
                continue
            snap.observations.extend(self._offers(parsed))
        if not snap.observations:  # an empty complete snapshot would withdraw every Lambda offer
            reasons = f" (refused: {dict(snap.rejected)})" if snap.rejected else ""
            raise SourceError(f"Lambda instance types: no usable GPU instance type in the response{reasons}")
        return snap

    def _offers(self, t: LambdaType) -> Iterator[PriceObservation]:
        hourly = t.cents / 100
        # Regions with capacity but missing from the known list still get their offer.
        for region in [*self.regions, *sorted(t.available - set(self.regions))]:
            yield PriceObservation(
                key=OfferKey("lambda", region, t.name, Purchase.ON_DEMAND.value),
                hourly_usd=hourly, gpu_name=t.gpu_name, gpu_count=t.gpu_count, gpu_memory_gb=t.gpu_memory_gb,
                vcpus=t.vcpus, memory_gb=t.memory_gb,
                availability=Availability.AVAILABLE if region in t.available else Availability.UNAVAILABLE,
                attrs={"description": t.description, "price_cents_per_hour": str(t.cents)},
            )  # fmt: skip


def _error_text(body: object) -> str:
    """Lambda's error envelope ``{"error": {"code", "message", "suggestion"}}`` as a short suffix."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        return f": {error.get('code', '?')}: {error.get('message', '')} {error.get('suggestion', '')}".rstrip()
    return " (has the API shape changed?)"


DEMO_ROUTES = {"/api/v1/instance-types": "instance_types.json"}
