"""Request bodies of the key endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from broker.auth.service import Scope


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    rate_per_second: float | None = Field(default=None, ge=0, le=1_000_000, description="0: unlimited")
    burst: int | None = Field(default=None, ge=1, le=1_000_000)
