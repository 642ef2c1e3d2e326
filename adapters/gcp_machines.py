"""GCP GPU machine shapes and how a machine's hourly price is composed from its SKUs.

Shapes are Google's published machine-type tables (cloud.google.com/compute/docs/gpus and the
accelerator-optimized machine family pages): vCPUs, memory (GB), GPUs, bundled local SSD (GiB).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from adapters.gcp_skus import Component, PriceIndex

SSD_QUANTUM = Decimal("1e-10")  # SSD is a monthly rate / 730: round the repeating decimal


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    family: str  # CPU/RAM SKU family ("A2", "A3", "A3PLUS", "G2", "N1"), or the slice family ("A4")
    vcpus: int
    memory_gb: float
    gpu: str  # accelerator type name
    gpu_count: int
    gpu_memory_gb: float
    local_ssd_gib: int = 0
    sliced: bool = False  # priced per GPU slice (the slice SKU bundles CPU and RAM)
    on_demand: bool = True  # some shapes are only sold as spot / committed


def _a2(n: int, vcpus: int, mem: float, name: str | None = None) -> Shape:
    return Shape(name or f"a2-highgpu-{n}g", "A2", vcpus, mem, "nvidia-tesla-a100", n, 40)


def _a2u(n: int, vcpus: int, mem: float, ssd: int) -> Shape:
    return Shape(f"a2-ultragpu-{n}g", "A2", vcpus, mem, "nvidia-a100-80gb", n, 80, ssd)


def _a3(n: int, vcpus: int, mem: float, ssd: int) -> Shape:
    return Shape(f"a3-highgpu-{n}g", "A3", vcpus, mem, "nvidia-h100-80gb", n, 80, ssd, on_demand=n == 8)


def _g2(vcpus: int, n: int) -> Shape:
    return Shape(f"g2-standard-{vcpus}", "G2", vcpus, vcpus * 4.0, "nvidia-l4", n, 24)


SHAPES: tuple[Shape, ...] = (
    _a2(1, 12, 85),
    _a2(2, 24, 170),
    _a2(4, 48, 340),
    _a2(8, 96, 680),
    _a2(16, 96, 1360, "a2-megagpu-16g"),
    _a2u(1, 12, 170, 375),
    _a2u(2, 24, 340, 750),
    _a2u(4, 48, 680, 1500),
    _a2u(8, 96, 1360, 3000),
    _a3(1, 26, 234, 750),
    _a3(2, 52, 468, 1500),
    _a3(4, 104, 936, 3000),
    _a3(8, 208, 1872, 6000),
    Shape("a3-megagpu-8g", "A3PLUS", 208, 1872, "nvidia-h100-mega-80gb", 8, 80, 6000),
    Shape("a4-highgpu-8g", "A4", 224, 3968, "nvidia-b200", 8, 180, 12000, sliced=True, on_demand=False),
    _g2(4, 1),
    _g2(8, 1),
    _g2(12, 1),
    _g2(16, 1),
    _g2(24, 2),
    _g2(32, 1),
    _g2(48, 4),
    _g2(96, 8),
)

# N1 hosts for attached GPUs: GPUs per VM -> n1-standard size (vCPUs; 3.75 GB per vCPU).
N1_HOSTS = {1: 8, 2: 16, 4: 32, 8: 64}
N1_GPUS = {  # accelerator -> (memory GB, allowed counts)
    "nvidia-tesla-t4": (16.0, (1, 2, 4)),
    "nvidia-tesla-v100": (16.0, (1, 2, 4, 8)),
    "nvidia-tesla-p100": (16.0, (1, 2, 4)),
    "nvidia-tesla-p4": (8.0, (1, 2, 4)),
}


def n1_shapes(hosts: dict[int, int] = N1_HOSTS) -> list[Shape]:
    """n1-standard hosts with attached GPUs, named "<host>+<accelerator>x<count>"."""
    out = []
    for gpu, (memory, counts) in N1_GPUS.items():
        for n in counts:
            vcpus = hosts[n]
            out.append(Shape(f"n1-standard-{vcpus}+{gpu}x{n}", "N1", vcpus, vcpus * 3.75, gpu, n, memory))
    return out


@dataclass(frozen=True, slots=True)
class Priced:
    total: Decimal
    parts: dict[str, Decimal]


def compose(shape: Shape, usage: str, region: str, prices: PriceIndex) -> Priced | None:
    """The machine's USD per hour in one pricing mode and region, or None when a component is missing
    (a partial sum would understate the bill)."""

    def get(kind: str, name: str) -> Decimal | None:
        return prices.get((Component(kind, name, usage), region))

    parts: dict[str, Decimal] = {}
    if shape.sliced:
        slice_price = get("slice", f"{shape.family}:{shape.gpu}")
        if slice_price is None:
            return None
        parts["gpu_slices"] = slice_price * shape.gpu_count
    else:
        cpu, ram, gpu = get("cpu", shape.family), get("ram", shape.family), get("gpu", shape.gpu)
        if cpu is None or ram is None or gpu is None:
            return None
        parts["cpu"] = cpu * shape.vcpus
        parts["ram"] = ram * Decimal(str(shape.memory_gb))
        parts["gpu"] = gpu * shape.gpu_count
        if shape.local_ssd_gib:
            ssd = get("ssd", "local")
            if ssd is None:
                return None
            parts["local_ssd"] = (ssd * shape.local_ssd_gib).quantize(SSD_QUANTUM)
    return Priced(sum(parts.values(), Decimal(0)), parts)
