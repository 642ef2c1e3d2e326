"""The GPU catalog against every GPU naming in the recorded payloads and the SkyPilot catalog.

Each table maps a raw name (as found in /work/shared) to the model it must resolve to, or None where the name
alone cannot say (ambiguous without memory, or not a real GPU). A naming the tables do not list fails the test,
so new spellings in the data get a decision instead of silently resolving to something.
"""

from __future__ import annotations

import ast
import csv
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from broker.domain import ConfigError
from broker.gpus import GpuCatalog, GpuModel, memory_in_gb

CATALOG = GpuCatalog.load()


def resolved(naming: str, raw: str, memory_gb: float | None = None, hint: str | None = None) -> str | None:
    model = CATALOG.resolve(naming, raw, memory_gb, hint=hint)
    return model.id if model else None


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- the catalog itself


def test_catalog_loads_with_sane_published_figures() -> None:
    models = CATALOG.models()
    assert len({m.id for m in models}) == len(models)
    for m in models:
        assert m.memory_gb > 0 and m.memory_bandwidth_tbs > 0 and m.relative_throughput > 0, m.id
        assert m.fp16_tflops > 0 and m.bf16_tflops >= 0, m.id
        assert (m.compute_capability is not None) == (m.vendor == "nvidia"), m.id
        assert m.source, f"{m.id}: every figure needs a source"
    ref = CATALOG.get("a100-80gb")
    assert ref is not None and ref.relative_throughput == 1.0
    # spot checks against cost-models.md §6.1
    h100 = CATALOG.get("H100-SXM")
    assert h100 is not None and (h100.bf16_tflops, h100.memory_gb, h100.memory_bandwidth_tbs) == (989, 80, 3.35)
    b200 = CATALOG.get("B200")
    assert b200 is not None and b200.bf16_tflops == 2250 and b200.relative_throughput > h100.relative_throughput
    assert {m.id for m in models if m.arch == "arm64"} == {"GH200", "GB200"}


def test_brief_ids_are_all_present() -> None:
    wanted = [
        "B200", "GB200", "H200", "H100-SXM", "H100-PCIE", "H100-NVL", "A100-40GB", "A100-80GB", "L40S", "L40", "L4",
        "A10G", "A10", "A40", "RTX-A6000", "RTX-6000-ADA", "RTX-PRO-6000", "V100-16GB", "V100-32GB", "T4", "MI300X",
        "MI325X",
    ]  # fmt: skip
    assert [w for w in wanted if CATALOG.get(w) is None] == []


def test_get_is_case_insensitive_and_none_when_absent() -> None:
    assert CATALOG.get("h100-sxm") is CATALOG.get("H100-SXM") is not None
    assert CATALOG.get("H100") is None  # a family, not an id
    assert resolved("canonical", "rtx-a6000") == "RTX-A6000"


# ------------------------------------------------------------------------------------------------------ AWS

AWS_FAMILIES = {
    "p4d": "A100-40GB", "p4de": "A100-80GB", "p5": "H100-SXM", "p5e": "H200", "p5en": "H200", "p6-b200": "B200",
    "g5": "A10G", "g6e": "L40S", "g6": "L4", "g4dn": "T4",
}  # fmt: skip


def test_aws_describe_instance_types_gpu_names(payloads: Path) -> None:
    types = load_json(payloads / "aws" / "ec2_describe_instance_types_gpu_from_moto.json")["InstanceTypes"]
    seen = set()
    for it in types:
        family = it["InstanceType"].split(".")[0]
        assert family in AWS_FAMILIES, f"new AWS instance family {family!r}: add it to the table"
        seen.add(family)
        for gpu in it["GpuInfo"]["Gpus"]:
            assert resolved("aws", gpu["Name"], gpu["MemoryInfo"]["SizeInMiB"]) == AWS_FAMILIES[family], it
        assert resolved("aws_family", it["InstanceType"]) == AWS_FAMILIES[family]
    assert seen == set(AWS_FAMILIES)


@pytest.mark.parametrize(
    ("family", "expected"),
    [("p3", "V100-16GB"), ("p3dn", "V100-32GB"), ("gr6", "L4"), ("g5g", "T4"), ("p2", "K80"), ("p6e-gb200", "GB200"),
     ("g4ad", None), ("m5", None)],
)  # fmt: skip
def test_aws_families_beyond_the_payload(family: str, expected: str | None) -> None:
    assert resolved("aws_family", f"{family}.xlarge") == expected


def test_aws_a100_needs_memory() -> None:
    assert resolved("aws", "A100") is None
    assert resolved("aws", "A100", 40960) == "A100-40GB"
    assert resolved("aws", "A100", 80) == "A100-80GB"
    assert resolved("aws", "V100", 32768) == "V100-32GB"
    assert resolved("aws", "T4g", 16384) == "T4"


