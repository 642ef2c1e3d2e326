"""The result of a poll that did not run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Skipped:
    source: str
    reason: str  # disabled, unknown kind, missing credentials ... in words a person can act on
