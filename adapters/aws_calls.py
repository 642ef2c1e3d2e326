"""boto3 plumbing for the AWS source: the client factory, bounded retries and actionable errors.

botocore's own retries are switched off so that every wait happens here, inside the poll's time budget
(``ctx.remaining_s()``). Credentials problems end the poll at once; transient ones are retried with
exponential backoff and then reported as ``SourceError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.stub import StubAssertionError, UnStubbedResponseError

from adapters.base import SourceContext
from broker.domain import SourceError

# (service, region) -> boto3 client; tests and demo mode pass one that hands out stubbed clients.
ClientFactory = Callable[[str, str], Any]

THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException"})
TRANSIENT_CODES = THROTTLE_CODES | {
    "InternalErrorException",
    "InternalServerException",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
}
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDeniedException",
        "AccessDenied",
        "UnauthorizedOperation",
    }
)
TOKEN_CODES = frozenset({"ExpiredNextTokenException", "InvalidNextTokenException", "InvalidNextToken"})
AUTH_HINT = "check the AWS credential chain (AWS_PROFILE / AWS_ACCESS_KEY_ID) and the IAM permissions"
MAX_BACKOFF_S = 20.0


class PageTokenError(SourceError):
    """A pagination token expired or was refused mid-listing: the listing is incomplete."""


class CredentialsError(SourceError):
    """Credentials are missing or were rejected: nothing else will work either."""


def default_factory(ctx: SourceContext) -> ClientFactory:
    """Live boto3 clients from the standard credential chain, with botocore retries off."""
    session = boto3.session.Session(profile_name=ctx.options.get("profile") or None)
    timeout = max(5.0, min(60.0, ctx.remaining_s()))
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=timeout)
    cache: dict[tuple[str, str], Any] = {}

    def make(service: str, region: str) -> Any:
        if (service, region) not in cache:
            cache[(service, region)] = session.client(service, region_name=region, config=config)  # type: ignore[call-overload]
        return cache[(service, region)]

    return make


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def call(
    ctx: SourceContext,
    what: str,
    fn: Callable[..., Any],
    params: Mapping[str, Any],
    *,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Call one boto3 operation; retry throttling / 5xx / connection errors with backoff in the time budget."""
    delay = 1.0
    for attempt in range(1, max_attempts + 1):
        try:
            result: dict[str, Any] = fn(**params)
            return result
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise CredentialsError(f"{what}: no AWS credentials ({exc}); {AUTH_HINT}") from None
        except ClientError as exc:
            code, status = _code(exc), _status(exc)
            if code in CREDENTIAL_CODES or status in (401, 403):
                raise CredentialsError(f"{what}: credentials rejected ({code or status}); {AUTH_HINT}") from None
            if code in TOKEN_CODES:
                raise PageTokenError(f"{what}: pagination token refused ({code}); the listing is incomplete") from None
            if code not in TRANSIENT_CODES and status < 500:
                raise SourceError(f"{what}: {code or status}: {exc}") from None
            failure = f"{what}: {code or 'HTTP ' + str(status)}" + (" (throttled)" if code in THROTTLE_CODES else "")
        except (ConnectTimeoutError, ReadTimeoutError) as exc:
            failure = f"{what}: timed out ({type(exc).__name__})"
        except (EndpointConnectionError, BotoConnectionError) as exc:
            failure = f"{what}: cannot connect ({exc}); check the network"
        except (UnStubbedResponseError, StubAssertionError) as exc:
            # demo mode and tests: a call the recording does not cover is a missing payload, not a crash
            raise SourceError(f"{what}: no recorded response ({exc})") from None
        except BotoCoreError as exc:
            raise SourceError(f"{what}: {type(exc).__name__}: {exc}") from None
        if attempt == max_attempts or ctx.remaining_s() <= delay:
            raise SourceError(f"{failure}; gave up after {attempt} attempt(s)")
        sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF_S)
    raise AssertionError("unreachable")


def paged(
    ctx: SourceContext,
    what: str,
    fn: Callable[..., Any],
    params: Mapping[str, Any],
    *,
    token_in: str,
    token_out: str,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Yield every page of a NextToken-style listing, each page fetched through :func:`call`."""
    token: str | None = None
    page = 1
    while True:
        request = dict(params)
        if token:
            request[token_in] = token
        result = call(ctx, f"{what} page {page}", fn, request, sleep=sleep)
        yield result
        token = result.get(token_out) or None
        if not token:
            return
        page += 1