# ------------------------------------------------------------------------------------------------------ GCP

GCP_SKU_GPU = {"Nvidia Tesla A100 GPU running in Americas": "A100-40GB"}
GCP_ACCELERATORS = {
    ("nvidia-tesla-k80", "NVIDIA Tesla K80"): "K80",
    ("nvidia-tesla-p100", "NVIDIA Tesla P100"): "P100",
    ("nvidia-tesla-p100-vws", "NVIDIA Tesla P100 Virtual Workstation"): "P100",
    ("nvidia-tesla-p4", "NVIDIA Tesla P4"): "P4",
    ("nvidia-tesla-p4-vws", "NVIDIA Tesla P4 Virtual Workstation"): "P4",
    ("nvidia-tesla-v100", "NVIDIA Tesla V100"): "V100-16GB",
}


def test_gcp_billing_sku_gpu_descriptions(payloads: Path) -> None:
    page = load_json(payloads / "gcp" / "cloudbilling_v1_services_6F81-5844-456A_skus_list_page.json")
    gpu_skus = [s["description"] for s in page["skus"] if s["category"]["resourceGroup"] == "GPU"]
    assert gpu_skus and set(gpu_skus) <= set(GCP_SKU_GPU), gpu_skus
    for description in gpu_skus:
        assert resolved("gcp", description) == GCP_SKU_GPU[description]
    others = [s["description"] for s in page["skus"] if s["category"]["resourceGroup"] != "GPU"]
    assert [d for d in others if resolved("gcp", d) is not None] == []  # "A2 Instance Core ..." is no GPU


def test_gcp_accelerator_types(payloads: Path) -> None:
    listing = load_json(payloads / "gcp" / "compute_v1_acceleratorTypes_aggregatedList_2018.json")
    found = {
        (a["name"], a["description"]) for zone in listing["items"].values() for a in zone.get("acceleratorTypes", [])
    }
    assert found == set(GCP_ACCELERATORS)
    for (name, description), expected in GCP_ACCELERATORS.items():
        assert resolved("gcp", name) == expected
        assert resolved("gcp", description) == expected


# SKU descriptions and accelerator names documented in shared/reference/provider-apis.md §2.2-2.3
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nvidia Tesla A100 80GB GPU running in Americas", "A100-80GB"),
        ("Nvidia Tesla A100 GPU attached to Spot Preemptible VMs running in EMEA", "A100-40GB"),
        ("Commitment v1: Nvidia Tesla A100 GPU in Iowa for 1 Year", "A100-40GB"),
        ("Nvidia H100 80GB GPU running in Americas", "H100-SXM"),
        ("Nvidia H100 80GB Mega GPU running in Americas", "H100-SXM"),
        ("Nvidia H100 80GB Plus GPU running in Americas", "H100-SXM"),
        ("Commitment v1: Nvidia H100 80GB GPU in Frankfurt for 3 Year", "H100-SXM"),
        ("Spot Preemptible A4 Nvidia B200 (1 gpu slice) running in Iowa", "B200"),
        ("Nvidia L4 GPU attached to Spot Preemptible VMs running in Frankfurt", "L4"),
        ("Commitment v1: Nvidia L4 GPU in Frankfurt for 1 Year", "L4"),
        ("Nvidia Tesla T4 GPU running in APAC", "T4"),
        ("Nvidia Tesla V100 GPU running in Americas", "V100-16GB"),
        ("nvidia-a100-80gb", "A100-80GB"),
        ("nvidia-h100-80gb", "H100-SXM"),
        ("nvidia-h100-mega-80gb", "H100-SXM"),
        ("nvidia-l4", "L4"),
        ("nvidia-b200", "B200"),
        ("nvidia-tesla-t4", "T4"),
        ("nvidia-rtx-pro-6000", "RTX-PRO-6000"),
        ("NVIDIA A100 40GB", "A100-40GB"),
    ],
)
def test_gcp_documented_names(raw: str, expected: str) -> None:
    assert resolved("gcp", raw) == expected


# ---------------------------------------------------------------------------------------------------- Azure

AZURE_SERIES = {
    "NC A100 v4": "A100-80GB", "ND A100 v4": "A100-40GB", "NDm A100 v4": "A100-80GB", "NC H100 v5": "H100-NVL",
    "ND H100 v5": "H100-SXM", "ND H200 v5": "H200", "ND MI300X v5": "MI300X", "NCasT4_v3": "T4", "NVadsA10 v5": "A10",
}  # fmt: skip


def _expand(pattern: str) -> list[str]:
    """Standard_NC{24,48}adi?s_H100_v5 -> every concrete name (".." stands for any size)."""
    pattern = pattern.replace("{..}", "{36}")
    parts = re.split(r"(\{[^}]*\}|\w\?)", pattern)
    choices = [
        p[1:-1].split(",") if p.startswith("{") else [p[0], ""] if p.endswith("?") and len(p) == 2 else [p]
        for p in parts
    ]
    return ["".join(c) for c in itertools.product(*choices)]


