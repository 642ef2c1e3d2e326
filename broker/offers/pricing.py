"""What the user really pays: negotiated discounts from rate cards applied to list prices in the index.

The store keeps the list prices the sources published; the index shows the effective price (``hourly_usd``)
with the list price beside it (``list_hourly_usd``), so placement ranks by what is paid and savings stay visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal

from adapters.ratecard import DiscountRule, apply_discounts, load_discounts
from broker.offers.index import IndexedOffer
from broker.settings import Settings


def discount_rules(settings: Settings) -> tuple[DiscountRule, ...]:
    """Discount rules from every enabled rate-card source in the config (ConfigError on a malformed card)."""
    rules: list[DiscountRule] = []
    for cfg in settings.sources.values():
        if cfg.kind == "ratecard" and cfg.enabled:
            paths = cfg.options.get("paths") or []
            rules.extend(load_discounts(settings.config_dir, [str(p) for p in paths]))
    return tuple(rules)


def apply_rules(rules: Sequence[DiscountRule], offers: list[IndexedOffer], today: date) -> list[IndexedOffer]:
    if not rules:
        return offers
    out: list[IndexedOffer] = []
    for o in offers:
        effective = None
        if o.list_hourly_usd is None:  # already a negotiated price otherwise
            effective = apply_discounts(rules, o.key, Decimal(str(o.hourly_usd)), on=today)
        if effective is None:
            out.append(o)
        else:
            out.append(
                replace(
                    o, hourly_usd=float(effective), list_hourly_usd=o.hourly_usd, attrs={**o.attrs, "discounted": True}
                )
            )
    return out
