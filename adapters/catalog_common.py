"""Row plumbing shared by the public-catalog sources (SkyPilot, gpuhunt).

Public catalogs are third-party aggregations with known data faults. A faulty row is refused with a
counted reason (``Snapshot.rejected``) instead of being ingested: a wrong GPU memory or a zero price
would otherwise win placement on a lie.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import httpx

from adapters.base import SourceContext
from adapters.http import get_bytes
from broker.domain import OfferKey, PriceObservation, Snapshot, SourceError

# The largest per-GPU memory shipping today is 288 GB (B300, MI355X); a per-GPU figure above this is
# an instance total or a unit slip, not a GPU. Raise it when a bigger part ships.
MAX_GPU_MEMORY_GB = 320.0
MIB_PER_GIB = 1024

# Catalogs spell some providers differently from the broker's own adapters; one offer, one name.
PROVIDER_ALIASES = {
    "lambdalabs": "lambda",
    "datacrunch": "verda",
    "vastai": "vast",
    "crusoecloud": "crusoe",
    "do": "digitalocean",
}

# Reasons, spelled once so tests and dashboards agree.
R_NO_INSTANCE = "missing instance type"
R_NO_REGION = "missing region"
R_NO_PROVIDER = "missing provider"
R_NO_COUNT = "missing gpu count"
R_FRACTIONAL = "fractional gpu count"
R_PRICE_MISSING = "price missing"
R_PRICE_ZERO = "price zero"
R_PRICE_BAD = "price unparsable"
R_MEM_ZERO = "gpu memory zero"
R_MEM_MIB = "gpu memory in MiB"
R_MEM_TOTAL = "gpu memory is the instance total"
R_MEM_BAD = "gpu memory unparsable"
R_DUPLICATE = "duplicate offer"


def canonical_provider(name: str) -> str:
    name = name.strip().lower()
    return PROVIDER_ALIASES.get(name, name)


class RowFault(Exception):
    """A row (or one price of it) is refused; ``str(exc)`` is the counted reason."""


def parse_price(raw: object) -> Decimal | None:
    """USD per hour from a catalog cell ("1.29", "$0.44", 3.5); None when empty. Raises RowFault when
    the value is unusable (zero, negative, not a number)."""
    if raw is None:
        return None
    text = str(raw).strip().replace("$", "").replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowFault(R_PRICE_BAD) from None
    if not value.is_finite() or value < 0:
        raise RowFault(R_PRICE_BAD)
    if value == 0:
        raise RowFault(R_PRICE_ZERO)
    return value


def parse_count(raw: object) -> int:
    """A GPU count ("8", "8.0", 8); 0 when empty. Fractional GPUs (shared slices) are refused."""
    text = str(raw if raw is not None else "").strip()
    if not text:
        return 0
    try:
        value = float(text)
    except ValueError:
        raise RowFault(R_NO_COUNT) from None
    if value != int(value):
        raise RowFault(R_FRACTIONAL)
    return int(value)


def parse_float(raw: object) -> float | None:
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def check_gpu_memory_gb(value: float, *, column_in_gb: bool = True) -> float:
    """Per-GPU memory in GB, refused when it is 0 or cannot be one GPU's memory. In a GB column a
    value of 1024 or more is MiB written by mistake (81920 for an 80 GB part)."""
    if value <= 0:
        raise RowFault(R_MEM_ZERO)
    if column_in_gb and value >= MIB_PER_GIB:
        raise RowFault(R_MEM_MIB)
    if value > MAX_GPU_MEMORY_GB:
        raise RowFault(R_MEM_TOTAL)
    return value


@dataclass(slots=True)
class Collector:
    """Observations and refusals of one poll; the first row wins a repeated offer key."""

    observations: list[PriceObservation] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    _seen: set[OfferKey] = field(default_factory=set)

    def add(self, obs: PriceObservation) -> None:
        if obs.key in self._seen:
            self.rejected[R_DUPLICATE] += 1
            return
        self._seen.add(obs.key)
        self.observations.append(obs)

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def snapshot(
        self, ctx: SourceContext, naming: str, warnings: list[str], what: str, *, complete: bool = True
    ) -> Snapshot:
        """The poll's snapshot; nothing usable at all is a failed poll, never an empty complete listing
        (which would withdraw every offer the source had)."""
        if not self.observations:
            reasons = ", ".join(f"{k}: {v}" for k, v in self.rejected.most_common()) or "no GPU rows"
            raise SourceError(f"{what}: no usable GPU offers ({reasons})")
        return Snapshot(
            source=ctx.name,
            naming=naming,
            taken_at=ctx.now(),
            observations=self.observations,
            complete=complete,
            rejected=self.rejected,
            warnings=warnings,
            demo=ctx.demo,
        )


def fetch_bytes(
    ctx: SourceContext, client: httpx.Client, url: str, *, what: str, sleep: Callable[[float], None] = time.sleep
) -> bytes:
    """GET a catalog file (CSV, JSON or zip): ``adapters.http.get_bytes`` with the catalogs' policy (three
    attempts; a public file needs no credentials, so a refusal points at the configured url)."""
    hint = "check the configured url"
    return get_bytes(
        ctx, client, url, what=what, max_attempts=3, sleep=sleep, error_hint=hint,
        auth_hint=f"the catalog is public: {hint}",
    )  # fmt: skip


def resolve_path(ctx: SourceContext, option: str) -> Path:
    """An option path, relative to the directory of broker.toml unless absolute."""
    raw = ctx.options.get(option)
    if not isinstance(raw, str) or not raw:
        raise SourceError(f"option {option!r} must be a non-empty path")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else ctx.config_dir / path


def provider_filter(ctx: SourceContext) -> frozenset[str] | None:
    raw = ctx.options.get("providers")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise SourceError("option 'providers' must be a list of provider names")
    return frozenset(canonical_provider(p) for p in raw)


_SUFFIX_TOTAL = re.compile(r"^(.*-\d+GB)-\d+GB$", re.IGNORECASE)


def gpu_family_name(name: str) -> str:
    """Fold names that append the instance total ("A100-80GB-160GB") onto the per-GPU name ("A100-80GB")."""
    m = _SUFFIX_TOTAL.match(name)
    return m.group(1) if m else name