def test_azure_gpu_series_documented_in_the_reference(shared_dir: Path) -> None:
    text = (shared_dir / "reference" / "provider-apis.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\s*\| ([^|]+?) \| `(Standard_[^`]+)`", text, flags=re.M)
    assert {label for label, _ in rows} == set(AZURE_SERIES), "a new Azure GPU series in the reference"
    for label, pattern in rows:
        for sku in _expand(pattern):
            assert resolved("azure_series", sku) == AZURE_SERIES[label], sku


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NC_A100_v4", "A100-80GB"), ("ND_H100_v5", "H100-SXM"), ("NCads_H100_v5", "H100-NVL"),
        ("ND_MI300X_v5", "MI300X"), ("NCasT4_v3", "T4"), ("NVadsA10_v5", "A10"), ("ND_H200_v5", "H200"),
        ("Virtual Machines NCadsA100v4 Series", "A100-80GB"), ("NC24ads A100 v4 Spot", "A100-80GB"),
        ("Standard_NC6s_v3", "V100-16GB"), ("Standard_ND40rs_v2", "V100-32GB"), ("Standard_NC6s_v2", "P100"),
        ("Standard_NV6ads_A10_v5", "A10"), ("Standard_ND96asr_v4", "A100-40GB"),
    ],
)  # fmt: skip
def test_azure_series_names(raw: str, expected: str) -> None:
    assert resolved("azure_series", raw) == expected


def test_azure_non_gpu_items_resolve_to_nothing(payloads: Path) -> None:
    items = load_json(
        payloads
        / "azure"
        / "retail_prices_items_B16als_v2_australiacentral_lowpri_consumption_savingsplan_reservation.json"
    )["Items"]
    assert items and all(resolved("azure_series", i["armSkuName"]) is None for i in items)


# --------------------------------------------------------------------------------------------------- Lambda

LAMBDA_EXAMPLE = {
    "1x RTX A100 (24 GB)": None,  # the vendor's OpenAPI placeholder: no such GPU
    "4x RTX 6000 (24 GB)": "QUADRO-RTX-6000",  # Lambda's Turing RTX 6000 instances (gpu_1x_rtx6000)
}


def test_lambda_openapi_example(payloads: Path) -> None:
    data = load_json(payloads / "lambda" / "instance_types_openapi_v1.5.3_example.json")["data"]
    descriptions = {v["instance_type"]["description"] for v in data.values()}
    assert descriptions == set(LAMBDA_EXAMPLE)
    for description, expected in LAMBDA_EXAMPLE.items():
        assert resolved("lambda", description) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("H100 (80 GB SXM5)", "H100-SXM"), ("8x H100 (80 GB SXM5)", "H100-SXM"), ("H100 (80 GB PCIe)", "H100-PCIE"),
        ("A100 (40 GB PCIe)", "A100-40GB"), ("A100 (40 GB SXM4)", "A100-40GB"), ("A100 (80 GB SXM4)", "A100-80GB"),
        ("GH200 (96 GB)", "GH200"), ("B200 (180 GB SXM6)", "B200"), ("A10 (24 GB PCIe)", "A10"),
        ("A6000 (48 GB)", "RTX-A6000"), ("Tesla V100 (16 GB)", "V100-16GB"), ("H100 (80 GB)", None),
    ],
)  # fmt: skip
def test_lambda_descriptions(raw: str, expected: str | None) -> None:
    assert resolved("lambda", raw) == expected


def test_lambda_instance_type_name_settles_the_form_factor() -> None:
    assert resolved("lambda", "H100", 80, hint="gpu_1x_h100_pcie") == "H100-PCIE"
    assert resolved("lambda", "H100", 80, hint="gpu_8x_h100_sxm5") == "H100-SXM"


# --------------------------------------------------------------------------------------------------- Crusoe


def test_crusoe_swagger_example(payloads: Path) -> None:
    types = load_json(payloads / "crusoe" / "v1_projects_compute_vms_types_swagger_example.json")["items"]
    assert [t["gpu_type"] for t in types] == ["A100"]
    assert resolved("crusoe", "A100") is None  # 40 or 80 GB: the example gives no memory
    assert resolved("crusoe", "A100", 80) == "A100-80GB"
    quota = load_json(payloads / "crusoe" / "v1_capacities_swagger_example.json")["items"][0]["quota_type"]
    assert resolved("crusoe", quota.split("_MEM_60_")[1].rsplit("_", 1)[0]) == "A40"  # ..._A40_PCIE_48GB_1


