"""Public catalogs (SkyPilot vms.csv, gpuhunt CSV/JSON/zip): real files through the real parsers."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.base import DEMO_PAYLOADS, SourceContext
from adapters.catalog_common import Collector
from adapters.gpuhunt_catalog import GpuhuntCatalogSource, parse_payload
from adapters.skypilot_catalog import SkyPilotCatalogSource, parse_vms_csv
from broker.domain import OfferKey, Purchase, SourceError
from broker.gpus import GpuCatalog

FIXTURES = Path(__file__).parent / "fixtures" / "catalogs"
Handler = Callable[[httpx.Request], httpx.Response]


def ctx(handler: Handler | None = None, *, demo: bool = False, **options: Any) -> SourceContext:
    http = httpx.Client(transport=httpx.MockTransport(handler)) if handler else None
    return SourceContext(name="cat", options=options, env={}, catalog=GpuCatalog([]), config_dir=Path("."),
                         demo=demo, http=http)


def parse_sky(path: Path, provider: str) -> Collector:
    out = Collector()
    parse_vms_csv(path.read_text(encoding="utf-8"), provider, out)
    return out


def by_key(out: Collector) -> dict[OfferKey, Any]:
    return {o.key: o for o in out.observations}


@pytest.fixture
def sky(shared_dir: Path) -> Path:
    return shared_dir / "data" / "skypilot-catalog"


# ---- SkyPilot ------------------------------------------------------------------------------------


def test_lambda_row_known_answer(sky: Path) -> None:
    out = parse_sky(sky / "v8" / "lambda" / "vms.csv", "lambda")
    h100 = by_key(out)[OfferKey("lambda", "us-east-1", "gpu_8x_h100_sxm5", Purchase.ON_DEMAND)]
    assert h100.hourly_usd == Decimal("31.92")
    assert (h100.gpu_name, h100.gpu_count, h100.gpu_memory_gb, h100.vcpus, h100.memory_gb) == (
        "H100", 8, 80.0, 208.0, 1800.0)
    assert len(out.observations) == 374  # 408 rows less the 34 CPU rows, which are skipped, not refused
    assert not out.rejected


def test_verda_faults_counted_and_good_rows_kept(sky: Path) -> None:
    out = parse_sky(sky / "v8" / "verda" / "vms.csv", "verda")
    offers = by_key(out)
    one = offers[OfferKey("verda", "FIN-03", "1H100.80S.30V", Purchase.ON_DEMAND)]
    assert (one.hourly_usd, one.gpu_memory_gb) == (Decimal("1.99"), 80.0)
    assert offers[OfferKey("verda", "FIN-03", "1H100.80S.30V", Purchase.SPOT)].hourly_usd == Decimal("1.0")
    # per-GPU memory = the instance total (2 x 80 GB, 8 x 80 GB ...): refused, never ingested
    assert not any(k.instance_type in ("2H100.80S.80V", "8H100.80S.176V", "2A100.44V") for k in offers)
    assert out.rejected == {"gpu memory is the instance total": 32}
    assert len(out.observations) == 21


def test_v9_nebius_memory_zero_is_refused(sky: Path) -> None:
    out = parse_sky(sky / "v9" / "nebius" / "vms.csv", "nebius")
    assert out.observations == []
    assert out.rejected == {"gpu memory zero": 22}
    with pytest.raises(SourceError, match="gpu memory zero: 22"):
        SkyPilotCatalogSource(ctx(path=str(sky / "v9"))).fetch()


def test_v8_nebius_same_rows_parse(sky: Path) -> None:
    offers = by_key(parse_sky(sky / "v8" / "nebius" / "vms.csv", "nebius"))
    key = OfferKey("nebius", "eu-north1", "gpu-h100-sxm_8gpu-128vcpu-1600gb", Purchase.SPOT)
    assert offers[key].hourly_usd == Decimal("10.00")
    assert offers[key].gpu_memory_gb == 80.0


def test_aws_excerpt_zones_and_spot(sky: Path) -> None:
    offers = by_key(parse_sky(sky / "v8" / "aws" / "vms.EXCERPT_p4d-p4de-p5.csv", "aws"))
    spot = offers[OfferKey("aws", "us-east-2", "p4d.24xlarge", Purchase.SPOT, zone="use2-az1")]
    assert spot.hourly_usd == Decimal("8.669900")
    assert spot.attrs["arch"] == "x86_64"
    assert len(offers) == 120


def test_gcp_host_rows_are_skipped_not_refused(sky: Path) -> None:
    out = parse_sky(sky / "v8" / "gcp" / "vms.EXCERPT_a2-8g-host-rows.csv", "gcp")
    assert (out.observations, out.rejected) == ([], {})


def test_whole_v8_directory(sky: Path) -> None:
    snap = SkyPilotCatalogSource(ctx(path=str(sky / "v8"))).fetch()
    providers = {o.key.provider for o in snap.observations}
    assert providers == {"lambda", "nebius", "verda", "hyperbolic", "mithril", "primeintellect"}
    assert snap.rejected == {"gpu memory is the instance total": 112}  # Verda 32 + Prime Intellect 80
    assert (snap.naming, snap.complete, snap.demo) == ("skypilot", True, False)
    hyper = [o for o in snap.observations if o.key.provider == "hyperbolic"]
    assert [str(o.hourly_usd) for o in hyper] == ["1.29", "2.58", "3.87"]
    spot_only = [o for o in snap.observations if o.key.instance_type.endswith("__SPOT")]
    assert spot_only and all(o.key.purchase == Purchase.SPOT for o in spot_only)  # empty Price, SpotPrice set


def test_price_faults_counted_per_reason() -> None:
    header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
    info = "\"{'Gpus': [{'Name': 'H100', 'Count': 1, 'MemoryInfo': {'SizeInMiB': 81920}}]}\""
    rows = [
        f"a,H100,1,8,64,0.0,r1,{info},",  # on-demand 0
        f"b,H100,1,8,64,,r1,{info},",  # no price at all
        f"c,H100,1,8,64,abc,r1,{info},1.0",  # unparsable on-demand, spot fine
        f"d,H100,0.5,8,64,1.0,r1,{info},",  # half a GPU
        f",H100,1,8,64,1.0,r1,{info},",  # GPU price row without an instance
        f"e,H100,1,8,64,2.0,,{info},",
        "f,H100,1,8,64,2.0,r1,\"{'Gpus': [oops\",",
        f"g,H100,1,8,64,2.0,r1,{info},0",
    ]
    out = Collector()
    parse_vms_csv(header + "\n".join(rows) + "\n", "x", out)
    assert out.rejected == {
        "price zero": 1, "price missing": 1, "price unparsable": 1, "fractional gpu count": 1,
        "missing instance type": 1, "missing region": 1, "gpu memory unparsable": 1, "spot price zero": 1,
    }
    assert sorted((o.key.instance_type, o.key.purchase) for o in out.observations) == [
        ("c", Purchase.SPOT), ("g", Purchase.ON_DEMAND)]


def test_not_a_vms_csv() -> None:
    with pytest.raises(SourceError, match="missing columns: AcceleratorCount"):
        parse_vms_csv("InstanceType,AcceleratorName,Price,Region\n", "x", Collector(), what="f.csv")


def test_url_fetch_and_failures(sky: Path) -> None:
    body = (sky / "v8" / "hyperbolic" / "vms.csv").read_bytes()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v8/hyperbolic/vms.csv":
            return httpx.Response(200, content=body)
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(404, text="NoSuchKey")

    base = "https://raw.example/v8"
    snap = SkyPilotCatalogSource(ctx(handle, url=f"{base}/hyperbolic/vms.csv", provider="hyperbolic")).fetch()
    assert len(snap.observations) == 3 and snap.complete

    with pytest.raises(SourceError, match=r"HTTP 404 for https://raw\.example/v8/nope/vms\.csv"):
        SkyPilotCatalogSource(ctx(handle, url=f"{base}/nope/vms.csv", provider="nope")).fetch()
    sleeps: list[float] = []
    slow = SkyPilotCatalogSource(ctx(handle, url="https://raw.example/slow", provider="x"), sleep=sleeps.append)
    with pytest.raises(SourceError, match=r"timed out \(ReadTimeout\); gave up after 3 attempt"):
        slow.fetch()
    assert sleeps == [1.0, 2.0]

    # one provider unreadable: the others still count, but nothing may be withdrawn
    snap = SkyPilotCatalogSource(ctx(handle, urls={"hyperbolic": f"{base}/hyperbolic/vms.csv",
                                                   "nope": f"{base}/nope/vms.csv"})).fetch()
    assert len(snap.observations) == 3 and not snap.complete
    assert any("HTTP 404" in w for w in snap.warnings)


def test_transient_status_is_retried(sky: Path) -> None:
    body = (sky / "v8" / "hyperbolic" / "vms.csv").read_bytes()
    answers = [httpx.Response(503), httpx.Response(200, content=body)]
    source = SkyPilotCatalogSource(ctx(lambda _r: answers.pop(0), url="https://x/vms.csv", provider="hyperbolic"),
                                   sleep=lambda _s: None)
    assert len(source.fetch().observations) == 3


def test_options_are_checked() -> None:
    with pytest.raises(SourceError, match="needs option 'provider'"):
        SkyPilotCatalogSource(ctx(url="https://x/vms.csv")).fetch()
    with pytest.raises(SourceError, match="set option 'path'"):
        SkyPilotCatalogSource(ctx()).fetch()


def test_skypilot_demo_replays_project_files() -> None:
    snap = SkyPilotCatalogSource(ctx(demo=True)).fetch()
    assert snap.demo and snap.observations
    assert {o.key.provider for o in snap.observations} == {"lambda", "nebius", "verda", "hyperbolic"}
    assert snap.rejected == {"gpu memory is the instance total": 5}
    filtered = SkyPilotCatalogSource(ctx(demo=True, providers=["Lambda"])).fetch()
    assert {o.key.provider for o in filtered.observations} == {"lambda"}


# ---- gpuhunt -------------------------------------------------------------------------------------


def test_gpuhunt_csv_faults_by_reason() -> None:
    out = Collector()
    path = FIXTURES / "gpuhunt_faults.constructed.csv"
    parse_payload(str(path), path.read_bytes(), out, provider="lambdalabs")
    assert out.rejected == {
        "duplicate offer": 1, "gpu memory zero": 1, "gpu memory in MiB": 1, "price zero": 1,
        "price missing": 1, "missing instance type": 1, "missing region": 1,
    }
    offers = by_key(out)
    assert offers[OfferKey("lambda", "us-east-1", "gpu_1x_h100_sxm5", Purchase.ON_DEMAND)].hourly_usd == Decimal("4.29")
    spot = offers[OfferKey("lambda", "us-east-1", "gpu_1x_h100_sxm5", Purchase.SPOT)]
    assert (spot.hourly_usd, spot.gpu_memory_gb) == (Decimal("2.10"), 80.0)
    assert spot.attrs["catalog_provider"] == "lambdalabs"
    assert len(offers) == 2  # the CPU row is skipped, not refused


def test_gpuhunt_export_json_names_no_instances(payloads: Path) -> None:
    path = payloads / "gpuhunt" / "gpuhunt_export_gpu_prices_2024-09-24.json"
    out = Collector()
    parse_payload(str(path), path.read_bytes(), out)
    assert out.observations == [] and out.rejected == {"missing instance type": 1295}
    with pytest.raises(SourceError, match=r"no usable GPU offers \(missing instance type: 1295\)"):
        GpuhuntCatalogSource(ctx(path=str(path))).fetch()


def test_gpuhunt_json_items_form() -> None:
    body = (b'{"items": [{"provider": "runpod", "instance_name": "NVIDIA H100 80GB HBM3", "location": "US",'
            b' "price": 2.99, "gpu_count": 1, "gpu_name": "H100", "gpu_memory": 80, "spot": false}]}')
    out = Collector()
    parse_payload("q.json", body, out)
    (o,) = out.observations
    assert (o.key.provider, o.hourly_usd, o.key.purchase) == ("runpod", Decimal("2.99"), Purchase.ON_DEMAND)
    with pytest.raises(SourceError, match="expected a JSON list"):
        parse_payload("q.json", b'{"x": 1}', Collector())


def zipped(directory: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for f in sorted(directory.glob("*.csv")):
            archive.writestr(f.name.replace(".constructed", ""), f.read_bytes())
    return buf.getvalue()


def test_gpuhunt_zip_over_url_and_failures() -> None:
    archive = zipped(DEMO_PAYLOADS / "gpuhunt")

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("catalog.zip"):
            return httpx.Response(200, content=archive)
        if request.url.path == "/slow.zip":
            raise httpx.ConnectTimeout("slow", request=request)
        return httpx.Response(404)

    url = "https://dstack-gpu-pricing.s3.eu-west-1.amazonaws.com/v2/20261120/catalog.zip"
    snap = GpuhuntCatalogSource(ctx(handle, url=url)).fetch()
    assert (snap.naming, len(snap.observations)) == ("gpuhunt", 14)
    offers = {o.key: o for o in snap.observations}
    assert offers[OfferKey("nebius", "eu-north1", "gpu-h100-sxm_8gpu-128vcpu-1600gb", Purchase.SPOT)].hourly_usd == (
        Decimal("10.00"))
    assert {k.provider for k in offers} == {"lambda", "verda", "nebius"}
    only = GpuhuntCatalogSource(ctx(handle, url=url, providers=["datacrunch"])).fetch()
    assert {o.key.provider for o in only.observations} == {"verda"}

    with pytest.raises(SourceError, match="HTTP 404"):
        GpuhuntCatalogSource(ctx(handle, url="https://x/missing.zip")).fetch()
    with pytest.raises(SourceError, match="timed out"):
        GpuhuntCatalogSource(ctx(handle, url="https://x/slow.zip"), sleep=lambda _s: None).fetch()
    with pytest.raises(SourceError, match="unreadable"):
        parse_payload("bad.zip", b"not a zip", Collector())


def test_gpuhunt_demo_and_bad_paths(tmp_path: Path) -> None:
    snap = GpuhuntCatalogSource(ctx(demo=True)).fetch()
    assert snap.demo and len(snap.observations) == 14
    with pytest.raises(SourceError, match="does not exist"):
        GpuhuntCatalogSource(ctx(path=str(tmp_path / "nope"))).fetch()
    (tmp_path / "x.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(SourceError, match="not a gpuhunt CSV"):
        GpuhuntCatalogSource(ctx(path=str(tmp_path))).fetch()
