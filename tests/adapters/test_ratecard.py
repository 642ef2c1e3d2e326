"""Rate cards: parsing (TOML and CSV), every malformed-card error, staleness, contracts and discounts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.base import SourceContext
from adapters.ratecard import (
    CardKind,
    DiscountRule,
    RateCardError,
    RateCardSource,
    apply_discounts,
    load_discounts,
    load_ratecard,
)
from broker.domain import ConfigError, OfferKey, Purchase, SourceError
from broker.gpus import GpuCatalog

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
FIXTURES = Path(__file__).parent / "fixtures" / "ratecard"
CONTRACT_CSV = FIXTURES / "acme-coreweave-contract.csv"
STALE = FIXTURES / "stale-list.toml"

HEADER = """name = "t"
provider = "aws"
kind = "{kind}"
currency = "USD"
effective_date = 2026-01-01
source = "doc"
"""
ENTRY = """
[[entries]]
instance_type = "p5.48xlarge"
region = "us-east-1"
gpu = "H100 SXM"
gpu_count = 8
usd_per_instance_hour = "55.04"
"""


def ctx(options: dict[str, Any], now: datetime = datetime(2026, 11, 27, tzinfo=UTC)) -> SourceContext:
    return SourceContext(
        name="cards", options=options, env={}, catalog=GpuCatalog([]), config_dir=CONFIG, now=lambda: now
    )


def write(tmp_path: Path, text: str, name: str = "card.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_card_parses_typed_entries() -> None:
    card = load_ratecard(CONFIG / "ratecards" / "coreweave.toml")
    assert (card.name, card.provider, card.kind, card.currency) == ("coreweave-list", "coreweave", CardKind.LIST, "USD")
    assert card.valid_until == date(2027, 3, 20)
    h100 = next(e for e in card.entries if e.instance_type == "gd-8xh100ib-i128" and e.purchase is Purchase.ON_DEMAND)
    assert h100.hourly_usd() == Decimal("49.24")
    assert (h100.gpu_count, h100.gpu_memory_gb, h100.vcpus, h100.memory_gb) == (8, 80.0, 128.0, 2048.0)
    assert "US-EAST-04" in h100.regions
    assert h100.effective_date == date(2026, 9, 20)
    assert card.discounts == ()


def test_csv_card_with_per_gpu_prices_converts_exactly() -> None:
    card = load_ratecard(CONTRACT_CSV)
    assert (card.name, card.kind, card.provider) == ("acme-coreweave-2026", CardKind.CONTRACT, "coreweave")
    first = card.entries[0]
    assert first.regions == ("US-EAST-04", "RNO2")
    assert first.purchase is Purchase.CONTRACT and first.term == "1y"
    assert first.hourly_usd() == Decimal("16.80")  # 2.10 per GPU-hour x 8
    assert first.list_hourly_usd() == Decimal("49.240")  # 6.155 x 8
    assert first.source == "order form 7 line 1"
    assert card.entries[1].effective_date == card.effective_date == date(2026, 3, 1)  # the card's default


def test_contract_observations_keep_list_price_and_plan() -> None:
    snap = RateCardSource(ctx({"paths": ["ratecards/coreweave.toml", str(CONTRACT_CSV)]})).fetch()
    contract = {o.key: o for o in snap.observations if o.key.purchase == Purchase.CONTRACT}
    h100 = contract[
        OfferKey("coreweave", "RNO2", "gd-8xh100ib-i128", Purchase.CONTRACT, term="1y", plan="acme-coreweave-2026")
    ]
    assert h100.hourly_usd == Decimal("16.80")
    assert h100.list_hourly_usd == Decimal("49.240")
    # no list price in the contract row: taken from the list card loaded by the same source
    h200 = contract[
        OfferKey(
            "coreweave", "US-EAST-04", "gd-8xh200ib-i128", Purchase.CONTRACT, term="1y", plan="acme-coreweave-2026"
        )
    ]
    assert h200.list_hourly_usd == Decimal("50.44")
    assert h200.attrs["ratecard_kind"] == "contract" and h200.attrs["ratecard_stale"] is False
    assert len(contract) == 3


def test_stale_card_is_emitted_flagged_with_a_warning() -> None:
    snap = RateCardSource(ctx({"paths": [str(STALE)]})).fetch()
    assert [o.key.instance_type for o in snap.observations] == ["gd-8xh100ib-i128"]
    assert snap.observations[0].attrs["ratecard_stale"] is True
    assert any("expired on 2025-06-30" in w and "old-list" in w for w in snap.warnings)
    # the H200 entry only takes effect in 2030: not emitted, and said so
    assert any("not yet effective" in w for w in snap.warnings)


def test_card_within_validity_is_not_stale() -> None:
    snap = RateCardSource(ctx({"paths": [str(STALE)]}, now=datetime(2025, 6, 30, 23, tzinfo=UTC))).fetch()
    assert snap.observations[0].attrs["ratecard_stale"] is False
    assert not any("expired" in w for w in snap.warnings)


def test_directory_path_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path, HEADER.format(kind="list") + ENTRY, "a.toml")
    write(tmp_path, HEADER.format(kind="list").replace('"t"', '"u"') + ENTRY, "b.toml")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    snap = RateCardSource(ctx({"paths": [str(tmp_path)]})).fetch()
    assert len(snap.observations) == 1
    assert snap.rejected == {"duplicate offer": 1}


@pytest.mark.parametrize(
    ("text", "where", "field"),
    [
        (HEADER.format(kind="list").replace('name = "t"\n', "") + ENTRY, "card.toml", "'name'"),
        (HEADER.format(kind="spot") + ENTRY, "card.toml", "'kind'"),
        (HEADER.format(kind="list").replace('"USD"', '"EUR"') + ENTRY, "card.toml", "'currency'"),
        (HEADER.format(kind="list").replace("2026-01-01", '"01/01/2026"') + ENTRY, "card.toml", "'effective_date'"),
        (
            HEADER.format(kind="list") + ENTRY.replace('"55.04"', '"-1"'),
            "entry 1 (p5.48xlarge)",
            "'usd_per_instance_hour'",
        ),
        (HEADER.format(kind="list") + ENTRY.replace('"55.04"', '"abc"'), "entry 1", "'usd_per_instance_hour'"),
        (HEADER.format(kind="list") + ENTRY + 'usd_per_gpu_hour = "6.88"\n', "entry 1", "'usd_per_gpu_hour'"),
        (
            HEADER.format(kind="list") + ENTRY.replace('usd_per_instance_hour = "55.04"', ""),
            "entry 1",
            "'usd_per_instance_hour'",
        ),
        (HEADER.format(kind="list") + ENTRY.replace("gpu_count = 8", "gpu_count = 2.5"), "entry 1", "'gpu_count'"),
        (HEADER.format(kind="list") + ENTRY.replace("gpu_count = 8", ""), "entry 1", "'gpu_count'"),
        (HEADER.format(kind="list") + ENTRY + 'purchase = "monthly"\n', "entry 1", "'purchase'"),
        (HEADER.format(kind="contract") + ENTRY + 'purchase = "spot"\n', "entry 1", "'purchase'"),
        (HEADER.format(kind="list") + ENTRY + 'term = "forever"\n', "entry 1", "'term'"),
        (
            HEADER.format(kind="list") + ENTRY + 'list_usd_per_instance_hour = "60"\n',
            "entry 1",
            "'list_usd_per_instance_hour'",
        ),
        (HEADER.format(kind="list") + ENTRY + ENTRY.replace('gpu = "H100 SXM"', 'gpu = ""'), "entry 2", "'gpu'"),
        (HEADER.format(kind="contract") + '[[entries]]\ndiscount_percent = "100"\n', "entry 1", "'discount_percent'"),
        (HEADER.format(kind="list") + "valid_until = 2025-01-01\n" + ENTRY, "card.toml", "'valid_until'"),
        (HEADER.format(kind="list"), "card.toml", "'entries'"),
    ],
)
def test_malformed_card_names_file_entry_and_field(tmp_path: Path, text: str, where: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RateCardError) as err:
        load_ratecard(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and where in message and field in message
    assert isinstance(err.value, ConfigError)


def test_invalid_toml_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(RateCardError, match="not valid TOML"):
        load_ratecard(write(tmp_path, "name = ", "x.toml"))
    with pytest.raises(RateCardError, match=r"\.toml or \.csv"):
        load_ratecard(write(tmp_path, "{}", "x.json"))
    with pytest.raises(RateCardError, match="cannot read"):
        load_ratecard(tmp_path / "absent.toml")


def test_csv_row_with_extra_cells_is_refused(tmp_path: Path) -> None:
    text = CONTRACT_CSV.read_text(encoding="utf-8") + "gd-8xl40-i128,US-EAST-04,L40,8,1y,1.0,,src,extra\n"
    with pytest.raises(RateCardError, match="more cells than the header"):
        load_ratecard(write(tmp_path, text, "c.csv"))


def test_broken_card_fails_the_poll_with_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.format(kind="bogus") + ENTRY)
    with pytest.raises(SourceError, match=r"card\.toml: field 'kind'"):
        RateCardSource(ctx({"paths": [str(path)]})).fetch()
    with pytest.raises(SourceError, match="does not exist"):
        RateCardSource(ctx({"paths": ["ratecards/nope.toml"]})).fetch()
    with pytest.raises(SourceError, match="option 'paths'"):
        RateCardSource(ctx({"paths": []})).fetch()


# ---- discounts -----------------------------------------------------------------------------------

P5 = OfferKey("aws", "us-east-1", "p5.48xlarge", Purchase.ON_DEMAND)


@pytest.fixture
def rules() -> tuple[DiscountRule, ...]:
    return load_discounts(CONFIG, ["ratecards/example-enterprise-discount.toml"])


def test_discount_rules_are_exposed_as_data(rules: tuple[DiscountRule, ...]) -> None:
    assert [(r.provider, r.percent_off, r.purchase) for r in rules] == [
        ("aws", Decimal(18), "on_demand"),
        ("aws", Decimal(25), "on_demand"),
    ]
    assert rules[1].instance_families == frozenset({"p5"}) and rules[1].regions == frozenset({"us-east-1"})
    snap = RateCardSource(ctx({"paths": ["ratecards/example-enterprise-discount.toml"]})).fetch()
    assert [o.key.purchase for o in snap.observations] == [Purchase.CONTRACT]  # rules are not offers
    assert any("2 discount rule(s)" in w for w in snap.warnings)


def test_apply_discounts_exact_and_most_specific(rules: tuple[DiscountRule, ...]) -> None:
    list_price = Decimal("55.04")
    assert apply_discounts(rules, P5, list_price) == Decimal("41.28")  # the p5/us-east-1 rule: 25 % off
    other_region = OfferKey("aws", "us-west-2", "p5.48xlarge", Purchase.ON_DEMAND)
    assert apply_discounts(rules, other_region, list_price) == Decimal("45.1328")  # provider-wide 18 %
    p5e = OfferKey("aws", "us-east-1", "p5e.48xlarge", Purchase.ON_DEMAND)  # not in family "p5"
    assert apply_discounts(rules, p5e, Decimal("100")) == Decimal("82")


def test_apply_discounts_none_when_nothing_applies(rules: tuple[DiscountRule, ...]) -> None:
    assert apply_discounts(rules, OfferKey("azure", "eastus", "ND96", Purchase.ON_DEMAND), Decimal(1)) is None
    assert apply_discounts(rules, OfferKey("aws", "us-east-1", "p5.48xlarge", Purchase.SPOT), Decimal(1)) is None
    assert apply_discounts((), P5, Decimal(1)) is None
    # outside the card's validity (valid_until 2026-12-31) when a date is given
    assert apply_discounts(rules, P5, Decimal(10), on=date(2027, 1, 1)) is None
    assert apply_discounts(rules, P5, Decimal(10), on=date(2026, 12, 31)) == Decimal("7.5")


def test_instance_type_rule_beats_family_and_ties_take_the_larger_discount() -> None:
    def rule(pct: int, types: frozenset[str] = frozenset(), families: frozenset[str] = frozenset()) -> DiscountRule:
        return DiscountRule(
            card="c",
            provider="aws",
            percent_off=Decimal(pct),
            purchase="on_demand",
            effective_date=date(2026, 1, 1),
            valid_until=None,
            source="s",
            instance_types=types,
            instance_families=families,
        )

    family, exact = rule(30, families=frozenset({"p5"})), rule(10, types=frozenset({"p5.48xlarge"}))
    wide_a, wide_b = rule(5), rule(7)
    assert apply_discounts([family, exact], P5, Decimal(100)) == Decimal(90)
    assert apply_discounts([wide_a, wide_b], P5, Decimal(100)) == Decimal(93)


# ---- GPU rates (cards read by API-backed adapters such as Crusoe) ----------------------------------


def test_gpu_rate_entries_for_api_backed_adapters(tmp_path: Path) -> None:
    text = """name = "crusoe-list"