CRUSOE_DOCUMENTED = {
    "A100-PCIe-40GB": "A100-40GB", "A100-PCIe-80GB": "A100-80GB", "A100-SXM-80GB": "A100-80GB",
    "H100-SXM-80GB": "H100-SXM", "H200-SXM-141GB": "H200", "B200-SXM-180GB": "B200", "GB200-NVL-186GB": "GB200",
    "L40S-48GB": "L40S", "A40-PCIe-48GB": "A40", "MI300X-192GB": "MI300X", "MI355X_288GB": "MI355X",
}  # fmt: skip


def test_crusoe_gpu_types_documented_in_the_reference(shared_dir: Path) -> None:
    text = (shared_dir / "reference" / "provider-apis.md").read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if "`gpu_type` strings seen" in ln)
    names = re.findall(r"`([^`]+)`", line.split(":", 1)[1])
    assert set(names) == set(CRUSOE_DOCUMENTED)
    for name in names:
        assert resolved("crusoe", name) == CRUSOE_DOCUMENTED[name], name
    assert resolved("crusoe", "H100-80GB-SXM") == "H100-SXM"
    assert resolved("crusoe", "A100-80GB-SXM") == "A100-80GB"


# --------------------------------------------------------------------------------------- gpuhunt and others

GPUHUNT_EXPORT = {"A100": None, "H100": None, "MI300X": "MI300X"}  # the export has no memory column


def test_gpuhunt_export_names(payloads: Path) -> None:
    rows = load_json(payloads / "gpuhunt" / "gpuhunt_export_gpu_prices_2024-09-24.json")
    assert {r["gpuModel"] for r in rows} == set(GPUHUNT_EXPORT)
    for name, expected in GPUHUNT_EXPORT.items():
        assert resolved("gpuhunt", name) == expected


def _provider_payload_names(payloads: Path) -> list[tuple[str, float | None]]:
    """(name, per-GPU memory) pairs from gpuhunt's provider payloads and the Verda SDK fixtures."""
    g = payloads / "gpuhunt"
    out: list[tuple[str, float | None]] = []
    for size in load_json(g / "digitalocean_v2_sizes.json")["sizes"]:
        if info := size.get("gpu_info"):
            out.append((info["model"], info["vram"]["amount"] / info["count"]))
    out += [(p["gpu_type"], p["gpu_vram_gb"]) for p in load_json(g / "vultr_plans.json")["plans"]]
    out += [(s["gpu_type"], float(s["vram"])) for s in load_json(g / "jarvislabs_server_meta.json")["server_meta"]]
    out += [(p["gpu_label"], None) for p in load_json(g / "seeweb_plans.json")["plans"] if p["gpu_label"]]
    for path in (g / "verda_instance_types.json", payloads / "other" / "verda_instance_types_get_fixture.json"):
        for t in load_json(path):
            if n := t["gpu"]["number_of_gpus"]:
                per_gpu = t["gpu_memory"]["size_in_gigabytes"] / n
                out += [(t["gpu"]["description"], per_gpu), (t["name"], per_gpu), (t["model"], per_gpu)]
    return out


PROVIDER_NAMES = {
    ("nvidia_h100", 80.0): None,  # DigitalOcean: SXM or PCIe is not said
    ("amd_mi300x", 192.0): "MI300X",
    ("NVIDIA_A100", 4): None,  # Vultr vGPU slices of an A100: 4/40/80 GB of which card is unknown
    ("NVIDIA_A100", 40): "A100-40GB", ("NVIDIA_A100", 80): "A100-80GB",
    ("L4", 24.0): "L4", ("A100-80GB", 80.0): "A100-80GB", ("RTX-PRO6000", 96.0): "RTX-PRO-6000",
    ("RTX PRO 6000", 96.0): "RTX-PRO-6000", ("H100", 80.0): None,  # Jarvislabs: form factor not said
    ("L40s 48GB", None): "L40S", ("A100 80GB", None): "A100-80GB", ("MI300X", None): "MI300X",
    ("1x H100 SXM5 80GB", 80.0): "H100-SXM", ("H100 SXM5 80GB", 80.0): "H100-SXM",
    ("2x RTX A6000 48GB", 48.0): "RTX-A6000", ("RTX A6000 48GB", 48.0): "RTX-A6000",
    ("RTX A6000", 48.0): "RTX-A6000", ("1x Tesla V100 16GB", 16.0): "V100-16GB",
    ("Tesla V100 16GB", 16.0): "V100-16GB", ("Tesla V100", 16.0): "V100-16GB",
}  # fmt: skip


def test_gpuhunt_provider_payloads_and_verda(payloads: Path) -> None:
    found = _provider_payload_names(payloads)
    unlisted = sorted({pair for pair in found if pair not in PROVIDER_NAMES}, key=str)
    assert unlisted == [], "new GPU names in the payloads: add them to PROVIDER_NAMES"
    for name, memory in found:
        assert resolved("gpuhunt", name, memory) == PROVIDER_NAMES[(name, memory)], (name, memory)


