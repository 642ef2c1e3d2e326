"""Replay recorded Cloud Billing pages through google-cloud-billing's own REST transport.

A ``requests`` transport adapter mounted on the transport's session answers each request from a handler, so
the client, its request encoding, JSON-to-proto parsing and error mapping all run as in production. Demo mode
uses it with the project's recorded pages; tests use it with recorded pages and injected faults.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.billing_v1 import CloudCatalogClient
from google.cloud.billing_v1.services.cloud_catalog.transports.rest import CloudCatalogRestTransport
from requests.adapters import BaseAdapter

from adapters.base import DEMO_PAYLOADS

# request -> (HTTP status, body bytes); may raise a requests exception to simulate a network failure
Handler = Callable[[requests.PreparedRequest], tuple[int, bytes]]


class _ReplayAdapter(BaseAdapter):
    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self._handler = handler

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        status, body = self._handler(request)
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.headers["content-type"] = "application/json"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        return None


def replay_client(handler: Handler) -> CloudCatalogClient:
    """A real CloudCatalogClient on the REST transport whose HTTP calls ``handler`` answers."""
    transport = CloudCatalogRestTransport(credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    transport._session.mount("https://", _ReplayAdapter(handler))
    return CloudCatalogClient(transport=transport, client_options=ClientOptions())


def page_token(request: requests.PreparedRequest) -> str:
    return parse_qs(urlparse(request.url or "").query).get("pageToken", [""])[0]


def pages_handler(pages: Mapping[str, bytes]) -> Handler:
    """Serve ``pages`` by page token ("" = first page); an unknown token is a 400 like the live API's."""

    def handle(request: requests.PreparedRequest) -> tuple[int, bytes]:
        token = page_token(request)
        if token in pages:
            return 200, pages[token]
        error = {"error": {"code": 400, "message": f"Invalid page token {token!r}", "status": "INVALID_ARGUMENT"}}
        return 400, json.dumps(error).encode()

    return handle


def demo_client(root: Path = DEMO_PAYLOADS / "gcp") -> CloudCatalogClient:
    """The project's recorded pages: ``manifest.json`` maps page tokens to files."""
    manifest: dict[str, str] = json.loads((root / "manifest.json").read_text())
    return replay_client(pages_handler({token: (root / name).read_bytes() for token, name in manifest.items()}))
