"""AWS EC2 GPU prices: on-demand + reserved (Price List), spot per zone, Savings Plans, interruption bands.

Options (``[sources.<name>]`` in broker.toml; defaults below):
  regions            regions to price                         (DEFAULT_REGIONS)
  families           GPU families always kept; any other type with a ``gpu`` count is kept too (DEFAULT_FAMILIES)
  spot               poll spot prices per zone                 (true)
  savings_plans      poll Savings Plans offering rates         (true)
  reserved           keep reserved-instance terms              (true)
  spot_advisor       attach the Spot Instance Advisor band     (true)
  spot_advisor_url   where the advisor JSON lives               (SPOT_ADVISOR_URL)
  pricing_region     Price List endpoint region                 ("us-east-1")
  profile            AWS profile name for the credential chain  (none: the default chain)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import botocore.session

from adapters.aws_calls import ClientFactory, CredentialsError, PageTokenError, default_factory, paged
from adapters.aws_demo import demo_factory, manifest
from adapters.aws_market import Band, advisor_bands, current_spot, savings_rates, spot_points
from adapters.aws_pricing import PricedItem, family_of, parse_page
from adapters.aws_specs import GpuSpec, SpecCache, parse_instance_types
from adapters.base import Source, SourceContext
from adapters.http import client_for, get_json
from broker.domain import OfferKey, PriceObservation, Snapshot, SourceError

DEFAULT_REGIONS = ("us-east-1", "us-east-2", "us-west-2")
DEFAULT_FAMILIES = ("p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "g4dn", "g5", "g6", "g6e", "gr6")
SPOT_ADVISOR_URL = "https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json"
SPOT_PRODUCT = "Linux/UNIX"
CHUNK = 100  # instance types per EC2 call


def _option_list(ctx: SourceContext, name: str, default: tuple[str, ...]) -> list[str]:
    value = ctx.options.get(name)
    if value is None:
        return list(default)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _flag(ctx: SourceContext, name: str, default: bool = True) -> bool:
    return bool(ctx.options.get(name, default))


def pricing_filters(region: str) -> list[dict[str, str]]:
    """Shared-tenancy Linux GPU instances without pre-installed software, capacity actually used, on-demand
    market (drops the zero-priced Capacity Block rows that share a SKU)."""
    fields = {
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "capacitystatus": "Used",
        "preInstalledSw": "NA",
        "licenseModel": "No License required",
        "marketoption": "OnDemand",
        "productFamily": "Compute Instance",
        "instanceFamily": "GPU instance",
    }
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def _chunks(values: list[str], size: int = CHUNK) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


class AwsSource(Source):
    kind: ClassVar[str] = "aws"
    naming: ClassVar[str] = "aws"
    shared_specs: ClassVar[SpecCache] = SpecCache()  # GPU specs outlive a poll

    def __init__(
        self, ctx: SourceContext, clients: ClientFactory | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(ctx)
        self._clients = clients
        self._sleep = sleep
        # a demo poll replays the recorded calls in order, spec lookups included: it must not find them cached
        self.specs = SpecCache() if ctx.demo else self.shared_specs

    # ---- credentials -------------------------------------------------------------------------------
    def missing_credentials(self) -> str | None:
        if self.ctx.demo or self._clients is not None:
            return None
        env = self.ctx.env
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            return None
        if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
            return None
        try:
            session = botocore.session.Session(profile=self.ctx.options.get("profile") or env.get("AWS_PROFILE"))
            resolver = session.get_component("credential_provider")
            for network_provider in ("container-role", "iam-role"):  # these would call the network
                resolver.remove(network_provider)
            if resolver.load_credentials() is not None:
                return None
        except Exception as exc:  # a broken profile/config file is itself the answer
            return f"AWS credential chain unusable: {type(exc).__name__}: {exc}"
        return (
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE "
            "(instance and container roles are not probed offline)"
        )

    # ---- poll --------------------------------------------------------------------------------------
    def _factory(self, scenario: str = "fetch") -> ClientFactory:
        if self._clients is not None:
            return self._clients
        return demo_factory(scenario) if self.ctx.demo else default_factory(self.ctx)

    def _regions(self) -> list[str]:
        if self.ctx.demo:  # a recording replays only the regions it recorded
            return [str(r) for r in manifest()["regions"]]
        return _option_list(self.ctx, "regions", DEFAULT_REGIONS)

    def fetch(self) -> Snapshot:
        ctx = self.ctx
        clients = self._factory()
        regions = self._regions()
        families = frozenset(_option_list(ctx, "families", DEFAULT_FAMILIES))
        snap = Snapshot(source=ctx.name, naming=self.naming, taken_at=ctx.now(), demo=ctx.demo)
        failures: list[str] = []

        items: list[PricedItem] = []
        for region in regions:
            try:
                self._price_region(clients, region, families, snap.rejected, items)
            except CredentialsError:
                raise
            except SourceError as exc:
                self._incomplete(snap, failures, exc)
        self._load_specs(clients, regions, {i.instance_type for i in items}, snap, failures)
        keep_reserved = _flag(ctx, "reserved")
        for item in items:
            for key, price, extra in item.prices:
                if key.purchase == "reserved" and not keep_reserved:
                    continue
                self._observe(snap, key, price, item.vcpus, item.memory_gb, {"sku": item.sku, **extra})

        types_by_region: dict[str, set[str]] = {}
        for item in items:
            types_by_region.setdefault(item.region, set()).add(item.instance_type)
        if _flag(ctx, "spot"):
            bands = self._bands(snap) if _flag(ctx, "spot_advisor") else {}
            for region in regions:
                try:
                    self._spot_region(clients, region, sorted(types_by_region.get(region, ())), bands, snap)
                except CredentialsError:
                    raise
                except SourceError as exc:
                    self._incomplete(snap, failures, exc)
        if _flag(ctx, "savings_plans"):
            try:
                self._savings_plans(clients, regions, sorted({i.instance_type for i in items}), snap)
            except CredentialsError:
                raise
            except SourceError as exc:
                self._incomplete(snap, failures, exc)

        if failures and not snap.observations:
            raise SourceError("; ".join(failures[:3]))
        return snap

    @staticmethod
    def _incomplete(snap: Snapshot, failures: list[str], exc: SourceError) -> None:
        snap.complete = False
        failures.append(str(exc))
        kind = "pagination token expired" if isinstance(exc, PageTokenError) else "call failed"
        snap.warnings.append(f"{kind}, listing incomplete: {exc}")

    def _observe(
        self,
        snap: Snapshot,
        key: OfferKey,
        price: Decimal,
        vcpus: float | None,
        memory_gb: float | None,
        attrs: dict[str, Any],
    ) -> None:
        spec = self.specs.get(key.instance_type)
        if spec is None:
            snap.rejected["no_gpu_spec"] += 1
            return
        if price <= 0:
            snap.rejected["non_positive_price"] += 1
            return
        snap.observations.append(_observation(key, price, spec, vcpus, memory_gb, attrs))

    def _price_region(
        self,
        clients: ClientFactory,
        region: str,
        families: frozenset[str],
        rejected: Counter[str],
        items: list[PricedItem],
    ) -> None:
        """Append the region's GPU items page by page, so pages read before a failure still count."""
        client = clients("pricing", str(self.ctx.options.get("pricing_region", "us-east-1")))
        params = {
            "ServiceCode": "AmazonEC2",
            "FormatVersion": "aws_v1",
            "Filters": pricing_filters(region),
            "MaxResults": 100,
        }
        pages = paged(
            self.ctx,
            f"AWS price list {region}",
            client.get_products,
            params,
            token_in="NextToken",
            token_out="NextToken",
            sleep=self._sleep,
        )
        for page in pages:
            items.extend(parse_page(list(page.get("PriceList") or []), region, families, rejected))

    def _load_specs(
        self, clients: ClientFactory, regions: list[str], types: set[str], snap: Snapshot, failures: list[str]
    ) -> None:
        """Fill the spec cache for types not seen before, asking each region in turn (a filter, unlike
        ``InstanceTypes=``, does not fail on a type the region lacks)."""
        for region in regions:
            missing = sorted(self.specs.missing(types))
            if not missing:
                return
            client = clients("ec2", region)
            for chunk in _chunks(missing):
                params = {"Filters": [{"Name": "instance-type", "Values": chunk}], "MaxResults": 100}
                try:
                    for page in paged(
                        self.ctx,
                        f"EC2 instance types {region}",
                        client.describe_instance_types,
                        params,
                        token_in="NextToken",
                        token_out="NextToken",
                        sleep=self._sleep,
                    ):
                        self.specs.update(parse_instance_types(list(page.get("InstanceTypes") or [])))
                except CredentialsError:
                    raise
                except SourceError as exc:
                    snap.warnings.append(f"GPU specs unavailable: {exc}")
                    failures.append(str(exc))
                    return

    def _bands(self, snap: Snapshot) -> dict[tuple[str, str], Band]:
        """The advisor feed is public and optional: without it spot prices still stand, without bands."""
        url = str(self.ctx.options.get("spot_advisor_url", SPOT_ADVISOR_URL))
        try:
            http = client_for(self.ctx, "aws", {"/spot-advisor-data.json": "spot-advisor-data.json"})
            data = get_json(self.ctx, http, url, what="AWS Spot Instance Advisor", sleep=self._sleep)
            return advisor_bands(data)
        except (SourceError, ValueError, KeyError, TypeError) as exc:
            snap.warnings.append(f"spot advisor bands unavailable: {exc}")
            return {}

    def _spot_region(
        self,
        clients: ClientFactory,
        region: str,
        types: list[str],
        bands: dict[tuple[str, str], Band],
        snap: Snapshot,
    ) -> None:
        if not types:
            return
        client = clients("ec2", region)
        points = []
        for chunk in _chunks(types):
            params = {
                "InstanceTypes": chunk,
                "ProductDescriptions": [SPOT_PRODUCT],
                "StartTime": self.ctx.now(),
                "MaxResults": 1000,
            }
            for page in paged(
                self.ctx,
                f"EC2 spot prices {region}",
                client.describe_spot_price_history,
                params,
                token_in="NextToken",
                token_out="NextToken",
                sleep=self._sleep,
            ):
                points.extend(spot_points(list(page.get("SpotPriceHistory") or []), region, snap.rejected))
        for key, point in sorted(current_spot(points).items(), key=lambda kv: (kv[0].instance_type, kv[0].zone)):
            attrs: dict[str, Any] = {"price_time": point.at.isoformat()}
            band = bands.get((region, key.instance_type))
            if band is not None:
                attrs["interruption_band"] = band.label
                rate = band.hourly_rate()
                if rate is not None:
                    attrs["interruption_rate_per_hour"] = rate
                    attrs["interruption_rate_basis"] = "advisor band upper bound as monthly reclaim probability"
                if band.savings_pct is not None:
                    attrs["advisor_savings_pct"] = band.savings_pct
            self._observe(snap, key, point.price, None, None, attrs)

    def _savings_plans(self, clients: ClientFactory, regions: list[str], types: list[str], snap: Snapshot) -> None:
        if not types:
            return
        client = clients("savingsplans", "us-east-1")
        params = {
            "savingsPlanTypes": ["Compute", "EC2Instance"],
            "products": ["EC2"],
            "serviceCodes": ["AmazonEC2"],
            "operations": ["RunInstances"],
            "filters": [
                {"name": "region", "values": regions},
                {"name": "instanceType", "values": types},
                {"name": "tenancy", "values": ["shared"]},
                {"name": "productDescription", "values": [SPOT_PRODUCT]},
            ],
            "maxResults": 1000,
        }
        for page in paged(
            self.ctx,
            "AWS Savings Plans rates",
            client.describe_savings_plans_offering_rates,
            params,
            token_in="nextToken",
            token_out="nextToken",
            sleep=self._sleep,
        ):
            for rate in savings_rates(list(page.get("searchResults") or []), snap.rejected):
                self._observe(snap, rate.key, rate.rate, None, None, rate.attrs)