SCRAPED_PRODUCTS = {
    "NVIDIA GB200 NVL72": "GB200", "NVIDIA GB200 NVL72*": "GB200", "NVIDIA GB200": "GB200", "NVIDIA B200": "B200",
    "NVIDIA B200 SXM": "B200", "NVIDIA B200 SXM6": "B200", "NVIDIA HGX B200": "B200", "B200": "B200",
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": "RTX-PRO-6000", "RTX Pro 6000": "RTX-PRO-6000",
    "NVIDIA HGX H200": "H200", "NVIDIA H200": "H200", "NVIDIA H200 SXM": "H200", "H200": "H200",
    "NVIDIA GH200": "GH200", "NVIDIA H100": None, "NVIDIA HGX H100": "H100-SXM", "NVIDIA H100 SXM": "H100-SXM",
    "H100 SXM": "H100-SXM", "NVIDIA H100 PCIe": "H100-PCIE", "H100 PCIe": "H100-PCIE", "H100 NVL": "H100-NVL",
    "NVIDIA A100": "by memory", "NVIDIA A100 PCIe": "by memory", "NVIDIA A100 SXM": "by memory",
    "A100 PCIe": "by memory", "A100 SXM": "by memory", "NVIDIA L40": "L40", "L40": "L40", "NVIDIA L40S": "L40S",
    "L40S": "L40S", "NVIDIA L40S GPU with AMD": "L40S", "NVIDIA L40S GPU with Intel": "L40S", "L4": "L4",
    "NVIDIA A40": "A40", "NVIDIA A40 PCIe": "A40", "A40": "A40", "NVIDIA A10": "A10", "NVIDIA A6000": "RTX-A6000",
    "RTX A6000": "RTX-A6000", "RTX A5000": "RTX-A5000", "RTX 6000 Ada": "RTX-6000-ADA",
    "NVIDIA Quadro RTX 6000": "QUADRO-RTX-6000", "NVIDIA Tesla V100": "V100-16GB", "AMD MI300X": "MI300X",
    "AMD Mi300X": "MI300X", "AMD MI355X": "MI355X", "Intel Gaudi 2": "GAUDI2", "Intel Gaudi 3": "GAUDI3",
    # consumer cards are not in the catalog (known unknowns)
    "RTX 3090": None, "RTX 4090": None, "RTX 5090": None,
}  # fmt: skip


def test_scraped_price_page_products(payloads: Path) -> None:
    """becloudready/gpu-price scrapes (product + vram_gb); rows without vram are not GPUs (storage, LLMs ...)."""
    folder = payloads / "gpuhunt" / "related" / "other_aggregators" / "becloudready_gpu-price"
    rows = [r for f in sorted(folder.glob("*.csv")) for r in csv.DictReader(f.open(newline="", encoding="utf-8"))]
    gpu_rows = [(r["product"], float(r["vram_gb"])) for r in rows if r["vram_gb"]]
    assert gpu_rows
    assert sorted({p for p, _ in gpu_rows} - set(SCRAPED_PRODUCTS)) == []
    for product, vram in gpu_rows:
        expected = SCRAPED_PRODUCTS[product]
        if expected == "by memory":
            expected = {40: "A100-40GB", 80: "A100-80GB"}[int(vram)]
        assert resolved("gpuhunt", product, vram) == expected, (product, vram)


def test_gpu_price_tracker_types(shared_dir: Path, payloads: Path) -> None:
    expected = {
        ("A100_80GB", "PCIe"): "A100-80GB", ("A100_80GB", "SXM4"): "A100-80GB", ("B200_180GB", None): "B200",
        ("GH200_96GB", None): "GH200", ("H100_80GB", "PCIe"): "H100-PCIE", ("H100_80GB", "SXM5"): "H100-SXM",
        ("H200_141GB", None): "H200",
    }  # fmt: skip
    files = [*sorted((shared_dir / "data" / "gpu-price-tracker").glob("*.jsonl"))]
    files.append(
        payloads / "gpuhunt/related/other_aggregators/tugot17_gpu-price-tracker/H100_80GB_SXM5.every24th.jsonl"
    )
    seen = set()
    for path in files:
        with path.open(encoding="utf-8") as fh:
            first = json.loads(fh.readline())
        key = (first["gpu_type"], first["socket_type"])
        seen.add(key)
        assert resolved("gpuhunt", key[0], hint=key[1]) == expected[key], key
        assert resolved("gpuhunt", path.stem.split(".")[0]) == expected[key]  # "H100_80GB_SXM5"
    assert seen == set(expected)


# ------------------------------------------------------------------------------------------------- SkyPilot

