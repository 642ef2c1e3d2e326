"""Operator-maintained rate cards: published list prices without an API, and negotiated contracts.

A card is a TOML file, or a CSV file with the same columns. Card-level fields (TOML top level; in a
CSV, ``# key = value`` lines before the header row):

    name            card name; for contract cards it becomes the offer's ``plan``
    provider        provider the prices belong to (e.g. "coreweave", "aws")
    kind            "list" (published prices) or "contract" (negotiated)
    currency        "USD" (the only currency accepted: prices are USD throughout the broker)
    effective_date  YYYY-MM-DD, first day the card applies
    valid_until     YYYY-MM-DD, last day it applies (optional); past it the card is *stale*
    source          URL or document reference the prices come from

Each ``[[entries]]`` table (one CSV row) is either an absolute price or a discount rule.

Absolute price::

    instance_type               provider's instance type
    region | regions            one region, or several (TOML list; in CSV separated by ";")
    gpu, gpu_count              GPU model (catalog id or alias) and GPUs per instance
    gpu_memory_gb, vcpus, memory_gb   optional shape
    purchase                    list cards: a Purchase value (default "on_demand");
                                contract cards: "contract" (the default, and the only value allowed)
    term                        committed term, e.g. "1y", "3y", "6m" (optional)
    usd_per_instance_hour  XOR  usd_per_gpu_hour        the price, unit in the column name
    list_usd_per_instance_hour | list_usd_per_gpu_hour  contract cards: the list price it replaces
    source, effective_date      optional; default to the card's

Without instance_type, regions and gpu_count it is a *GPU rate* (``usd_per_gpu_hour``) for an API-backed
adapter (Crusoe) that knows the instances but not their prices: ``RateCard.rate_for`` matches it on the
API's GPU name, narrowed by ``instance_family`` (a product-name prefix) when given; a GPU name the card
does not know at all is matched on ``instance_family`` alone.

Discount rule (exposed as data, applied by the offer index to another source's list prices)::

    discount_percent            e.g. 18 for 18 % off
    provider                    default: the card's provider
    purchase                    which list prices it applies to (default "on_demand")
    instance_type(s), instance_family/families, region(s)   optional filters (all when omitted)

A stale card's prices are still emitted, flagged ``attrs["ratecard_stale"] = True`` with a snapshot
warning: hiding them would silently drop an offer, while the flag lets placement refuse it. Entries
whose effective date is still ahead are not emitted (warned). A malformed card raises ``RateCardError``
(a ``ConfigError``) whose single line names the file, the entry and the field.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

from adapters.base import Source
from broker.domain import ConfigError, OfferKey, PriceObservation, Purchase, Snapshot, SourceError

CARD_SUFFIXES = (".toml", ".csv")
_TERM_UNITS = ("m", "y")


class RateCardError(ConfigError):
    """A rate card is malformed; the message is one line naming file, entry and field."""


class CardKind(StrEnum):
    LIST = "list"
    CONTRACT = "contract"


@dataclass(frozen=True, slots=True)
class RateEntry:
    """One absolute price. Without ``instance_type`` (or regions, or gpu_count) it is a *GPU rate*: a
    per-GPU-hour price an API-backed adapter (Crusoe) multiplies by the GPU count its API reports."""

    instance_type: str  # "" = any instance with this GPU (optionally narrowed by instance_family)
    instance_family: str  # product prefix, e.g. "h100-80gb-sxm-ib" for "h100-80gb-sxm-ib.8x"
    regions: tuple[str, ...]  # () = every region
    gpu: str
    gpu_count: int  # 0 = not stated (GPU rates)
    price: Decimal
    per_gpu: bool  # True: ``price`` is USD per GPU-hour; False: per instance-hour
    purchase: Purchase
    term: str
    source: str
    effective_date: date
    list_price: Decimal | None = None  # same unit as ``price``
    gpu_memory_gb: float | None = None
    vcpus: float | None = None
    memory_gb: float | None = None

    def hourly_usd(self, gpu_count: int | None = None) -> Decimal:
        """USD per instance-hour for an instance with ``gpu_count`` GPUs (default: the entry's own)."""
        return self._per_instance(self.price, gpu_count)

    def list_hourly_usd(self, gpu_count: int | None = None) -> Decimal | None:
        return None if self.list_price is None else self._per_instance(self.list_price, gpu_count)

    def _per_instance(self, value: Decimal, gpu_count: int | None) -> Decimal:
        count = gpu_count if gpu_count is not None else self.gpu_count
        if not self.per_gpu:
            return value
        if count <= 0:
            raise ValueError(f"{self.gpu} rate is per GPU-hour: a GPU count is needed")
        return value * count

    @property
    def is_offer(self) -> bool:
        """Names a concrete offer (instance type, region, GPU count), so a rate-card source can emit it."""
        return bool(self.instance_type and self.regions and self.gpu_count > 0)

    def fits(self, gpu: str, product: str = "") -> bool:
        """Whether this GPU rate applies to an API's instance of ``gpu`` named ``product`` (case-blind):
        the GPU must match, and the instance type or family, when the entry names one, must fit."""
        narrowed = bool(self.instance_type or self.instance_family)
        return self.gpu.lower() == gpu.lower() and (not narrowed or self.fits_product(product))

    def fits_product(self, product: str) -> bool:
        """Whether the entry names an instance type or family covering ``product`` (case-blind)."""
        if self.instance_type:
            return self.instance_type.lower() == product.lower()
        return bool(self.instance_family) and _in_family(product.lower(), self.instance_family.lower())


@dataclass(frozen=True, slots=True)
class DiscountRule:
    card: str
    provider: str
    percent_off: Decimal
    purchase: str
    effective_date: date
    valid_until: date | None
    source: str
    instance_types: frozenset[str] = frozenset()
    instance_families: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()

    def matches(self, key: OfferKey) -> bool:
        if key.provider != self.provider or key.purchase != self.purchase:
            return False
        if self.regions and key.region not in self.regions:
            return False
        if not (self.instance_types or self.instance_families):
            return True
        return key.instance_type in self.instance_types or any(
            _in_family(key.instance_type, fam) for fam in self.instance_families
        )

    def specificity(self, key: OfferKey) -> tuple[int, int]:
        level = 2 if key.instance_type in self.instance_types else 1 if self.instance_families else 0
        return level, 1 if self.regions else 0

    def active(self, on: date) -> bool:
        return self.effective_date <= on and (self.valid_until is None or on <= self.valid_until)


def _in_family(instance_type: str, family: str) -> bool:
    # "p5" covers "p5.48xlarge" but not "p5e.48xlarge"; "a3" covers "a3-highgpu-8g".
    return instance_type == family or any(instance_type.startswith(family + sep) for sep in ".-_")


@dataclass(frozen=True, slots=True)
class RateCard:
    path: Path
    name: str
    provider: str
    kind: CardKind
    currency: str
    effective_date: date
    valid_until: date | None
    source: str
    entries: tuple[RateEntry, ...]
    discounts: tuple[DiscountRule, ...]

    def is_stale(self, on: date) -> bool:
        return self.valid_until is not None and on > self.valid_until

    def rate_for(self, gpu: str, product: str = "", purchase: Purchase = Purchase.ON_DEMAND) -> RateEntry | None:
        """The entry pricing an API's instance (``gpu`` type, ``product`` name); an exact instance type
        beats a family prefix beats a GPU-wide rate.

        When no entry names ``gpu`` at all (the API spells the GPU differently from the card), an entry
        whose instance type or family covers ``product`` prices it: the product name still identifies
        the hardware. A GPU the card does know, on a product outside its entries' families, stays
        unpriced rather than borrowing another GPU's family price.
        """
        priced = [e for e in self.entries if e.purchase is purchase]
        if any(e.gpu.lower() == gpu.lower() for e in self.entries):  # known on any purchase: no fallback
            fits = [e for e in priced if e.fits(gpu, product)]
        else:
            fits = [e for e in priced if e.fits_product(product)]
        return max(fits, key=lambda e: (bool(e.instance_type), len(e.instance_family)), default=None)


def apply_discounts(
    rules: Iterable[DiscountRule], key: OfferKey, list_price: Decimal, *, on: date | None = None
) -> Decimal | None:
    """The effective price of ``key`` after the best matching discount, or None when none applies.

    The most specific rule wins (instance type over family over provider-wide, then a region-specific
    over an any-region rule); among equally specific rules the largest discount. Discounts do not
    stack. ``on`` ignores rules outside their validity. The result is exact (no rounding).
    """
    candidates = [r for r in rules if r.matches(key) and (on is None or r.active(on))]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: (r.specificity(key), r.percent_off))
    return list_price * (Decimal(100) - best.percent_off) / Decimal(100)


