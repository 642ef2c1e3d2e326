"""``/ui`` and its assets over HTTP (no browser): served by the broker itself, nothing fetched from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from broker.ui.endpoints import ROUTES, STATIC_DIR

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
JS_IMPORT = re.compile(r"""^\s*import\s[^;]*?from\s+["']([^"']+)["']""", re.MULTILINE)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    with TestClient(app=Litestar(route_handlers=ROUTES)) as c:
        yield c


def test_page_is_served_with_a_same_origin_only_policy(client: TestClient[Litestar]) -> None:
    r = client.get("/ui")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = dict(part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "img-src", "connect-src"):
        assert csp[directive] == "'self'", directive
    assert "<title>" in r.text


def test_trailing_slash_redirects_to_the_page(client: TestClient[Litestar]) -> None:
    r = client.get("/ui/", follow_redirects=False)
    assert r.status_code == 308
    assert r.headers["location"] == "../ui"
    assert client.get("/ui/").url.path == "/ui"


def test_every_asset_the_page_loads_is_served_locally(client: TestClient[Litestar]) -> None:
    parser = _Refs()
    parser.feed(client.get("/ui").text)
    refs = list(parser.refs)
    assert len(refs) >= 3  # icon, stylesheet, script
    seen: set[str] = set()
    while refs:
        ref = refs.pop()
        # relative to /ui: no scheme, no host, no absolute path (which would break behind a path prefix)
        assert not re.match(r"^([a-z][a-z0-9+.-]*:|//|/)", ref, re.IGNORECASE), ref
        assert ref.startswith("ui/static/"), ref
        if ref in seen:
            continue
        seen.add(ref)
        r = client.get(f"/{ref}")
        assert r.status_code == 200, ref
        suffix = ref[ref.rindex(".") :]
        assert r.headers["content-type"].startswith(CONTENT_TYPES[suffix]), ref
        if suffix == ".js":  # module imports are relative to the importing file
            refs += ["ui/static/" + m.removeprefix("./") for m in JS_IMPORT.findall(r.text)]
    assert "ui/static/chart.js" in seen


def test_static_files_name_no_other_host() -> None:
    allowed = {"http://www.w3.org/2000/svg"}  # the SVG namespace, an identifier that is never fetched
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", path.read_text(encoding="utf-8")))
            assert urls <= allowed, f"{path.name}: {urls - allowed}"


def test_no_file_outside_the_static_folder_is_served(client: TestClient[Litestar]) -> None:
    for path in ("/ui/static/../endpoints.py", "/ui/static/%2e%2e/endpoints.py", "/ui/static/missing.js"):
        assert client.get(path).status_code == 404, path