SKYPILOT = {
    "A10": "A10", "A100": "A100-40GB", "A100-40GB": "A100-40GB", "A100-40GB-320GB": "A100-40GB",
    "A100-80GB": "A100-80GB", "A100-80GB-160GB": "A100-80GB", "A100-80GB-320GB": "A100-80GB",
    "A100-80GB-640GB": "A100-80GB", "A4000": "RTX-A4000", "A5000": "RTX-A5000", "A6000": "RTX-A6000",
    "RTX-A6000": "RTX-A6000", "A16": None, "B200": "B200", "B300": None, "GAUDI2": "GAUDI2", "GH200": "GH200",
    "H200": "H200", "L4": "L4", "L40": "L40", "L40S": "L40S", "RTX6000": "QUADRO-RTX-6000",
    "RTX6000Ada": "RTX-6000-ADA", "RTX-6000-Ada": "RTX-6000-ADA", "RTX-PRO-6000": "RTX-PRO-6000",
    "RTXPro6000": "RTX-PRO-6000", "V100": "V100-16GB", "Tesla-V100": "V100-16GB", "V100-32GB": "V100-32GB",
}  # fmt: skip
# "H100" is SXM or PCIe: the instance type settles it, or nothing does (then it stays unresolved)
SKYPILOT_H100_PCIE = {"gpu_1x_h100_pcie"}
SKYPILOT_H100_SXM = {
    "gpu_1x_h100_sxm5", "gpu_2x_h100_sxm5", "gpu_4x_h100_sxm5", "gpu_8x_h100_sxm5", "h100-80gb.sxm.1x",
    "h100-80gb.sxm.8x", "gpu-h100-sxm_1gpu-16vcpu-200gb", "gpu-h100-sxm_8gpu-128vcpu-1600gb",
    "lambdalabs_H100-sxm5x2", "lambdalabs_H100-sxm5x4", "lambdalabs_H100-sxm5x8",
    "lambdalabs__1xH100_80GB__26__225", "lambdalabs__4xH100_80GB__104__900", "lambdalabs__8xH100_80GB__208__1800",
    "hyperstack__8xH100_80GB__192__960", "primecompute__8xH100_80GB__104__752", "dc_roan__8xH100_80GB__104__1024",
    "nebius__1xH100_80GB__16__200", "nebius__8xH100_80GB__128__1600",
    "1x-H100-75-722", "2x-H100-149-1443", "3x-H100-224-2165",  # Hyperbolic: GpuInfo says "...80GB-HBM3"
}  # fmt: skip
SKYPILOT_H100_UNSAID = {
    "p5.48xlarge", "p5.4xlarge",  # AWS rows: the aws naming (p5) says SXM, the SkyPilot name does not
    "1H100.80S.30V", "2H100.80S.80V", "4H100.80S.176V", "8H100.80S.176V",  # Verda
    "datacrunch__1xH100_80GB__30__120", "datacrunch__8xH100_80GB__176__1480",
    "datacrunch__8xH100_80GB__176__1480__SPOT", "hyperstack__1xH100_80GB__28__180",
    "hyperstack__2xH100_80GB__60__360", "hyperstack__4xH100_80GB__124__720", "hyperstack__8xH100_80GB__252__1440",
    "paperspace_H100", "scaleway_H100", "scaleway_H100x2", "lambdalabs_H100", "massedcompute_H100",
    "massedcompute_H100x2",  # Shadeform
}  # fmt: skip


def skypilot_h100(instance: str) -> str | None:
    if instance in SKYPILOT_H100_PCIE:
        return "H100-PCIE"
    if instance in SKYPILOT_H100_SXM:
        return "H100-SXM"
    assert instance in SKYPILOT_H100_UNSAID, f"new SkyPilot H100 instance type {instance!r}: add it to a table"
    return None


