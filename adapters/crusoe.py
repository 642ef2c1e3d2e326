"""Crusoe Cloud: GPU specs and availability from the API, prices from a rate card.

Crusoe publishes no price API. ``/projects/{id}/compute/vms/types`` gives each instance type's GPU model and
count, ``/capacities`` how many are free per location (quantity > 0 = available), and the prices come from the
operator-maintained rate card (option ``ratecard``): an ``adapters.ratecard`` card of per-GPU-hour GPU rates,
matched to each type by ``RateCard.rate_for`` (GPU type, narrowed by product family where the card says so).
Requests are HMAC-SHA256 signed (provider-apis.md section 6).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote_plus

import httpx

from adapters.base import Source, SourceContext
from adapters.http import client_for, get_json
from adapters.ratecard import RateCard, RateCardError, RateEntry, load_ratecard
from broker.domain import Availability, OfferKey, PriceObservation, Purchase, Snapshot, SourceError

DEFAULT_BASE_URL = "https://api.cloud.crusoe.ai/v1"
DEFAULT_RATECARD = "ratecards/crusoe.toml"
ENV_ACCESS, ENV_SECRET, ENV_PROJECT = "CRUSOE_ACCESS_KEY", "CRUSOE_SECRET_KEY", "CRUSOE_PROJECT_ID"
DEMO_PROJECT = "demo-project"
PROVIDER = "crusoe"
GPU_MEMORY = re.compile(r"(\d+)GB$", re.IGNORECASE)


# --- request signing ---------------------------------------------------------------------------------------


def canonical_query(url: httpx.URL) -> str:
    """Keys sorted (repeated keys kept in order), key and value escaped like Go's url.QueryEscape."""
    pairs = sorted(url.params.multi_items(), key=lambda kv: kv[0])
    return "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in pairs)


def signing_message(method: str, url: httpx.URL, timestamp: str) -> str:
    return f"{url.path}\n{canonical_query(url)}\n{method.upper()}\n{timestamp}\n"