def _observation(
    key: OfferKey, price: Decimal, spec: GpuSpec, vcpus: float | None, memory_gb: float | None, attrs: dict[str, Any]
) -> PriceObservation:
    return PriceObservation(
        key=key,
        hourly_usd=price,
        gpu_name=spec.name,
        gpu_count=spec.count,
        gpu_memory_gb=spec.memory_gb,
        vcpus=spec.vcpus if spec.vcpus is not None else vcpus,
        memory_gb=spec.memory_total_gb if spec.memory_total_gb is not None else memory_gb,
        attrs={"gpu_manufacturer": spec.manufacturer, **attrs},
    )


def iter_spot_history(
    ctx: SourceContext,
    days: float,
    clients: ClientFactory | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[OfferKey, datetime, Decimal]]:
    """Every spot price point of the configured GPU families over the last ``days``, per region and zone
    (for ``broker backfill aws-spot``). Types are matched by family wildcard ("p5.*"), so new sizes count."""
    if clients is None:
        clients = demo_factory("backfill") if ctx.demo else default_factory(ctx)
    # a recording replays only the regions it recorded
    regions = [str(r) for r in manifest()["regions"]] if ctx.demo else _option_list(ctx, "regions", DEFAULT_REGIONS)
    families = _option_list(ctx, "families", DEFAULT_FAMILIES)
    start = ctx.now() - timedelta(days=days)
    for region in regions:
        rejected: Counter[str] = Counter()
        params = {
            "Filters": [{"Name": "instance-type", "Values": [f"{f}.*" for f in families]}],
            "ProductDescriptions": [SPOT_PRODUCT],
            "StartTime": start,
            "EndTime": ctx.now(),
            "MaxResults": 1000,
        }
        client = clients("ec2", region)
        for page in paged(
            ctx,
            f"EC2 spot history {region}",
            client.describe_spot_price_history,
            params,
            token_in="NextToken",
            token_out="NextToken",
            sleep=sleep,
        ):
            for point in spot_points(list(page.get("SpotPriceHistory") or []), region, rejected):
                if family_of(point.key.instance_type) in families or not families:
                    yield point.key, point.at, point.price


__all__ = ["AwsSource", "iter_spot_history"]
