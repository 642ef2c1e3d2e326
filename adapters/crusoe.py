"""Crusoe Cloud: GPU specs and availability from the API, prices from a rate card.

Crusoe publishes no price API. ``/projects/{id}/compute/vms/types`` gives each instance type's GPU model and
count, ``/capacities`` how many are free per location (quantity > 0 = available), and the prices come from the
operator-maintained rate card (option ``ratecard``, per-GPU-hour list prices with their source URL and date).
Requests are HMAC-SHA256 signed (provider-apis.md section 6).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote_plus

import httpx

from adapters.base import Source, SourceContext
from adapters.http import client_for, get_json
from broker.domain import Availability, OfferKey, PriceObservation, Purchase, Snapshot, SourceError

DEFAULT_BASE_URL = "https://api.cloud.crusoe.ai/v1"
DEFAULT_RATECARD = "ratecards/crusoe.toml"
ENV_ACCESS, ENV_SECRET, ENV_PROJECT = "CRUSOE_ACCESS_KEY", "CRUSOE_SECRET_KEY", "CRUSOE_PROJECT_ID"
DEMO_PROJECT = "demo-project"
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


# --- rate card ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardPrice:
    gpu_type: str  # as the API's Type.gpu_type spells it
    product_prefix: str  # fallback match on Type.product_name before the "." ("h100-80gb-sxm-ib")
    on_demand: Decimal  # USD per GPU-hour
    spot: Decimal | None
    source_url: str
    effective_date: str


@dataclass(frozen=True, slots=True)
class RateCard:
    label: str  # "ratecard:<path as configured>"
    currency: str
    valid_until: date | None
    prices: tuple[CardPrice, ...]

    def price_for(self, gpu_type: str, product_name: str) -> CardPrice | None:
        family = product_name.split(".", 1)[0].lower()
        for price in self.prices:
            if price.gpu_type.lower() == gpu_type.lower():
                return price
        return next((p for p in self.prices if p.product_prefix and p.product_prefix.lower() == family), None)


def _money(value: object, where: str) -> Decimal:
    try:
        # str() first: a TOML float such as 3.9 must become Decimal("3.9"), not its binary expansion
        return Decimal(str(value))
    except InvalidOperation:
        raise SourceError(f"{where}: {value!r} is not a price") from None


def load_ratecard(path: Path, label: str) -> RateCard:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"Crusoe rate card {path}: cannot read it ({exc.strerror}); set option ratecard") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"Crusoe rate card {path}: not valid TOML ({exc})") from None
    prices = []
    for i, row in enumerate(doc.get("prices", [])):
        where = f"Crusoe rate card {path} prices[{i}]"
        if not isinstance(row, Mapping) or "gpu_type" not in row or "on_demand" not in row:
            raise SourceError(f"{where}: needs gpu_type and on_demand")
        prices.append(CardPrice(
            gpu_type=str(row["gpu_type"]), product_prefix=str(row.get("product_prefix", "")),
            on_demand=_money(row["on_demand"], where),
            spot=_money(row["spot"], where) if "spot" in row else None,
            source_url=str(row.get("source_url", "")), effective_date=str(row.get("effective_date", "")),
        ))  # fmt: skip
    if not prices:
        raise SourceError(f"Crusoe rate card {path}: no [[prices]] entries")
    valid_until = doc.get("valid_until")
    return RateCard(
        label=label, currency=str(doc.get("currency", "USD")),
        valid_until=valid_until if isinstance(valid_until, date) else None, prices=tuple(prices),
    )  # fmt: skip


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
        card = load_ratecard(self.ctx.config_dir / self.ratecard_option, f"ratecard:{self.ratecard_option}")
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
            price = card.price_for(vm.gpu_type, vm.product_name)
            if price is None:
                snap.rejected["no rate card price"] += 1
                unpriced.append(f"{vm.product_name} ({vm.gpu_type})")
            elif vm.product_name not in where:
                unlocated.append(vm.product_name)
            else:
                snap.observations.extend(self._offers(vm, price, card, where[vm.product_name]))
        if unpriced:
            snap.warnings.append(f"types with no price in {card.label} (add them): {', '.join(unpriced[:10])}")
        if unlocated:
            snap.warnings.append(f"types with no /capacities row, not offered anywhere: {', '.join(unlocated[:10])}")
        if card.valid_until and card.valid_until < self.ctx.now().date():
            snap.warnings.append(f"{card.label} expired on {card.valid_until}: check Crusoe's prices and update it")
        if not snap.observations:  # an empty complete snapshot would withdraw every Crusoe offer
            reasons = f" (refused: {dict(snap.rejected)})" if snap.rejected else ""
            raise SourceError(f"Crusoe: no GPU instance type has both a rate card price and a location{reasons}")
        return snap

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

    def _offers(
        self, vm: VmType, price: CardPrice, card: RateCard, locations: list[tuple[str, int]]
    ) -> Iterator[PriceObservation]:
        attrs = {"price_source": card.label, "price_source_url": price.source_url,
                 "price_effective_date": price.effective_date, "price_unit": "per GPU-hour x num_gpu"}  # fmt: skip
        for location, quantity in locations:
            common: dict[str, Any] = {
                "gpu_name": vm.gpu_type, "gpu_count": vm.num_gpu, "gpu_memory_gb": vm.gpu_memory_gb,
                "vcpus": vm.vcpus, "memory_gb": vm.memory_gb,
                "currency": card.currency, "attrs": attrs,
            }  # fmt: skip
            yield PriceObservation(
                key=OfferKey("crusoe", location, vm.product_name, Purchase.ON_DEMAND.value),
                hourly_usd=price.on_demand * vm.num_gpu,
                availability=Availability.AVAILABLE if quantity > 0 else
                Availability.UNAVAILABLE if quantity == 0 else Availability.UNKNOWN,
                available_quantity=quantity if quantity >= 0 else None, **common,
            )  # fmt: skip
            if self.include_spot and price.spot is not None:
                # /capacities does not separate spot capacity: its availability is not known.
                yield PriceObservation(
                    key=OfferKey("crusoe", location, vm.product_name, Purchase.SPOT.value),
                    hourly_usd=price.spot * vm.num_gpu,
                    availability=Availability.UNKNOWN,
                    **common,
                )


DEMO_ROUTES = {
    f"/v1/projects/{DEMO_PROJECT}/compute/vms/types": "vms_types.json",
    "/v1/capacities": "capacities.json",
}