def sign(method: str, url: httpx.URL, timestamp: str, access_key: str, secret_key: str) -> dict[str, str]:
    """The two auth headers for one request. The secret is base64url (padding optional)."""
    try:
        key = base64.urlsafe_b64decode(secret_key + "=" * (-len(secret_key) % 4))
    except (binascii.Error, ValueError):
        raise SourceError(f"{ENV_SECRET} is not valid base64url; copy the secret key exactly as issued") from None
    digest = hmac.new(key, signing_message(method, url, timestamp).encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return {"X-Crusoe-Timestamp": timestamp, "Authorization": f"Bearer 1.0:{access_key}:{signature}"}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the source --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VmType:
    product_name: str
    gpu_type: str
    num_gpu: int
    vcpus: float | None
    memory_gb: float | None

    @property
    def gpu_memory_gb(self) -> float | None:
        found = GPU_MEMORY.search(self.gpu_type)  # "H100-SXM-80GB", "MI355X_288GB"
        return float(found.group(1)) if found else None


def parse_type(row: object) -> VmType | str:
    """One Type item -> VmType, or the reason it is refused ("" for a CPU-only type, skipped quietly)."""
    if not isinstance(row, Mapping):
        return "malformed type row"
    for field in ("product_name", "num_gpu"):
        if field not in row:
            return f"missing field {field}"
    num_gpu = row["num_gpu"]
    if not isinstance(num_gpu, int) or isinstance(num_gpu, bool) or num_gpu < 0:
        return "num_gpu is not a count"
    if num_gpu == 0:
        return ""
    if not isinstance(row.get("gpu_type"), str):
        return "missing field gpu_type"
    cpu, mem = row.get("cpu_cores"), row.get("memory_gb")
    return VmType(
        product_name=str(row["product_name"]), gpu_type=row["gpu_type"], num_gpu=num_gpu,
        vcpus=float(cpu) if isinstance(cpu, int | float) else None,
        memory_gb=float(mem) if isinstance(mem, int | float) else None,
    )  # fmt: skip


class CrusoeSource(Source):
    kind: ClassVar[str] = "crusoe"
    naming: ClassVar[str] = "crusoe"

    def __init__(self, ctx: SourceContext, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(ctx)
        self.sleep = sleep
        self.base_url = str(ctx.options.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
        self.ratecard_option = str(ctx.options.get("ratecard", DEFAULT_RATECARD))
        self.include_spot = bool(ctx.options.get("include_spot", True))

    def missing_credentials(self) -> str | None:
        if self.ctx.demo:
            return None
        missing = [name for name in (ENV_ACCESS, ENV_SECRET, ENV_PROJECT) if not self.ctx.env.get(name)]
        return f"{', '.join(missing)} not set (create an access key in the Crusoe console)" if missing else None

    def fetch(self) -> Snapshot:
        missing = self.missing_credentials()
        if missing:
            raise SourceError(missing)
        card = self._ratecard()
        client = client_for(self.ctx, self.kind, DEMO_ROUTES)
        project = DEMO_PROJECT if self.ctx.demo else self.ctx.env[ENV_PROJECT]
        types = self._items(client, f"/projects/{project}/compute/vms/types", "Crusoe instance types")
        capacities = self._items(client, "/capacities", "Crusoe capacities")

        snap = Snapshot(source=self.ctx.name, naming=self.naming, taken_at=self.ctx.now(), demo=self.ctx.demo)
        where: dict[str, list[tuple[str, int]]] = {}
        for row in capacities:
            if isinstance(row, Mapping) and isinstance(row.get("type"), str) and isinstance(row.get("location"), str):
                qty = row.get("quantity")
                where.setdefault(row["type"], []).append((row["location"], qty if isinstance(qty, int) else -1))
            else:
                snap.rejected["malformed capacity row"] += 1
        unpriced, unlocated = [], []
        for row in types:
            vm = parse_type(row)
            if isinstance(vm, str):
                if vm:
                    snap.rejected[vm] += 1
                continue
            rate = card.rate_for(vm.gpu_type, vm.product_name)
            if rate is None:
                snap.rejected["no rate card price"] += 1
                unpriced.append(f"{vm.product_name} ({vm.gpu_type})")
            elif vm.product_name not in where:
                unlocated.append(vm.product_name)
            else:
                spot = card.rate_for(vm.gpu_type, vm.product_name, Purchase.SPOT) if self.include_spot else None
                snap.observations.extend(self._offers(vm, rate, spot, where[vm.product_name]))
        if unpriced:
            snap.warnings.append(f"types with no price in {self.label} (add them): {', '.join(unpriced[:10])}")
        if unlocated:
            snap.warnings.append(f"types with no /capacities row, not offered anywhere: {', '.join(unlocated[:10])}")
        if card.is_stale(self.ctx.now().date()):
            snap.warnings.append(f"{self.label} expired on {card.valid_until}: check Crusoe's prices and update it")
        if not snap.observations:  # an empty complete snapshot would withdraw every Crusoe offer
            reasons = f" (refused: {dict(snap.rejected)})" if snap.rejected else ""
            raise SourceError(f"Crusoe: no GPU instance type has both a rate card price and a location{reasons}")
        return snap

    @property
    def label(self) -> str:
        return f"ratecard:{self.ratecard_option}"

    def _ratecard(self) -> RateCard:
        try:
            card = load_ratecard(self.ctx.config_dir / self.ratecard_option)
        except RateCardError as exc:  # a broken card fails the poll; earlier prices stay as they were
            raise SourceError(f"Crusoe rate card (option ratecard): {exc}") from None
        if card.provider != PROVIDER:
            raise SourceError(f"Crusoe rate card {card.path}: it is for provider {card.provider!r}, not {PROVIDER!r}")
        return card

    def _items(self, client: httpx.Client, path: str, what: str) -> list[Any]:
        url = httpx.URL(f"{self.base_url}{path}")
        headers = {}
        if not self.ctx.demo:
            env = self.ctx.env
            headers = sign("GET", url, rfc3339(self.ctx.now()), env[ENV_ACCESS], env[ENV_SECRET])
        body = get_json(
            self.ctx, client, str(url), what=what, headers=headers, sleep=self.sleep,
            auth_hint=f"{ENV_ACCESS}/{ENV_SECRET} were rejected (or the clock is off: requests are time-stamped)",
        )  # fmt: skip
        items = body.get("items") if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            raise SourceError(f"{what}: no 'items' list in the response (has the API shape changed?)")
        return items

    def _attrs(self, rate: RateEntry) -> dict[str, Any]:
        return {
            "price_source": self.label,
            "price_source_url": rate.source,
            "price_effective_date": rate.effective_date.isoformat(),
            "price_unit": "per GPU-hour x num_gpu",
        }

    def _offers(
        self, vm: VmType, rate: RateEntry, spot: RateEntry | None, locations: list[tuple[str, int]]
    ) -> Iterator[PriceObservation]:
        for location, quantity in locations:
            shape: dict[str, Any] = {
                "gpu_name": vm.gpu_type, "gpu_count": vm.num_gpu, "gpu_memory_gb": vm.gpu_memory_gb,
                "vcpus": vm.vcpus, "memory_gb": vm.memory_gb, "currency": "USD",  # the only currency a card takes
            }  # fmt: skip
            yield PriceObservation(
                key=OfferKey(PROVIDER, location, vm.product_name, Purchase.ON_DEMAND.value),
                hourly_usd=rate.hourly_usd(vm.num_gpu),
                availability=Availability.AVAILABLE if quantity > 0 else
                Availability.UNAVAILABLE if quantity == 0 else Availability.UNKNOWN,
                available_quantity=quantity if quantity >= 0 else None, attrs=self._attrs(rate), **shape,
            )  # fmt: skip
            if spot is not None:
                # /capacities does not separate spot capacity: its availability is not known.
                yield PriceObservation(
                    key=OfferKey(PROVIDER, location, vm.product_name, Purchase.SPOT.value),
                    hourly_usd=spot.hourly_usd(vm.num_gpu),
                    availability=Availability.UNKNOWN,
                    attrs=self._attrs(spot),
                    **shape,
                )


DEMO_ROUTES = {
    f"/v1/projects/{DEMO_PROJECT}/compute/vms/types": "vms_types.json",
    "/v1/capacities": "capacities.json",
}
