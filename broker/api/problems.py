"""RFC 9457 problem details for every error the API returns: never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from broker.domain import ConfigError

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://gpu-broker.dev/problems/"


class Problem(HTTPException):
    """An error the API answers on purpose, with a slug for ``type`` and optional extension members."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        slug: str | None = None,
        extensions: Mapping[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status, headers=headers)
        self.title = title
        self.slug = slug or title.lower().replace(" ", "-")
        self.extensions = dict(extensions or {})


@dataclass
class FieldError:
    field: str
    message: str


@dataclass
class ProblemDetails:
    """OpenAPI shape of every error body; some carry more extension members (``checks``, ``rejected`` ...)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError] | None = None  # on 400s: one entry per bad field


# Any route behind the API-key guard may answer these (auth is on in production; a key lookup needs the database)
GUARD_ERRORS = (401, 403, 429, 503)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` for a handler: documents its problem answers (this also replaces Litestar's default 400,
    which describes a body shape and media type the broker never sends)."""
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            media_type=MEDIA_TYPE,
            description=HTTPStatus(status).phrase,
            generate_examples=False,
        )
        for status in statuses
    }


def also_answers(*media_types: str) -> type[Operation]:
    """``operation_class=`` for a handler whose success answer has other media types too (CSV, XLSX ...)."""

    @dataclass
    class _Operation(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            content = getattr(ok, "content", None)
            if content is not None:
                for media in media_types:
                    binary = None if media.startswith("text/") else OpenAPIFormat.BINARY
                    content[media] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=binary))

    return _Operation


def problem_response(
    status: int,
    title: str,
    detail: str,
    slug: str,
    instance: str,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extensions or {})
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {}))


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as ``[{"field": "gpu.count", "message": ...}]``: one entry per bad field."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


def invalid_request(exc: ValidationError, what: str = "request") -> Problem:
    errors = field_errors(exc)
    names = ", ".join(e["field"] for e in errors[:5])
    return Problem(
        400,
        "Invalid request",
        f"the {what} has {len(errors)} invalid field(s): {names}",
        slug="invalid-request",
        extensions={"errors": errors},
    )


def _handle_problem(request: Request[Any, Any, Any], exc: Problem) -> Response[dict[str, Any]]:
    return problem_response(
        exc.status_code, exc.title, exc.detail, exc.slug, request.url.path, exc.extensions, exc.headers
    )


def _handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        errors = [
            {"field": str(e.get("key") or e.get("source") or "(request)"), "message": str(e.get("message"))}
            for e in extra
            if isinstance(e, Mapping)
        ]
        return problem_response(
            400, "Invalid request", exc.detail, "invalid-request", request.url.path, {"errors": errors}
        )
    title = {
        404: "Not found",
        405: "Method not allowed",
        413: "Request body too large",
        429: "Too many requests",
        401: "Unauthorized",
        403: "Forbidden",
    }.get(exc.status_code, "HTTP error")
    return problem_response(
        exc.status_code, title, exc.detail, title.lower().replace(" ", "-"), request.url.path, headers=exc.headers
    )


def _handle_config(request: Request[Any, Any, Any], exc: ConfigError) -> Response[dict[str, Any]]:
    return problem_response(400, "Invalid request", str(exc), "invalid-request", request.url.path)


def _handle_validation(request: Request[Any, Any, Any], exc: ValidationError) -> Response[dict[str, Any]]:
    return _handle_problem(request, invalid_request(exc))


def _handle_db(request: Request[Any, Any, Any], exc: OperationalError) -> Response[dict[str, Any]]:
    log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
    return problem_response(
        503,
        "Database unavailable",
        "the database is unreachable; retry shortly",
        "database-unavailable",
        request.url.path,
        headers={"Retry-After": "5"},
    )


def _handle_any(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s", request.url.path)
    return problem_response(
        500, "Internal error", "the broker failed to answer; the error was logged", "internal-error", request.url.path
    )


EXCEPTION_HANDLERS: Mapping[Any, Any] = {
    Problem: _handle_problem,
    HTTPException: _handle_http,
    ConfigError: _handle_config,
    ValidationError: _handle_validation,
    OperationalError: _handle_db,
    Exception: _handle_any,
}