provider = "crusoe"
kind = "list"
currency = "USD"
effective_date = "2026-08"
source = "https://www.crusoe.ai/cloud/pricing"

[[entries]]
gpu = "H100-SXM-80GB"
instance_family = "h100-80gb-sxm-ib"
usd_per_gpu_hour = "3.90"

[[entries]]
gpu = "H100-SXM-80GB"
purchase = "spot"
usd_per_gpu_hour = "1.60"
"""
    card = load_ratecard(write(tmp_path, text))
    assert card.effective_date == date(2026, 8, 1)
    rate = card.rate_for("h100-sxm-80gb", "h100-80gb-sxm-ib.8x")
    assert rate is not None and rate.hourly_usd(8) == Decimal("31.20")
    assert card.rate_for("H100-SXM-80GB", "other.8x") is None  # family does not fit
    spot = card.rate_for("H100-SXM-80GB", "anything.1x", Purchase.SPOT)
    assert spot is not None and spot.hourly_usd(1) == Decimal("1.60")
    with pytest.raises(ValueError, match="GPU count"):
        spot.hourly_usd()
    snap = RateCardSource(ctx({"paths": [str(tmp_path / "card.toml")]})).fetch()
    assert snap.observations == []  # GPU rates are not offers on their own
    assert any("GPU-rate" in w for w in snap.warnings)


def test_gpu_rates_fall_back_on_the_product_only_for_a_gpu_the_card_does_not_know(tmp_path: Path) -> None:
    text = """name = "crusoe-list"
