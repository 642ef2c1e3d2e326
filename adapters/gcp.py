"""GCP Compute Engine GPU machine prices from the Cloud Billing Catalog (service 6F81-5844-456A).

A machine's price is composed: vCPUs x core SKU + GB x RAM SKU + GPUs x GPU SKU (+ bundled local SSD), per
region of the SKUs' ``serviceRegions``. Usage types map OnDemand -> on_demand, Preemptible -> spot,
Commit1Yr/Commit3Yr -> committed_use (term 1y/3y).

Options (``[sources.<name>]`` in broker.toml; defaults below):
  regions        only these regions                       (all regions in the catalog)
  page_size      SKUs per catalog page                    (5000)
  n1_gpus        price n1 hosts with attached T4/V100/P100/P4 (true)
  commitments    emit committed-use prices                (true)
Credentials: GCP_API_KEY (an API key for the public catalog) or application default credentials.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.cloud.billing_v1 import CloudCatalogClient, ListSkusRequest
from google.protobuf.json_format import ParseError

from adapters.base import Source, SourceContext
from adapters.gcp_machines import SHAPES, Shape, compose, n1_shapes
from adapters.gcp_replay import demo_client
from adapters.gcp_skus import PriceIndex, index_skus
from broker.domain import OfferKey, PriceObservation, Snapshot, SourceError

SERVICE = "services/6F81-5844-456A"
PURCHASES = {
    "on_demand": ("on_demand", ""),
    "spot": ("spot", ""),
    "commit_1y": ("committed_use", "1y"),
    "commit_3y": ("committed_use", "3y"),
}
TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)
AUTH = (gexc.Unauthenticated, gexc.PermissionDenied, gexc.Unauthorized, gexc.Forbidden)
AUTH_HINT = "check GCP_API_KEY or the application default credentials (gcloud auth application-default login)"
MAX_BACKOFF_S = 20.0


def _adc_path(env: dict[str, str]) -> Path:
    config = env.get("CLOUDSDK_CONFIG") or str(Path.home() / ".config" / "gcloud")
    return Path(config) / "application_default_credentials.json"


class GcpSource(Source):
    kind: ClassVar[str] = "gcp"
    naming: ClassVar[str] = "gcp"

    def __init__(
        self,
        ctx: SourceContext,
        client: CloudCatalogClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(ctx)
        self._client = client
        self._sleep = sleep

    def missing_credentials(self) -> str | None:
        if self.ctx.demo or self._client is not None or self.ctx.env.get("GCP_API_KEY"):
            return None
        env = dict(self.ctx.env)
        adc = env.get("GOOGLE_APPLICATION_CREDENTIALS")
        if adc and Path(adc).is_file():
            return None
        if _adc_path(env).is_file():
            return None
        return "GCP_API_KEY is not set and no application default credentials were found"

    def _make_client(self) -> CloudCatalogClient:
        if self._client is not None:
            return self._client
        if self.ctx.demo:
            return demo_client()
        key = self.ctx.env.get("GCP_API_KEY") or os.environ.get("GCP_API_KEY")
        options = ClientOptions(api_key=key) if key else ClientOptions()
        try:
            return CloudCatalogClient(transport="rest", client_options=options)
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and kin
            raise SourceError(f"GCP catalog client: {type(exc).__name__}: {exc}; {AUTH_HINT}") from None

    def _page(self, client: CloudCatalogClient, token: str, number: int) -> Any:
        """One catalog page, retried on 429 / 5xx / connection errors inside the poll's time budget."""
        what = f"GCP billing catalog page {number}"
        request = ListSkusRequest(
            parent=SERVICE,
            currency_code="USD",
            page_size=int(self.ctx.options.get("page_size", 5000)),
            page_token=token,
        )
        delay = 1.0
        for attempt in range(1, 6):
            timeout = max(1.0, min(60.0, self.ctx.remaining_s()))
            try:
                pager = client.list_skus(request=request, retry=None, timeout=timeout)
                # the pager's first response is this page; iterating the pager would fetch the others
                return pager._response
            except AUTH as exc:
                raise SourceError(f"{what}: credentials rejected ({exc.message}); {AUTH_HINT}") from None
            except gexc.BadRequest as exc:
                if "API_KEY" in str(exc) or "API key" in str(exc):
                    raise SourceError(f"{what}: API key rejected ({exc.message}); {AUTH_HINT}") from None
                raise SourceError(f"{what}: HTTP 400: {exc.message}") from None
            except TRANSIENT as exc:
                failure = f"{what}: {type(exc).__name__}: {exc}"
            except gexc.GoogleAPICallError as exc:
                raise SourceError(f"{what}: {type(exc).__name__}: {exc.message}") from None
            except (ParseError, ValueError) as exc:
                raise SourceError(f"{what}: unreadable response ({exc})") from None
            if attempt == 5 or self.ctx.remaining_s() <= delay:
                raise SourceError(f"{failure}; gave up after {attempt} attempt(s)")
            self._sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
        raise AssertionError("unreachable")

    def _pages(self, client: CloudCatalogClient) -> Iterator[Any]:
        token, number = "", 1
        while True:
            page = self._page(client, token, number)
            yield page
            token = str(page.next_page_token or "")
            if not token:
                return
            number += 1

    def fetch(self) -> Snapshot:
        ctx = self.ctx
        snap = Snapshot(source=ctx.name, naming=self.naming, taken_at=ctx.now(), demo=ctx.demo)
        wanted = ctx.options.get("regions")
        regions = frozenset(str(r) for r in wanted) if wanted else None
        prices: PriceIndex = {}
        pages = 0
        try:
            for page in self._pages(self._make_client()):
                # raw protobuf messages: proto-plus wrappers cost ~10x per field access on 30k SKUs
                index_skus(type(page).pb(page).skus, prices, snap.rejected, regions)
                pages += 1
        except SourceError as exc:
            if pages == 0 or "credentials" in str(exc) or "API key" in str(exc):
                raise
            snap.complete = False
            snap.warnings.append(f"catalog listing incomplete after {pages} page(s): {exc}")
        self._compose(prices, snap)
        if not snap.observations and not snap.complete:
            raise SourceError(snap.warnings[-1])
        return snap

    def _shapes(self) -> list[Shape]:
        shapes = list(SHAPES)
        if bool(self.ctx.options.get("n1_gpus", True)):
            shapes += n1_shapes()
        return shapes

    def _compose(self, prices: PriceIndex, snap: Snapshot) -> None:
        regions = sorted({region for (_component, region) in prices})
        usages = [u for u in PURCHASES if bool(self.ctx.options.get("commitments", True)) or "commit" not in u]
        unresolved: Counter[str] = Counter()
        for shape in self._shapes():
            for usage in usages:
                if usage == "on_demand" and not shape.on_demand:
                    continue
                purchase, term = PURCHASES[usage]
                for region in regions:
                    priced = compose(shape, usage, region, prices)
                    if priced is None:
                        continue
                    if priced.total <= 0:
                        snap.rejected["non_positive_price"] += 1
                        continue
                    snap.observations.append(
                        PriceObservation(
                            key=OfferKey("gcp", region, shape.name, purchase, term=term),
                            hourly_usd=priced.total,
                            gpu_name=shape.gpu,
                            gpu_count=shape.gpu_count,
                            gpu_memory_gb=shape.gpu_memory_gb,
                            vcpus=float(shape.vcpus),
                            memory_gb=shape.memory_gb,
                            attrs={"components_usd": {k: str(v) for k, v in priced.parts.items()}},
                        )
                    )
        for obs in snap.observations:
            if self.ctx.catalog.resolve(self.naming, obs.gpu_name, obs.gpu_memory_gb) is None:
                unresolved[obs.gpu_name] += 1
        if unresolved:
            snap.warnings.append(f"GPU names the catalog does not resolve: {', '.join(sorted(unresolved))}")