# ---- parsing -------------------------------------------------------------------------------------


class _Fields:
    """Typed access to one table/row, with errors that say where."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = {k: v for k, v in data.items() if v not in ("", None)}
        self.where = where

    def fail(self, field: str, problem: str) -> RateCardError:
        return RateCardError(f"{self.where}: field {field!r}: {problem}")

    def has(self, field: str) -> bool:
        return field in self.data

    def text(self, field: str, default: str | None = None) -> str:
        value = self.data.get(field, default)
        if value is None:
            raise self.fail(field, "is required")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"must be non-empty text, got {value!r}")
        return value.strip()

    def day(self, field: str, default: date | None = None) -> date:
        value = self.data.get(field, default)
        if value is None:
            raise self.fail(field, "is required (YYYY-MM-DD)")
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        text = str(value).strip()
        if len(text) == 7:  # "2026-08": a pricing page that gives only the month; its first day
            text += "-01"
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(field, f"must be a date YYYY-MM-DD (or YYYY-MM), got {value!r}") from None

    def decimal(self, field: str) -> Decimal | None:
        if field not in self.data:
            return None
        value = self.data[field]
        if isinstance(value, float):  # TOML floats: go through their repr, never binary expansion
            value = repr(value)
        try:
            number = Decimal(str(value).strip().replace("$", ""))
        except InvalidOperation:
            raise self.fail(field, f"must be a number, got {value!r}") from None
        if not number.is_finite() or number <= 0:
            raise self.fail(field, f"must be a positive number, got {value!r}")
        return number

    def number(self, field: str) -> float | None:
        value = self.decimal(field)
        return None if value is None else float(value)

    def integer(self, field: str) -> int:
        value = self.decimal(field)
        if value is None:
            raise self.fail(field, "is required")
        if value != value.to_integral_value():
            raise self.fail(field, f"must be a whole number, got {self.data[field]!r}")
        return int(value)

    def names(self, plural: str, singular: str) -> tuple[str, ...]:
        value = self.data.get(plural, self.data.get(singular))
        if value is None:
            return ()
        items = value.split(";") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) and i.strip() for i in items):
            raise self.fail(plural, f"must be a list of names (CSV: separated by ';'), got {value!r}")
        return tuple(i.strip() for i in items)


def _price(f: _Fields, prefix: str, required: bool) -> tuple[Decimal | None, bool]:
    """(price, per_gpu) from the ``<prefix>usd_per_instance_hour`` / ``<prefix>usd_per_gpu_hour`` pair."""
    per_instance, per_gpu = f.decimal(f"{prefix}usd_per_instance_hour"), f.decimal(f"{prefix}usd_per_gpu_hour")
    if per_instance is not None and per_gpu is not None:
        raise f.fail(f"{prefix}usd_per_gpu_hour", f"give {prefix}usd_per_instance_hour or this, not both")
    if per_instance is None and per_gpu is None and required:
        raise f.fail("usd_per_instance_hour", "a price is required (or usd_per_gpu_hour, or discount_percent)")
    return (per_gpu, True) if per_gpu is not None else (per_instance, False)


def _entry(f: _Fields, card: Mapping[str, Any]) -> RateEntry:
    kind: CardKind = card["kind"]
    count = f.integer("gpu_count") if f.has("gpu_count") else 0
    default_purchase = Purchase.CONTRACT if kind is CardKind.CONTRACT else Purchase.ON_DEMAND
    raw_purchase = f.text("purchase", default_purchase.value)
    try:
        purchase = Purchase(raw_purchase)
    except ValueError:
        raise f.fail("purchase", f"unknown purchase {raw_purchase!r} (one of {', '.join(Purchase)})") from None
    if kind is CardKind.CONTRACT and purchase is not Purchase.CONTRACT:
        raise f.fail("purchase", "a contract card's entries are purchase 'contract'")
    term = f.text("term") if f.has("term") else ""
    if term and not (term[:-1].isdigit() and term[-1] in _TERM_UNITS):
        raise f.fail("term", f"must look like '1y', '3y' or '6m', got {term!r}")
    price, per_gpu = _price(f, "", required=True)
    assert price is not None
    if not per_gpu and count <= 0:
        raise f.fail("gpu_count", "is required with usd_per_instance_hour")
    list_price, list_per_gpu = _price(f, "list_", required=False)
    if list_price is not None and kind is not CardKind.CONTRACT:
        raise f.fail("list_usd_per_instance_hour", "only contract cards carry a replaced list price")
    if list_price is not None and list_per_gpu != per_gpu:
        raise f.fail("list_usd_per_instance_hour", "give the list price in the same unit as the price")
    instance_type = f.text("instance_type") if f.has("instance_type") else ""
    if instance_type and count <= 0:
        raise f.fail("gpu_count", "is required for an instance_type entry")
    return RateEntry(
        instance_type=instance_type,
        instance_family=f.text("instance_family") if f.has("instance_family") else "",
        regions=f.names("regions", "region"),
        gpu=f.text("gpu"),
        gpu_count=count,
        price=price,
        per_gpu=per_gpu,
        purchase=purchase,
        term=term,
        source=f.text("source", card["source"]),
        effective_date=f.day("effective_date", card["effective_date"]),
        list_price=list_price,
        gpu_memory_gb=f.number("gpu_memory_gb"),
        vcpus=f.number("vcpus"),
        memory_gb=f.number("memory_gb"),
    )


def _discount(f: _Fields, card: Mapping[str, Any]) -> DiscountRule:
    pct = f.decimal("discount_percent")
    assert pct is not None
    if pct >= 100:
        raise f.fail("discount_percent", f"must be below 100, got {pct}")
    purchase = f.text("purchase", Purchase.ON_DEMAND.value)
    if purchase not in set(Purchase):
        raise f.fail("purchase", f"unknown purchase {purchase!r}")
    return DiscountRule(
        card=card["name"],
        provider=f.text("provider", card["provider"]).lower(),
        percent_off=pct,
        purchase=purchase,
        effective_date=f.day("effective_date", card["effective_date"]),
        valid_until=card["valid_until"],
        source=f.text("source", card["source"]),
        instance_types=frozenset(f.names("instance_types", "instance_type")),
        instance_families=frozenset(f.names("instance_families", "instance_family")),
        regions=frozenset(f.names("regions", "region")),
    )


def _card(path: Path, header: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> RateCard:
    f = _Fields(header, str(path))
    kind_text = f.text("kind")
    if kind_text not in set(CardKind):
        raise f.fail("kind", f"must be 'list' or 'contract', got {kind_text!r}")
    currency = f.text("currency").upper()
    if currency != "USD":
        raise f.fail("currency", f"only USD cards are supported, got {currency!r}")
    valid_until = f.day("valid_until") if f.has("valid_until") else None
    card: dict[str, Any] = {
        "name": f.text("name"),
        "provider": f.text("provider").lower(),
        "kind": CardKind(kind_text),
        "effective_date": f.day("effective_date"),
        "valid_until": valid_until,
        "source": f.text("source"),
    }
    if valid_until is not None and valid_until < card["effective_date"]:
        raise f.fail("valid_until", "is before effective_date")
    entries: list[RateEntry] = []
    discounts: list[DiscountRule] = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise RateCardError(f"{path}: entry {n}: must be a table")
        label = row.get("instance_type") or row.get("instance_family") or row.get("provider") or ""
        ef = _Fields(row, f"{path}: entry {n}" + (f" ({label})" if label else ""))
        if ef.has("discount_percent"):
            discounts.append(_discount(ef, card))
        else:
            entries.append(_entry(ef, card))
    if not entries and not discounts:
        raise RateCardError(f"{path}: field 'entries': the card has no entries")
    return RateCard(path=path, currency=currency, entries=tuple(entries), discounts=tuple(discounts), **card)


def _csv_parts(path: Path, text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    header: dict[str, str] = {}
    lines = text.splitlines()
    body_start = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            key, sep, value = stripped.lstrip("#").partition("=")
            if sep:
                header[key.strip()] = value.strip()
            body_start = i + 1
        elif stripped:
            break
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[body_start:]))))
    if None in (k for row in rows for k in row):
        raise RateCardError(f"{path}: a row has more cells than the header")
    return header, rows


def load_ratecard(path: Path) -> RateCard:
    """Parse one rate card (``.toml`` or ``.csv``). Raises RateCardError (a ConfigError)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RateCardError(f"{path}: cannot read the rate card ({exc.strerror})") from None
    if path.suffix == ".csv":
        header, rows = _csv_parts(path, text)
        return _card(path, header, rows)
    if path.suffix != ".toml":
        raise RateCardError(f"{path}: a rate card is a .toml or .csv file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RateCardError(f"{path}: not valid TOML ({exc})") from None
    rows = data.pop("entries", [])
    if not isinstance(rows, list):
        raise RateCardError(f"{path}: field 'entries': must be an array of tables ([[entries]])")
    return _card(path, data, rows)


def card_files(config_dir: Path, paths: Iterable[str]) -> list[Path]:
    """Card files named by ``paths`` (files or directories, relative to ``config_dir``)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else config_dir / path
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in CARD_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise RateCardError(f"rate card path {path} does not exist")
    return found


def load_discounts(config_dir: Path, paths: Iterable[str]) -> tuple[DiscountRule, ...]:
    """Every discount rule in the cards named by ``paths``: what the offer index feeds apply_discounts."""
    return tuple(rule for f in card_files(config_dir, paths) for rule in load_ratecard(f).discounts)


# ---- the source --------------------------------------------------------------------------------


def observations_from_cards(
    cards: Sequence[RateCard], on: date, *, price_source: str = "ratecard"
) -> tuple[list[PriceObservation], Counter[str], list[str]]:
    """Offer entries of ``cards`` as observations (one per region), with refusals and warnings. GPU rates
    (no instance type, region or count) are for API-backed adapters and are skipped here."""
    list_prices = {
        (c.provider, region, e.instance_type): e.hourly_usd()
        for c in cards
        if c.kind is CardKind.LIST
        for e in c.entries
        if e.is_offer and e.purchase is Purchase.ON_DEMAND
        for region in e.regions
    }
    observations: list[PriceObservation] = []
    rejected: Counter[str] = Counter()
    warnings: list[str] = []
    seen: set[OfferKey] = set()
    for card in cards:
        stale = card.is_stale(on)
        if stale:
            warnings.append(
                f"rate card {card.name!r} ({card.path.name}) expired on {card.valid_until}: its prices are "
                "emitted flagged ratecard_stale; update the card"
            )
        offers = [e for e in card.entries if e.is_offer]
        if len(offers) < len(card.entries):
            warnings.append(
                f"rate card {card.name!r}: {len(card.entries) - len(offers)} GPU-rate entr(y/ies) without "
                "instance_type/regions/gpu_count: used by API-backed adapters, not emitted here"
            )
        pending = [e for e in offers if max(e.effective_date, card.effective_date) > on]
        if pending:
            warnings.append(f"rate card {card.name!r}: {len(pending)} entr(y/ies) not yet effective, not emitted")
        for entry in offers:
            if entry in pending:
                continue
            for region in entry.regions:
                key = OfferKey(
                    provider=card.provider,
                    region=region,
                    instance_type=entry.instance_type,
                    purchase=entry.purchase,
                    term=entry.term,
                    plan=card.name if card.kind is CardKind.CONTRACT else "",
                )
                if key in seen:
                    rejected["duplicate offer"] += 1
                    continue
                seen.add(key)
                list_price = entry.list_hourly_usd()
                if list_price is None and card.kind is CardKind.CONTRACT:
                    list_price = list_prices.get((card.provider, region, entry.instance_type))
                observations.append(
                    PriceObservation(
                        key=key,
                        hourly_usd=entry.hourly_usd(),
                        gpu_name=entry.gpu,
                        gpu_count=entry.gpu_count,
                        gpu_memory_gb=entry.gpu_memory_gb,
                        vcpus=entry.vcpus,
                        memory_gb=entry.memory_gb,
                        currency=card.currency,
                        list_hourly_usd=list_price,
                        attrs={
                            "price_source": price_source,
                            "ratecard": card.name,
                            "ratecard_kind": card.kind.value,
                            "ratecard_source": entry.source,
                            "effective_date": entry.effective_date.isoformat(),
                            "valid_until": card.valid_until.isoformat() if card.valid_until else None,
                            "ratecard_stale": stale,
                        },
                    )
                )
    return observations, rejected, warnings


def _option_paths(options: Mapping[str, Any], default: Sequence[str] = ()) -> list[str]:
    raw = options.get("paths", options.get("path", list(default)))
    paths = [raw] if isinstance(raw, str) else raw
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise SourceError("option 'paths' must list rate card files or directories (relative to broker.toml)")
    return paths


class RateCardSource(Source):
    """Absolute prices from the configured cards. Discount rules are not emitted (they modify another
    source's prices): the offer index reads them with ``load_discounts`` and ``apply_discounts``."""

    kind = "ratecard"
    naming = "ratecard"
    default_paths: tuple[str, ...] = ()

    def load_cards(self) -> list[RateCard]:
        try:
            files = card_files(self.ctx.config_dir, _option_paths(self.ctx.options, self.default_paths))
            if not files:
                raise SourceError("rate cards: the configured paths hold no .toml or .csv card")
            return [load_ratecard(f) for f in files]
        except ConfigError as exc:  # a broken card fails the poll; earlier prices stay as they were
            raise SourceError(str(exc)) from None

    def fetch(self) -> Snapshot:
        cards = self.load_cards()
        observations, rejected, warnings = observations_from_cards(cards, self.ctx.now().date())
        rules = sum(len(c.discounts) for c in cards)
        if rules:
            warnings.append(f"{rules} discount rule(s) loaded as data; the offer index applies them")
        return Snapshot(
            source=self.ctx.name,
            naming=self.naming,
            taken_at=self.ctx.now(),
            observations=observations,
            rejected=rejected,
            warnings=warnings,
            demo=self.ctx.demo,
        )
