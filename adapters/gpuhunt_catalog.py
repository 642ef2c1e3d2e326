"""dstack's gpuhunt catalog: one ``<provider>.csv`` per provider, published together as ``catalog.zip``.

CSV columns (read by name; older catalogs lack the later ones): ``instance_name, location, price, cpu,
memory, gpu_count, gpu_name, gpu_memory, spot, disk_size, gpu_vendor, cpu_arch, flags, provider_data``.
``price`` is USD per instance-hour, ``gpu_memory`` GB per GPU, ``spot`` "True"/"False".

JSON is accepted too: a list (or ``{"items": [...]}``) of objects with the same keys plus ``provider``
(what serialising ``gpuhunt.query()`` results gives). The community export's short form
``{gpuModel, price: "$0.44", provider}`` is read as well, but it names neither instance type nor region
nor GPU count, so each of its rows is refused as "missing instance type".

Options (``kind = "gpuhunt"``): ``path`` (a directory of CSVs, a ``catalog.zip``, one ``.csv`` or
``.json``; relative to broker.toml) or ``url`` (same formats over http(s)); ``provider`` for a single
CSV whose file name is not the provider; ``providers`` to restrict. A file's provider is its name up
to the first dot (``lambdalabs.csv``, ``lambdalabs.constructed.csv``).
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from adapters.base import DEMO_PAYLOADS, Source, SourceContext
from adapters.catalog_common import (
    R_NO_COUNT,
    R_NO_INSTANCE,
    R_NO_PROVIDER,
    R_NO_REGION,
    R_PRICE_MISSING,
    Collector,
    RowFault,
    canonical_provider,
    check_gpu_memory_gb,
    fetch_bytes,
    parse_count,
    parse_float,
    parse_price,
    provider_filter,
    resolve_path,
)
from adapters.http import client_for
from broker.domain import OfferKey, PriceObservation, Purchase, Snapshot, SourceError

KIND = "gpuhunt"
# the community export's spelling -> the catalog column
JSON_ALIASES = {"gpuModel": "gpu_name", "gpuCount": "gpu_count", "instanceName": "instance_name"}


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _is_spot(raw: Any) -> bool:
    return raw if isinstance(raw, bool) else str(raw).strip().lower() == "true"


def parse_rows(
    rows: Iterable[Mapping[str, Any]], provider: str | None, out: Collector, wanted: frozenset[str] | None
) -> None:
    """Catalog rows into ``out``. ``provider`` applies to rows without their own ``provider`` key."""
    for raw in rows:
        row = {JSON_ALIASES.get(k, k): v for k, v in raw.items()}
        gpu_name = _text(row, "gpu_name")
        try:
            count = parse_count(row.get("gpu_count"))
            if not gpu_name and count <= 0:
                continue  # a CPU shape: out of scope, not a fault
            catalog_provider = _text(row, "provider") or provider or ""
            if not catalog_provider:
                raise RowFault(R_NO_PROVIDER)
            canonical = canonical_provider(catalog_provider)
            if wanted is not None and canonical not in wanted:
                continue
            itype, region = _text(row, "instance_name"), _text(row, "location")
            if not itype:
                raise RowFault(R_NO_INSTANCE)
            if count <= 0 or not gpu_name:
                raise RowFault(R_NO_COUNT)
            if not region:
                raise RowFault(R_NO_REGION)
            memory = parse_float(row.get("gpu_memory"))
            if memory is not None:
                memory = check_gpu_memory_gb(memory)
            price = parse_price(row.get("price"))
            if price is None:
                raise RowFault(R_PRICE_MISSING)
        except RowFault as fault:
            out.reject(str(fault))
            continue
        purchase = Purchase.SPOT if _is_spot(row.get("spot")) else Purchase.ON_DEMAND
        attrs: dict[str, Any] = {"price_source": "gpuhunt", "catalog_provider": catalog_provider}
        for key in ("gpu_vendor", "cpu_arch", "flags"):
            if _text(row, key):
                attrs[key] = _text(row, key)
        out.add(
            PriceObservation(
                key=OfferKey(provider=canonical, region=region, instance_type=itype, purchase=purchase),
                hourly_usd=price,
                gpu_name=gpu_name,
                gpu_count=count,
                gpu_memory_gb=memory,
                vcpus=parse_float(row.get("cpu")),
                memory_gb=parse_float(row.get("memory")),
                attrs=attrs,
            )
        )


def _provider_of(name: str) -> str:
    return PurePosixPath(name).name.split(".", 1)[0]


def parse_payload(
    name: str, body: bytes, out: Collector, *, provider: str | None = None, wanted: frozenset[str] | None = None
) -> None:
    """One catalog file by its name: ``.zip`` (the published catalog), ``.json`` or ``.csv``."""
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                members = sorted(m for m in archive.namelist() if m.endswith(".csv"))
                if not members:
                    raise SourceError(f"gpuhunt catalog {name}: the archive holds no <provider>.csv")
                for member in members:
                    parse_payload(member, archive.read(member), out, wanted=wanted)
        elif name.endswith(".json"):
            data = json.loads(body)
            items = data.get("items") if isinstance(data, dict) else data
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise SourceError(f"gpuhunt catalog {name}: expected a JSON list of objects (or {{'items': [...]}})")
            parse_rows(items, provider, out, wanted)
        else:
            reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig")))
            if "instance_name" not in (reader.fieldnames or []) or "price" not in (reader.fieldnames or []):
                raise SourceError(f"gpuhunt catalog {name}: not a gpuhunt CSV (needs instance_name and price columns)")
            parse_rows(reader, provider or _provider_of(name), out, wanted)
    except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise SourceError(f"gpuhunt catalog {name}: unreadable ({exc})") from None


class GpuhuntCatalogSource(Source):
    kind = KIND
    naming = "gpuhunt"

    def __init__(self, ctx: SourceContext, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(ctx)
        self._sleep = sleep  # tests skip the backoff between retries

    def fetch(self) -> Snapshot:
        out = Collector()
        wanted = provider_filter(self.ctx)
        provider = self.ctx.options.get("provider")
        provider = provider if isinstance(provider, str) else None
        if self.ctx.demo:
            self._read_path_files(DEMO_PAYLOADS / KIND, out, provider, wanted)
        elif "path" in self.ctx.options:
            self._read_path_files(resolve_path(self.ctx, "path"), out, provider, wanted)
        elif isinstance(self.ctx.options.get("url"), str):
            url = self.ctx.options["url"]
            client = client_for(self.ctx, KIND)
            body = fetch_bytes(self.ctx, client, url, what=f"gpuhunt catalog {url}", sleep=self._sleep)
            parse_payload(url.split("?", 1)[0], body, out, provider=provider, wanted=wanted)
        else:
            raise SourceError("gpuhunt catalog: set option 'path' or 'url'")
        return out.snapshot(self.ctx, self.naming, [], f"gpuhunt catalog source {self.ctx.name!r}")

    @staticmethod
    def _read_path_files(path: Path, out: Collector, provider: str | None, wanted: frozenset[str] | None) -> None:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".csv", ".json", ".zip"))
            if not files:
                raise SourceError(f"gpuhunt catalog: no .csv/.json/.zip files in {path}")
        elif path.is_file():
            files = [path]
        else:
            raise SourceError(f"gpuhunt catalog: {path} does not exist (option 'path')")
        for f in files:
            parse_payload(str(f), f.read_bytes(), out, provider=provider if path.is_file() else None, wanted=wanted)
