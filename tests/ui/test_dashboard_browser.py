"""The dashboard in a real browser: Debian's chromium driven by Playwright against the real app (uvicorn, the test
database, a seeded week of prices). CI installs both (tests/ui/install_browser.sh); elsewhere this skips."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.domain import utcnow
from broker.runtime import Runtime
from tests.ui import seed
from tests.ui.live import dashboard_app, serve

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the python package playwright is missing (pip install playwright; CI runs "
    "tests/ui/install_browser.sh)"
)  # fmt: skip
CHROMIUM = Path(os.environ.get("BROKER_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(
        f"no chromium at {CHROMIUM} (apt-get install chromium; or BROKER_CHROMIUM=path)", allow_module_level=True
    )

# Playwright's own browser download is not used: Debian's chromium, offline and quiet
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def base_url(runtime: Runtime) -> Iterator[str]:
    runtime.settings = seed.seeded_settings(runtime.settings)
    runtime.env = dict(seed.CREDENTIALS)
    seed.seed(runtime, utcnow())
    with serve(dashboard_app(runtime)) as url:
        yield url


class Page:
    """A browser page that records console errors, uncaught exceptions and every API request it makes."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.history_requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url} {r.failure}"))
        self.page.on("request", self._request)

    def _request(self, request: Any) -> None:
        if "/v1/prices/history" in request.url:
            self.history_requests.append(request.url)

    def history_after(self, action: Any, gpu: str) -> dict[str, Any]:
        """Run ``action`` and return the JSON of the history request it causes (for ``gpu``), once drawn."""
        with self.page.expect_response(lambda r: "/v1/prices/history" in r.url and f"gpu={gpu}" in r.url) as info:
            action()
        response = info.value
        assert response.status == 200, response.text()
        self.page.wait_for_selector(f'#chart[data-state="ready"][data-gpu="{gpu}"]')
        body: dict[str, Any] = response.json()
        return body


def drawn(page: Any) -> dict[str, list[tuple[datetime, float]]]:
    """Per line in the chart, its dots as (time, value), read back from the SVG."""
    dots = page.eval_on_selector_all(
        "#chart g[data-series] circle",
        "cs => cs.map(c => [c.parentNode.dataset.series, c.dataset.t, Number(c.dataset.value)])",
    )
    out: dict[str, list[tuple[datetime, float]]] = {}
    for series, t, value in dots:
        out.setdefault(series, []).append((_time(t), value))
    return out


def answered(body: dict[str, Any]) -> dict[str, list[tuple[datetime, float]]]:
    return {s["key"]["provider"]: [(_time(p["t"]), float(p["value"])) for p in s["points"]] for s in body["series"]}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def assert_chart_matches(page: Any, body: dict[str, Any]) -> None:
    want = answered(body)
    got = drawn(page)
    assert set(got) == set(want)
    for provider, points in want.items():
        assert len(got[provider]) == len(points), provider
        assert [t for t, _ in got[provider]] == [t for t, _ in points], provider
        assert [v for _, v in got[provider]] == pytest.approx([v for _, v in points]), provider
        # each line is a step path through its points: one horizontal run per point at least
        path = page.get_attribute(f'#chart g[data-series="{provider}"] path.line', "d")
        assert path is not None and path.count("H") == len(points)


