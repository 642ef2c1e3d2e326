"""Settings: the environment (``BROKER_*``) plus ``config/broker.toml``, validated once at start.

A wrong value raises ``ConfigError`` with one line naming the setting and what is wrong; the CLI prints it and
exits non-zero instead of starting half-configured.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.domain import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "broker.toml"


class SourceSection(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: str
    enabled: bool = True
    interval_minutes: float = Field(default=60, gt=0)
    jitter_seconds: float = Field(default=30, ge=0)
    timeout_seconds: float = Field(default=300, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)


class IngestSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_withdraw_share: float = Field(default=0.30, ge=0, le=1)


class ServerSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    auth: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    index_refresh_seconds: float = Field(default=5, gt=0)
    # the largest share of the time an API process gives its bulk background work while it serves: the index
    # rebuild after a poll, the decision log catching up after the database was away (1: no pacing)
    background_share: float = Field(default=0.25, gt=0, le=1)
    rate_limit_per_second: float = Field(default=50, ge=0)  # per API key (per client address with auth off)
    rate_limit_burst: int = Field(default=100, ge=1)


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: dict[str, SourceSection] = Field(default_factory=dict)
    ingest: IngestSection = Field(default_factory=IngestSection)
    server: ServerSection = Field(default_factory=ServerSection)
    placement: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    kind: str
    enabled: bool
    interval_minutes: float
    jitter_seconds: float
    timeout_seconds: float
    max_attempts: int
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    config_path: Path
    data_dir: Path
    sources: Mapping[str, SourceConfig]
    ingest: IngestSection
    server: ServerSection
    placement: Mapping[str, Any]

    @property
    def config_dir(self) -> Path:
        return self.config_path.parent


def _first_error(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{where}: setting '{loc}': {err['msg']}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    config_path = Path(env.get("BROKER_CONFIG") or DEFAULT_CONFIG)
    data_dir = Path(env.get("BROKER_DATA_DIR") or PROJECT_ROOT / "data")
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"BROKER_CONFIG: {config_path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"BROKER_CONFIG: {config_path} is not valid TOML: {exc}") from None
    try:
        cfg = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, str(config_path))) from None

    database_url = env.get("BROKER_DATABASE_URL") or ""
    if not database_url:
        database_url = f"sqlite:///{data_dir / 'broker.db'}"
    elif not database_url.startswith(("sqlite", "postgresql")):
        raise ConfigError("BROKER_DATABASE_URL: must be a sqlite:/// or postgresql+psycopg:// URL")
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")

    known_fields = set(SourceSection.model_fields)
    sources = {
        name: SourceConfig(
            name=name,
            kind=s.kind,
            enabled=s.enabled,
            interval_minutes=s.interval_minutes,
            jitter_seconds=s.jitter_seconds,
            timeout_seconds=s.timeout_seconds,
            max_attempts=s.max_attempts,
            options={k: v for k, v in s.model_dump().items() if k not in known_fields},
        )
        for name, s in cfg.sources.items()
    }
    return Settings(
        database_url=database_url,
        config_path=config_path,
        data_dir=data_dir,
        sources=sources,
        ingest=cfg.ingest,
        server=cfg.server,
        placement=cfg.placement,
    )
