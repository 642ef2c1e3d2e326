"""GPU specs of EC2 instance types from ``ec2.describe_instance_types`` (``GpuInfo``), cached per process.

The Price List has a GPU *count* but no reliable model or memory, so the model name and per-GPU memory come
from here; the catalog resolves them (naming "aws" plus memory) at ingest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GpuSpec:
    name: str  # AWS's spelling ("H100", "A10G" ...)
    manufacturer: str
    count: int
    memory_gb: float | None  # per GPU
    vcpus: float | None
    memory_total_gb: float | None


def gpu_memory_gb(mib: int) -> float:
    """Per-GPU memory in GB as the vendor publishes it. AWS reports some cards as decimal GB converted to
    MiB (L4 / A10G 24 GB -> 22888 MiB, L40S 48 GB -> 45776 MiB) and others in GiB (H100 81920, H200 144384),
    so a whole number of GiB is taken as GiB and a whole number of decimal GB as GB."""
    if mib % 1024 == 0:
        return float(mib // 1024)
    decimal_gb = mib * MIB / 1e9
    if abs(decimal_gb - round(decimal_gb)) < 0.01:
        return float(round(decimal_gb))
    return float(round(mib / 1024))


def parse_instance_types(rows: list[Any]) -> dict[str, GpuSpec]:
    """instance type -> spec, for the rows that have GPUs; rows without ``GpuInfo`` are left out."""
    specs: dict[str, GpuSpec] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        gpus = (row.get("GpuInfo") or {}).get("Gpus") or []
        if not gpus or "InstanceType" not in row:
            continue
        first = gpus[0]
        mib = (first.get("MemoryInfo") or {}).get("SizeInMiB")
        vcpus = (row.get("VCpuInfo") or {}).get("DefaultVCpus")
        mem = (row.get("MemoryInfo") or {}).get("SizeInMiB")
        specs[str(row["InstanceType"])] = GpuSpec(
            name=str(first.get("Name", "")),
            manufacturer=str(first.get("Manufacturer", "")),
            count=sum(int(g.get("Count", 0)) for g in gpus),
            memory_gb=gpu_memory_gb(int(mib)) if mib else None,
            vcpus=float(vcpus) if vcpus is not None else None,
            memory_total_gb=float(mem) / 1024 if mem is not None else None,
        )
    return specs


class SpecCache:
    """Specs survive between polls: instance types do not change shape."""

    def __init__(self) -> None:
        self._specs: dict[str, GpuSpec] = {}
        self._lock = threading.Lock()

    def get(self, instance_type: str) -> GpuSpec | None:
        return self._specs.get(instance_type)

    def missing(self, instance_types: set[str]) -> set[str]:
        return {t for t in instance_types if t not in self._specs}

    def update(self, specs: dict[str, GpuSpec]) -> None:
        with self._lock:
            self._specs.update(specs)

    def clear(self) -> None:
        with self._lock:
            self._specs.clear()
