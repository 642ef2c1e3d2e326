"""SkyPilot's public price catalog (``skypilot-org/skypilot-catalog``, ``catalogs/v8|v9/<cloud>/vms.csv``).

One ``vms.csv`` per cloud; columns are read by name, so the v8 and v9 layouts (which differ in order and
in optional columns: ``AvailabilityZone``, ``Arch``, ``UpstreamCloudId``, ``StorageGiB``) both parse.
Required: InstanceType, AcceleratorName, AcceleratorCount, Price, Region. ``Price`` is USD per
instance-hour on demand, ``SpotPrice`` the spot price; a row yields up to two offers.

Options (``[sources.<name>]`` with ``kind = "skypilot"``):

- ``path``: a directory of ``<provider>/vms.csv`` folders (a checkout's ``catalogs/v8``), relative to
  broker.toml; the provider is the folder name. ``common/`` and folders without ``vms.csv`` are skipped.
- ``url`` + ``provider``: one ``vms.csv`` over http(s); or ``urls = {lambda = "https://..."}``.
- ``providers``: optional list restricting which providers are read.

Rows without GPUs are skipped (CPU shapes, and GCP host rows that exclude the GPU). Known faults are
refused per row and counted: GPU memory 0 (v9 Nebius), per-GPU memory that is the instance total
(Verda, Prime Intellect), price 0 or empty, no instance type (GCP GPU-attachment rows).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from adapters.base import DEMO_PAYLOADS, Source, SourceContext
from adapters.catalog_common import (
    MIB_PER_GIB,
    R_MEM_BAD,
    R_MEM_TOTAL,
    R_NO_INSTANCE,
    R_NO_REGION,
    R_PRICE_MISSING,
    Collector,
    RowFault,
    canonical_provider,
    check_gpu_memory_gb,
    fetch_bytes,
    gpu_family_name,
    parse_count,
    parse_float,
    parse_price,
    provider_filter,
    resolve_path,
)
from adapters.http import client_for
from broker.domain import OfferKey, PriceObservation, Purchase, Snapshot, SourceError

KIND = "skypilot"
REQUIRED_COLUMNS = ("InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "Region")
SKIP_FOLDERS = frozenset({"common"})


def _gpu_memory_mib(gpu_info: str) -> int | None:
    """Per-GPU memory (MiB) from the GpuInfo cell, which is JSON in some fetchers and a Python repr in
    others. None when the cell is empty."""
    if not gpu_info.strip():
        return None
    try:
        info: Any = json.loads(gpu_info)
    except json.JSONDecodeError:
        try:
            info = ast.literal_eval(gpu_info)  # literals only: never evaluates code
        except (ValueError, SyntaxError):
            raise RowFault(R_MEM_BAD) from None
    try:
        return int(info["Gpus"][0]["MemoryInfo"]["SizeInMiB"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise RowFault(R_MEM_BAD) from None


def _single_gpu_memory(rows: list[dict[str, str]]) -> dict[str, list[float]]:
    """Per-GPU memory (GB) of the one-GPU shapes, by GPU family: the yardstick for multi-GPU rows."""
    found: dict[str, list[float]] = {}
    for row in rows:
        try:
            if parse_count(row.get("AcceleratorCount")) != 1:
                continue
            mib = _gpu_memory_mib(row.get("GpuInfo") or "")
        except RowFault:
            continue
        if mib:
            found.setdefault(gpu_family_name(row["AcceleratorName"].strip()), []).append(mib / MIB_PER_GIB)
    return found


def _check_not_total(name: str, count: int, per_gpu_gb: float, singles: Mapping[str, list[float]]) -> None:
    # A multi-GPU row whose "per-GPU" memory is count x the one-GPU shape's memory reports the total.
    for single in singles.get(gpu_family_name(name), []):
        if count > 1 and abs(per_gpu_gb - count * single) <= 0.01 * count * single:
            raise RowFault(R_MEM_TOTAL)


def parse_vms_csv(text: str, provider: str, out: Collector, *, what: str = "vms.csv") -> None:
    """Parse one SkyPilot ``vms.csv`` into ``out``. Raises SourceError when the header is not a vms.csv."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise SourceError(f"{what}: not a SkyPilot vms.csv (missing columns: {', '.join(missing)})")
    rows = list(reader)
    singles = _single_gpu_memory(rows)
    catalog_provider = provider
    provider = canonical_provider(provider)
    for row in rows:
        name = (row.get("AcceleratorName") or "").strip()
        try:
            count = parse_count(row.get("AcceleratorCount"))
            if not name or count <= 0:
                continue  # no GPU: out of scope, not a fault
            itype = (row.get("InstanceType") or "").strip()
            region = (row.get("Region") or "").strip()
            if not itype:
                raise RowFault(R_NO_INSTANCE)
            if not region:
                raise RowFault(R_NO_REGION)
            mib = _gpu_memory_mib(row.get("GpuInfo") or "")
            memory_gb = None
            if mib is not None:
                memory_gb = check_gpu_memory_gb(mib / MIB_PER_GIB, column_in_gb=False)
                _check_not_total(name, count, memory_gb, singles)
        except RowFault as fault:
            out.reject(str(fault))
            continue
        attrs: dict[str, Any] = {"price_source": "skypilot-catalog", "catalog_provider": catalog_provider}
        for column, attr in (("Arch", "arch"), ("UpstreamCloudId", "upstream_id")):
            if row.get(column):
                attrs[attr] = row[column].strip()
        vcpus, ram_gb = parse_float(row.get("vCPUs")), parse_float(row.get("MemoryGiB"))
        zone = (row.get("AvailabilityZone") or "").strip()
        prices: list[tuple[Purchase, str]] = [(Purchase.ON_DEMAND, "Price"), (Purchase.SPOT, "SpotPrice")]
        emitted = refused = 0
        for purchase, column in prices:
            try:
                price = parse_price(row.get(column))
            except RowFault as fault:
                out.reject(str(fault) if purchase is Purchase.ON_DEMAND else f"spot {fault}")
                refused += 1
                continue
            if price is None:
                continue
            key = OfferKey(provider=provider, region=region, instance_type=itype, purchase=purchase, zone=zone)
            out.add(
                PriceObservation(
                    key=key,
                    hourly_usd=price,
                    gpu_name=name,
                    gpu_count=count,
                    gpu_memory_gb=memory_gb,
                    vcpus=vcpus,
                    memory_gb=ram_gb,
                    attrs=dict(attrs),
                )
            )
            emitted += 1
        if not emitted and not refused:
            out.reject(R_PRICE_MISSING)