def test_dashboard_loads_draws_the_api_history_and_reloads_on_gpu_change(
    browser: Any, base_url: str, tmp_path: Path
) -> None:
    p = Page(browser)
    page = p.page
    h100 = p.history_after(lambda: page.goto(f"{base_url}/ui#gpu=H100-SXM&purchase=on_demand&range=7d"), "H100-SXM")

    # the chart shows exactly what the API returned: a line per provider, a dot per point
    assert {s["key"]["provider"] for s in h100["series"]} == {"aws", "azure", "coreweave", "lambda"}
    assert all(len(s["points"]) > 100 for s in h100["series"])  # a week of hourly buckets
    assert_chart_matches(page, h100)
    lambda_values = sorted({v for _, v in answered(h100)["lambda"]})
    assert lambda_values == pytest.approx([19.92 / 8, 23.92 / 8])  # the price cut 2 days ago
    # azure's missed polls are shaded
    assert page.locator('#chart rect.gap[data-source="azure"]').count() >= 1
    assert any(g["kind"] == "polling" and g["source"] == "azure" for g in h100["gaps"])

    # cheapest now, per GPU model
    row = page.locator('#cheapest tr[data-gpu="H100-SXM"]')
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "$2.490" and "lambda" in cells[2]  # 19.92 / 8 GPUs on demand
    assert cells[3] == "$2.700" and "aws" in cells[4] and "us-east-1a" in cells[4]  # 21.60 / 8 spot
    assert cells[7] == "4"  # providers
    assert page.locator("#cheapest tbody tr").count() == 2  # H100-SXM and A100-80GB

    # source health lists every configured source, with lambda's failed poll and its error
    with httpx.Client(base_url=base_url) as client:
        sources = {s["source"] for s in client.get("/v1/providers").json()["providers"]}
    assert set(seed.SOURCES) <= sources
    listed = set(page.eval_on_selector_all("#health tbody tr", "rs => rs.map(r => r.dataset.source)"))
    assert listed == sources
    lambda_row = page.locator('#health tr[data-source="lambda"]').inner_text()
    assert "failed" in lambda_row and seed.LAMBDA_ERROR in lambda_row
    assert page.locator('#health tr[data-source="coreweave"] .badge').inner_text() == "ok"

    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # hovering the chart shows every provider's price at that time, cheapest first
    box = page.locator("#chart rect.hit").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    tip = page.locator("#chart .tooltip")
    tip.wait_for(state="visible")
    rows = tip.locator(".tip-row").all_inner_texts()
    assert len(rows) == 4
    assert rows[0].startswith("lambda") and rows[0].endswith("$2.490")
    page.screenshot(path=str(tmp_path / "hover.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 560})

    # another GPU model: a new request, and the chart redraws with its data
    before = len(p.history_requests)
    a100 = p.history_after(lambda: page.select_option("#gpu", "A100-80GB"), "A100-80GB")
    assert len(p.history_requests) == before + 1
    assert "gpu=A100-80GB" in p.history_requests[-1]
    assert_chart_matches(page, a100)
    assert answered(a100) != answered(h100)
    assert "gpu=A100-80GB" in page.evaluate("location.hash")  # the view can be bookmarked

    # another purchase option: spot lines only from the providers that sell spot
    spot = p.history_after(lambda: page.select_option("#purchase", "spot"), "A100-80GB")
    assert "purchase=spot" in p.history_requests[-1]
    assert {s["key"]["provider"] for s in spot["series"]} == {"aws", "azure"}
    assert_chart_matches(page, spot)
    page.screenshot(path=str(tmp_path / "spot.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 560})

    # another range: a day in 15-minute steps
    day = p.history_after(lambda: page.select_option("#range", "24h"), "A100-80GB")
    assert "step=15m" in p.history_requests[-1]
    first, last = _time(day["from"]), _time(day["to"])
    assert timedelta(hours=23) < last - first <= timedelta(hours=24, minutes=15)
    assert_chart_matches(page, day)

    # hiding a line from the legend removes its dots, showing it again brings them back
    page.click('#legend button[data-series="aws"]')
    assert page.locator('#chart g[data-series="aws"]').count() == 0
    page.click('#legend button[data-series="aws"]')
    assert_chart_matches(page, day)

    assert p.errors == []
    p.context.close()
    if shots := os.environ.get("BROKER_UI_SCREENSHOTS"):  # to look at them
        for name in ("dashboard.png", "hover.png", "spot.png"):
            shutil.copy(tmp_path / name, Path(shots) / name)


def test_asks_for_an_api_key_when_the_broker_wants_one_and_sends_it(browser: Any, base_url: str) -> None:
    """Authentication is the API's business: here the browser plays a broker that requires a key (401 without it),
    and the page must ask for one, keep it, and send it as a bearer token."""
    key = "gpb_0123abcd_secret"
    seen: list[str | None] = []

    def guard(route: Any) -> None:
        sent = route.request.headers.get("authorization")
        seen.append(sent)
        if sent == f"Bearer {key}":
            route.continue_()
        else:
            route.fulfill(
                status=401,
                content_type="application/problem+json",
                body='{"status": 401, "title": "Unauthorized", "detail": "this endpoint needs an API key"}',
            )

    p = Page(browser)
    page = p.page
    page.route("**/v1/**", guard)
    page.goto(f"{base_url}/ui")
    page.locator("#key-form").wait_for(state="visible")
    assert page.locator("#health tbody").inner_text().startswith("Could not load sources")
    assert all(s is None for s in seen)

    page.fill("#key", key)
    with page.expect_response(lambda r: "/v1/providers" in r.url and r.status == 200):
        page.click("#key-form button[type=submit]")
    page.wait_for_selector('#health tr[data-source="lambda"]')
    page.wait_for_selector('#chart[data-state="ready"]')
    assert page.locator("#key-form").is_hidden()
    assert seen[-1] == f"Bearer {key}"

    # kept across a reload, then forgotten on request
    page.reload()
    page.wait_for_selector('#health tr[data-source="lambda"]')
    assert page.locator("#key-form").is_hidden()
    page.click("#forget-key")
    page.locator("#key-form").wait_for(state="visible")
    assert page.evaluate("localStorage.length") == 0
    # the only errors are the refused requests' own console lines
    assert all("401" in e for e in p.errors), p.errors
    p.context.close()
