"""CoreWeave: no public price or availability API exists (provider-apis.md section 5).

Prices come from an operator-maintained rate card, by default ``ratecards/coreweave.toml`` beside
broker.toml (option ``paths`` to use others, e.g. a contract card next to the list card). Every card
must be for provider "coreweave". Availability is always UNKNOWN: only a customer's own CKS NodePool
status reports capacity, and that is not wired here. A card past ``valid_until`` is emitted flagged
``ratecard_stale`` (see ``adapters.ratecard``).
"""

from __future__ import annotations

from adapters.ratecard import RateCard, RateCardSource
from broker.domain import SourceError

PROVIDER = "coreweave"


class CoreWeaveSource(RateCardSource):
    kind = "coreweave"
    naming = "coreweave"
    default_paths = ("ratecards/coreweave.toml",)

    def load_cards(self) -> list[RateCard]:
        cards = super().load_cards()
        wrong = [f"{c.path.name} ({c.provider})" for c in cards if c.provider != PROVIDER]
        if wrong:
            raise SourceError(f"CoreWeave source {self.ctx.name!r}: cards for another provider: {', '.join(wrong)}")
        return cards
