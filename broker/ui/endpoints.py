"""``GET /ui``: the dashboard page, and its static assets under ``/ui/static``.

The page is plain HTML, CSS and JavaScript shipped in ``static/`` (no build step, nothing loaded from elsewhere);
its Content-Security-Policy allows only this origin, so a stray CDN reference fails loudly instead of leaking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# The page and its assets hold no data: they are public; the API calls the page makes carry the user's key.
PUBLIC = {"public": True}


@get("/ui", sync_to_thread=False, include_in_schema=False, opt=PUBLIC)
def dashboard(request: Request[Any, Any, Any]) -> Response[bytes] | Redirect:
    # The page links its assets and the API relatively ("ui/static/..", "v1/.."), which resolve right only from
    # "/ui" (also behind a path prefix): send "/ui/" there.
    raw = request.scope.get("raw_path") or request.scope["path"].encode()  # Litestar strips the slash from "path"
    if raw.endswith(b"/"):
        return Redirect(path="../ui", status_code=308)
    return Response((STATIC_DIR / "index.html").read_bytes(), media_type=MediaType.HTML, headers=PAGE_HEADERS)


static_router = create_static_files_router(
    path="/ui/static",
    directories=[STATIC_DIR],
    name="ui-static",
    # no build step means no hashed file names: let browsers revalidate instead of serving a stale script
    cache_control=CacheControlHeader(no_cache=True),
    include_in_schema=False,
    opt=PUBLIC,
)

ROUTES: list[Any] = [dashboard, static_router]
