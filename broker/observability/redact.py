"""Known secret values (provider credentials, the database password) and their removal from text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# credential variables the sources read, plus any variable whose name says it holds a secret
PROVIDER_SECRET_VARS = frozenset({
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LAMBDA_API_KEY",
    "CRUSOE_ACCESS_KEY",
    "CRUSOE_SECRET_KEY",
    "GCP_API_KEY",
    "AZURE_CLIENT_SECRET",
    "COREWEAVE_API_KEY",
})
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_LEN = 8  # shorter values ("1", "true") would redact ordinary words
MASK = "[REDACTED]"


def secrets_in_env(env: Mapping[str, str]) -> list[str]:
    """Values of secret-looking variables and the password of BROKER_DATABASE_URL, longest first."""
    found = {
        value
        for name, value in env.items()
        if (name in PROVIDER_SECRET_VARS or SECRET_NAME.search(name)) and len(value) >= MIN_SECRET_LEN
    }
    url = env.get("BROKER_DATABASE_URL")
    if url:
        try:
            password = make_url(url).password
        except ArgumentError:
            password = None
        if password and len(str(password)) >= MIN_SECRET_LEN:
            found.add(str(password))
    return sorted(found, key=len, reverse=True)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        merged = {*self.secrets, *(s for s in secrets if len(s) >= MIN_SECRET_LEN)}
        self.secrets = tuple(sorted(merged, key=len, reverse=True))
        self._pattern = re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)