provider = "crusoe"
kind = "list"
currency = "USD"
effective_date = 2026-08-01
source = "https://www.crusoe.ai/cloud/pricing"

[[entries]]
gpu = "A100-SXM-80GB"
instance_family = "a100-80gb-sxm-ib"
usd_per_gpu_hour = "1.95"

[[entries]]
gpu = "A100-PCIe-80GB"
instance_family = "a100-80gb"
usd_per_gpu_hour = "1.65"

[[entries]]
gpu = "A100-PCIe-80GB"
instance_family = "a100-80gb"
purchase = "spot"
usd_per_gpu_hour = "1.20"
"""
    card = load_ratecard(write(tmp_path, text))

    def price(gpu: str, product: str, purchase: Purchase = Purchase.ON_DEMAND) -> Decimal | None:
        rate = card.rate_for(gpu, product, purchase)
        return None if rate is None else rate.price

    # the API respells the GPU: its product still identifies the entry, the longest family winning
    assert price("A100_80GB_PCIE", "a100-80gb.8x") == Decimal("1.65")
    assert price("A100 SXM4 80GB", "a100-80gb-sxm-ib.8x") == Decimal("1.95")
    assert price("B200-SXM-180GB", "b200-180gb-sxm-ib.8x") is None  # no family covers it either
    # a GPU the card knows, outside its family, is not priced by another GPU's broader family
    assert price("A100-SXM-80GB", "a100-80gb-sxm.8x") is None
    assert price("A100-PCIe-80GB", "a100-80gb.8x", Purchase.SPOT) == Decimal("1.20")
    assert price("A100_80GB_PCIE", "a100-80gb.8x", Purchase.SPOT) == Decimal("1.20")
    # a GPU the card knows (on-demand only) gets no spot price from another GPU's family
    assert price("A100-SXM-80GB", "a100-80gb-sxm-ib.8x", Purchase.SPOT) is None
