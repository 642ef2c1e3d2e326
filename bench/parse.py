"""Parse-and-normalise benchmark for the AWS and GCP sources on synthetic full-size page sets.

AWS: every GPU type in every region with all 12 reserved terms, plus spot per zone and Savings Plans rates,
through AwsSource.fetch with in-memory clients. GCP: ~30k SKUs in 5000-SKU pages through the real
google-cloud-billing REST transport (JSON -> proto) and the machine composition. Targets: < 10 s, < 1 GiB.

Run: .venv/bin/python bench/parse.py
"""

from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.aws import AwsSource
from adapters.base import SourceContext
from adapters.gcp import GcpSource
from adapters.gcp_replay import pages_handler, replay_client
from broker.gpus import GpuCatalog

REGIONS = [
    f"{geo}-{n}"
    for geo in ("us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-northeast")
    for n in (1, 2, 3, 4, 5)
]
SIZES = ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")
FAMILIES = ("p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "g4dn", "g5", "g6", "g6e")
TYPES = [f"{f}.{s}" for f in FAMILIES for s in SIZES]  # 80 types
RESERVED = [
    (lease, cls, opt)
    for lease in ("1yr", "3yr")
    for cls in ("standard", "convertible")
    for opt in ("No Upfront", "Partial Upfront", "All Upfront")
]
NOW = datetime(2026, 9, 1, tzinfo=UTC)


def aws_item(itype: str, region: str, n: int) -> str:
    sku = f"SKU{n:012d}"

    def dims(code: str, unit: str, usd: str) -> dict[str, Any]:
        return {
            f"{sku}.{code}.{unit}": {"unit": unit, "pricePerUnit": {"USD": usd}, "description": "x", "appliesTo": []}
        }

    reserved = {}
    for i, (lease, cls, opt) in enumerate(RESERVED):
        code = f"TERM{i:06d}"
        d = dims(code, "Hrs", "0.0" if opt == "All Upfront" else "1.2345000000")
        if opt != "No Upfront":
            d |= dims(code, "Quantity", "12345")
        reserved[f"{sku}.{code}"] = {
            "priceDimensions": d,
            "offerTermCode": code,
            "termAttributes": {"LeaseContractLength": lease, "OfferingClass": cls, "PurchaseOption": opt},
        }
    item = {
        "product": {
            "sku": sku,
            "productFamily": "Compute Instance",
            "attributes": {
                "instanceType": itype,
                "regionCode": region,
                "gpu": "8",
                "vcpu": "192",
                "memory": "2048 GiB",
            },
        },
        "terms": {
            "OnDemand": {
                f"{sku}.JRTCKXETXF": {
                    "priceDimensions": dims("JRTCKXETXF", "Hrs", "55.0400000000"),
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            },
            "Reserved": reserved,
        },
    }
    return json.dumps(item)


class FakeAws:
    """In-memory clients: the benchmark measures parsing, not botocore's request machinery."""

    def __init__(self) -> None:
        n = 0
        self.pages: dict[str, list[list[str]]] = {}
        for region in REGIONS:
            items = []
            for itype in TYPES:
                items.append(aws_item(itype, region, n))
                n += 1
            self.pages[region] = [items[i : i + 100] for i in range(0, len(items), 100)]
        self.region = ""

    def __call__(self, service: str, region: str) -> Any:
        self.region = region
        return self

    def get_products(self, **params: Any) -> dict[str, Any]:
        region = next(f["Value"] for f in params["Filters"] if f["Field"] == "regionCode")
        index = int(params.get("NextToken", "0"))
        pages = self.pages[region]
        out: dict[str, Any] = {"PriceList": pages[index]}
        if index + 1 < len(pages):
            out["NextToken"] = str(index + 1)
        return out

    def describe_instance_types(self, **params: Any) -> dict[str, Any]:
        gpu = {"Gpus": [{"Name": "H100", "Manufacturer": "NVIDIA", "Count": 8, "MemoryInfo": {"SizeInMiB": 81920}}]}
        return {
            "InstanceTypes": [
                {
                    "InstanceType": t,
                    "GpuInfo": gpu,
                    "VCpuInfo": {"DefaultVCpus": 192},
                    "MemoryInfo": {"SizeInMiB": 2097152},
                }
                for t in params["Filters"][0]["Values"]
            ]
        }

    def describe_spot_price_history(self, **params: Any) -> dict[str, Any]:
        rows = [
            {"AvailabilityZone": f"{self.region}{z}", "InstanceType": t, "SpotPrice": "14.246000", "Timestamp": NOW}
            for t in params["InstanceTypes"]
            for z in "abcdef"
        ]
        return {"SpotPriceHistory": rows}

    def describe_savings_plans_offering_rates(self, **params: Any) -> dict[str, Any]:
        rows = [
            {
                "savingsPlanOffering": {
                    "planType": plan,
                    "durationSeconds": dur,
                    "paymentOption": pay,
                    "currency": "USD",
                },
                "rate": "30.1",
                "unit": "Hrs",
                "usageType": f"BoxUsage:{t}",
                "properties": [{"name": "region", "value": r}, {"name": "instanceType", "value": t}],
            }
            for r in REGIONS
            for t in TYPES
            for plan in ("Compute", "EC2Instance")
            for dur in (31536000, 94608000)
            for pay in ("No Upfront", "All Upfront")
        ]
        return {"searchResults": rows}


def gcp_pages(total: int = 30_000, page_size: int = 5000) -> dict[str, bytes]:
    regions = [f"region-{i}" for i in range(40)]
    kinds = [
        ("A3 Instance Core", "h"),
        ("A3 Instance Ram", "GiBy.h"),
        ("Nvidia H100 80GB GPU", "h"),
        ("A2 Instance Core", "h"),
        ("A2 Instance Ram", "GiBy.h"),
        ("Nvidia Tesla A100 GPU", "h"),
        ("G2 Instance Core", "h"),
        ("G2 Instance Ram", "GiBy.h"),
        ("Nvidia L4 GPU", "h"),
        ("N2 Instance Core", "h"),
        ("E2 Instance Ram", "GiBy.h"),
        ("Network Egress", "GiBy"),
    ]
    usages = [("", "running in", "OnDemand"), ("Spot Preemptible ", "running in", "Preemptible")]
    skus = []
    for i in range(total):
        (name, unit), (head, tail, usage) = kinds[i % len(kinds)], usages[(i // len(kinds)) % 2]
        region = regions[(i // (2 * len(kinds))) % len(regions)]
        skus.append(
            {
                "name": f"services/6F81-5844-456A/skus/{i:012d}",
                "skuId": f"{i:012d}",
                "description": f"{head}{name} {tail} Geo{i}",
                "serviceRegions": [region],
                "category": {"resourceFamily": "Compute", "resourceGroup": "X", "usageType": usage},
                "pricingInfo": [
                    {
                        "pricingExpression": {
                            "usageUnit": unit,
                            "tieredRates": [
                                {
                                    "startUsageAmount": 0,
                                    "unitPrice": {"currencyCode": "USD", "units": "1", "nanos": 500_000_000},
                                }
                            ],
                        }
                    }
                ],
            }
        )
    pages: dict[str, bytes] = {}
    for n, start in enumerate(range(0, total, page_size)):
        token = str(n) if n else ""
        nxt = str(n + 1) if start + page_size < total else ""
        pages[token] = json.dumps({"skus": skus[start : start + page_size], "nextPageToken": nxt}).encode()
    return pages


def measure(label: str, run: Callable[[], Any]) -> None:
    """Time a plain run, then repeat it under tracemalloc for the peak (tracing slows Python several-fold)."""
    started = time.perf_counter()
    snap = run()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{label}: {len(snap.observations)} observations, rejected={dict(snap.rejected)}, "
        f"{seconds:.2f} s, peak traced Python memory {peak / 2**20:.0f} MiB"
    )


def main() -> None:
    catalog = GpuCatalog([])
    aws_ctx = SourceContext(
        name="aws",
        options={"regions": REGIONS, "spot_advisor": False},
        env={},
        catalog=catalog,
        config_dir=Path("."),
        timeout_s=600,
        now=lambda: NOW,
    )
    fake = FakeAws()
    print(f"AWS input: {len(REGIONS)} regions x {len(TYPES)} GPU types x (1 on-demand + {len(RESERVED)} reserved)")

    def aws() -> Any:
        AwsSource.shared_specs.clear()  # each run looks the GPU specs up again
        return AwsSource(aws_ctx, clients=fake, sleep=lambda s: None).fetch()

    measure("AWS", aws)

    pages = gcp_pages()
    gcp_ctx = SourceContext(name="gcp", options={}, env={}, catalog=catalog, config_dir=Path("."), timeout_s=600)
    print(f"GCP input: 30000 SKUs in {len(pages)} pages ({sum(map(len, pages.values())) / 2**20:.0f} MiB JSON)")
    measure("GCP", lambda: GcpSource(gcp_ctx, client=replay_client(pages_handler(pages))).fetch())
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