def _gpu_info(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        info: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        info = ast.literal_eval(text)
    return info


def _skypilot_rows(shared_dir: Path, payloads: Path) -> list[tuple[str, float | None, str, str | None]]:
    """(AcceleratorName, per-GPU memory as stored, hint text, GpuInfo name) for every GPU row."""
    files = sorted((shared_dir / "data" / "skypilot-catalog").rglob("*.csv"))
    files += sorted((payloads / "gpuhunt" / "related" / "skypilot_catalog").glob("*.csv"))
    rows = []
    for path in files:
        if path.name == "accelerators.csv":
            continue
        for r in csv.DictReader(path.open(newline="", encoding="utf-8")):
            if not r.get("AcceleratorName"):
                continue
            info = _gpu_info(r.get("GpuInfo") or "")
            gpu = info["Gpus"][0] if info else None
            memory = gpu["MemoryInfo"]["SizeInMiB"] if gpu else r.get("GpuMemoryMiB") or None
            hint = " ".join(filter(None, (r["InstanceType"], r.get("UpstreamCloudId"), gpu and gpu["Name"])))
            rows.append((r["AcceleratorName"], float(memory) if memory else None, hint, gpu and gpu["Name"]))
    return rows


def test_skypilot_catalog_accelerator_names(shared_dir: Path, payloads: Path) -> None:
    rows = _skypilot_rows(shared_dir, payloads)
    assert len(rows) > 500
    unlisted = sorted({name for name, *_ in rows if name not in SKYPILOT and name != "H100"})
    assert unlisted == [], "new SkyPilot accelerator names: add them to SKYPILOT"
    for name, memory, hint, _ in rows:
        expected = skypilot_h100(hint.split()[0]) if name == "H100" else SKYPILOT[name]
        assert resolved("skypilot", name, memory, hint=hint) == expected, (name, memory, hint)


SKYPILOT_GPUINFO = {("A100", 81920.0): "A100-80GB", ("NVIDIA-H100-80GB-HBM3", 81559.0): "H100-SXM"}


def test_skypilot_gpuinfo_names(shared_dir: Path, payloads: Path) -> None:
    """GpuInfo carries the cloud's own name (AWS's "A100" + MiB, Hyperbolic's nvidia-smi name)."""
    found = {(g, m) for name, m, _hint, g in _skypilot_rows(shared_dir, payloads) if g and g != name}
    assert found == set(SKYPILOT_GPUINFO)
    for (gpu_name, memory), expected in SKYPILOT_GPUINFO.items():
        assert resolved("aws", gpu_name, memory) == expected, gpu_name


SKYPILOT_COMMON = {
    "A10": "A10", "A100": "A100-40GB", "A100-80GB": "A100-80GB", "A100-80GB-SXM": "A100-80GB", "A10G": "A10G",
    "A40": "A40", "A4000": "RTX-A4000", "A5000": "RTX-A5000", "A6000": "RTX-A6000", "B200": "B200", "GH200": "GH200",
    "H100-MEGA": "H100-SXM", "H100-NVL": "H100-NVL", "H100-SXM": "H100-SXM", "H200": "H200", "H200-SXM": "H200",
    "K80": "K80", "L4": "L4", "L40": "L40", "L40S": "L40S", "MI300X": "MI300X", "NVIDIA-H200-NVL": "H200-NVL",
    "P100": "P100", "P4": "P4", "RTX PRO 6000 96GB": "RTX-PRO-6000", "RTX-PRO-6000": "RTX-PRO-6000",
    "RTX6000": "QUADRO-RTX-6000", "RTX6000-Ada": "RTX-6000-ADA", "RTX6000Ada": "RTX-6000-ADA",
    "RTXA4000": "RTX-A4000", "RTXA5000": "RTX-A5000", "RTXA6000": "RTX-A6000", "RTXPRO6000": "RTX-PRO-6000",
    "RTXPRO6000-WK": "RTX-PRO-6000", "RTXPRO6000WS": "RTX-PRO-6000", "T4": "T4", "T4g": "T4", "V100": "V100-16GB",
    "V100-32GB": "V100-32GB",
    # ambiguous by name alone
    "H100": None, "H100-NVLINK": None,  # SXM or PCIe; Hyperstack's "H100 NVLink" is a bridged PCIe card
    # known unknowns: not in the catalog (no verified dense figures, consumer/workstation cards, or not GPUs)
    "A16": None, "A30": None, "A800": None, "B300": None, "Gaudi": None, "Gaudi HL-205": None, "M4000": None,
    "M60": None, "P4000": None, "RTX2000-Ada": None, "RTX3060": None, "RTX3090": None, "RTX4000-Ada": None,
    "RTX4060": None,
    "RTX4070": None, "RTX4090": None, "RTX5070": None, "RTX5090": None, "RTX5880-Ada": None, "RTXA4500": None,
    "RTXPRO4000": None, "RTXPRO4500": None, "Radeon MI25": None, "Radeon Pro V520": None, "Inferentia": None,
    "Inferentia2": None, "Trainium": None, "Trainium2": None, "tpu-v2": None, "tpu-v3": None, "tpu-v4": None,
    "tpu-v5litepod": None, "tpu-v5p": None, "tpu-v6e": None,
}  # fmt: skip


def test_skypilot_accelerator_list(shared_dir: Path) -> None:
    names = {
        r["AcceleratorName"]
        for path in (shared_dir / "data" / "skypilot-catalog").glob("v*/common/accelerators.csv")
        for r in csv.DictReader(path.open(newline="", encoding="utf-8"))
    }
    assert sorted(names - set(SKYPILOT_COMMON)) == []
    for name in names:
        assert resolved("skypilot", name) == SKYPILOT_COMMON[name], name


# ------------------------------------------------------------------------------------------------ behaviour


def test_memory_keeps_look_alike_models_apart() -> None:
    assert resolved("gpuhunt", "A100", 40) == "A100-40GB"
    assert resolved("gpuhunt", "A100", 80) == "A100-80GB"
    assert resolved("gpuhunt", "A100", 81920) == "A100-80GB"  # MiB
    assert resolved("gpuhunt", "A100", 76.0) == "A100-80GB"  # within 10%
    assert resolved("gpuhunt", "V100", 16) == "V100-16GB"
    assert resolved("gpuhunt", "V100", 32768) == "V100-32GB"
    assert resolved("gpuhunt", "RTX 6000", 24) == "QUADRO-RTX-6000"
    assert resolved("gpuhunt", "RTX 6000", 48) == "RTX-6000-ADA"
    assert resolved("gpuhunt", "H100", 94) == "H100-NVL"


def test_ambiguous_without_memory_is_none() -> None:
    for name in ("A100", "V100", "RTX 6000", "nvidia a100"):
        assert CATALOG.resolve("gpuhunt", name) is None, name
    assert resolved("gpuhunt", "A100", 0) is None  # a zero size (SkyPilot v9 Nebius rows) is no size
    assert resolved("gpuhunt", "H100", 80) is None  # same memory: only the form factor can tell


def test_unknown_names_are_none() -> None:
    for name in ("RTX 4090", "TPU v5e", "", "   ", "H1000", "Radeon Pro V520"):
        assert CATALOG.resolve("aws", name) is None, name
    assert CATALOG.resolve("no-such-namespace", "H100 SXM") is not None  # common aliases work everywhere


def test_normalisation_of_case_space_and_punctuation() -> None:
    for raw in ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3", "h100_sxm5", "H100 SXM", "  h100   sxm "):
        assert resolved("gpuhunt", raw) == "H100-SXM", raw


def test_matching_by_id_family_and_alias() -> None:
    def ids(query: str) -> list[str]:
        return [m.id for m in CATALOG.matching(query)]

    assert ids("H100") == ["H100-SXM", "H100-PCIE", "H100-NVL"]
    assert ids("h100-pcie") == ["H100-PCIE"]
    assert ids("a100") == ["A100-80GB", "A100-40GB"]
    assert ids("V100") == ["V100-32GB", "V100-16GB"]
    assert ids("p4de") == ["A100-80GB"]
    assert ids("Nvidia Tesla T4") == ["T4"]
    assert ids("gaudi") == ["GAUDI3", "GAUDI2"]
    assert ids("nonsense") == [] and ids("") == []


def test_memory_in_gb() -> None:
    assert memory_in_gb(81920) == 80 and memory_in_gb(80) == 80
    assert memory_in_gb(None) is None and memory_in_gb(0) is None


# ------------------------------------------------------------------------------------------- malformed file

GOOD = """
[[gpu]]
id = "X1"
family = "X"
vendor = "nvidia"
memory_gb = 80
bf16_tflops = 100
fp16_tflops = 100
memory_bandwidth_tbs = 1.0
compute_capability = "9.0"
arch = "x86_64"
relative_throughput = 1.0
source = "test"
[gpu.aliases]
aws = ["Xone"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gpus.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_small_file_loads(tmp_path: Path) -> None:
    catalog = GpuCatalog.load(_write(tmp_path, GOOD))
    model = catalog.resolve("aws", "xone")
    assert isinstance(model, GpuModel) and model.id == "X1"
    assert model.aliases["common"] == ("X1",)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("memory_gb = 80", 'memory_gb = "eighty"', "memory_gb"),
        ("memory_gb = 80", "memory_gb = 0", "memory_gb"),
        ('vendor = "nvidia"', 'vendor = "nvdia"', "vendor"),
        ('compute_capability = "9.0"', "compute_capability = 9.0", "compute_capability"),
        ('arch = "x86_64"', 'arch = "aarch64"', "arch"),
        ('aws = ["Xone"]', 'aws = "Xone"', "aliases.aws"),
        ("relative_throughput = 1.0", "relative_thruput = 1.0", "relative_thruput"),
        ('family = "X"', "", "family"),
    ],
)
def test_malformed_file_names_file_model_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        GpuCatalog.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "'X1'" in message and field in message


def test_invalid_toml_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gpus\.toml: not valid TOML"):
        GpuCatalog.load(_write(tmp_path, GOOD + "\nthis is not toml\n"))
    with pytest.raises(ConfigError, match="duplicate"):
        GpuCatalog.load(_write(tmp_path, GOOD + GOOD.replace("Xone", "Xtwo")))
    with pytest.raises(ConfigError, match="cannot tell them apart"):
        GpuCatalog.load(_write(tmp_path, GOOD + GOOD.replace('"X1"', '"X2"')))
    with pytest.raises(ConfigError, match="cannot read"):
        GpuCatalog.load(tmp_path / "absent.toml")