class SkyPilotCatalogSource(Source):
    kind = KIND
    naming = "skypilot"

    def __init__(self, ctx: SourceContext, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(ctx)
        self._sleep = sleep  # tests skip the backoff between retries

    def fetch(self) -> Snapshot:
        out = Collector()
        warnings: list[str] = []
        wanted = provider_filter(self.ctx)
        complete = True
        if self.ctx.demo:
            self._read_directory(DEMO_PAYLOADS / KIND, wanted, out)
        elif "path" in self.ctx.options:
            self._read_directory(resolve_path(self.ctx, "path"), wanted, out)
        else:
            complete = self._read_urls(self._urls(wanted), out, warnings)
        what = f"SkyPilot catalog source {self.ctx.name!r}"
        return out.snapshot(self.ctx, self.naming, warnings, what, complete=complete)

    def _read_directory(self, root: Path, wanted: frozenset[str] | None, out: Collector) -> None:
        if not root.is_dir():
            raise SourceError(f"SkyPilot catalog: {root} is not a directory (option 'path')")
        files = [
            d / "vms.csv"
            for d in sorted(root.iterdir())
            if d.name not in SKIP_FOLDERS and (d / "vms.csv").is_file()
        ]
        files = [f for f in files if wanted is None or canonical_provider(f.parent.name) in wanted]
        if not files:
            raise SourceError(f"SkyPilot catalog: no <provider>/vms.csv under {root}")
        for f in files:
            parse_vms_csv(f.read_text(encoding="utf-8"), f.parent.name, out, what=str(f))

    def _urls(self, wanted: frozenset[str] | None) -> dict[str, str]:
        opts = self.ctx.options
        urls: dict[str, str] = {}
        if "url" in opts:
            if not isinstance(opts.get("provider"), str):
                raise SourceError("SkyPilot catalog: option 'url' needs option 'provider' (the catalog folder name)")
            urls[opts["provider"]] = str(opts["url"])
        raw = opts.get("urls", {})
        if not isinstance(raw, Mapping):
            raise SourceError("SkyPilot catalog: option 'urls' must map provider names to URLs")
        urls.update({str(k): str(v) for k, v in raw.items()})
        if not urls:
            raise SourceError("SkyPilot catalog: set option 'path', or 'url' with 'provider', or 'urls'")
        return {p: u for p, u in urls.items() if wanted is None or canonical_provider(p) in wanted}

    def _read_urls(self, urls: Mapping[str, str], out: Collector, warnings: list[str]) -> bool:
        """Read each URL; True when all were read. One unreadable provider leaves the others usable,
        but the snapshot is then incomplete so that provider's stored offers are not withdrawn."""
        client = client_for(self.ctx, KIND)
        failures: list[str] = []
        for provider, url in urls.items():
            what = f"SkyPilot catalog {provider} ({url})"
            try:
                body = fetch_bytes(self.ctx, client, url, what=what, sleep=self._sleep)
                parse_vms_csv(body.decode("utf-8"), provider, out, what=what)
            except (SourceError, UnicodeDecodeError) as exc:
                failures.append(str(exc))
        if failures and len(failures) == len(urls):
            raise SourceError("; ".join(failures))
        warnings.extend(failures)
        return not failures
