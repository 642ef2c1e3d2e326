"""The one small interface every price source implements.

A source turns a provider's API (or a file) into a :class:`~broker.domain.Snapshot`. It never touches the
database: ingest is the only writer of prices. Sources are registered by entry point (group
``broker.sources``, name = the source *kind* used in ``config/broker.toml``).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import httpx

from broker.domain import Snapshot, utcnow
from broker.gpus import GpuCatalog

DEMO_PAYLOADS = Path(__file__).parent / "demo_payloads"


@dataclass(slots=True)
class SourceContext:
    """What the framework hands a source for one poll."""

    name: str  # the configured source name (a section of broker.toml)
    options: Mapping[str, Any]  # that section's options
    env: Mapping[str, str]  # environment, for credentials
    catalog: GpuCatalog
    config_dir: Path  # the directory of broker.toml, for relative paths (rate cards ...)
    demo: bool = False  # replay the project's recorded payloads instead of calling the live API
    http: httpx.Client | None = None  # injected by tests (MockTransport) and by demo mode
    timeout_s: float = 120.0  # the poll's time budget
    now: Callable[[], datetime] = field(default=utcnow)
    started: float = field(default_factory=time.monotonic)

    def remaining_s(self) -> float:
        return self.timeout_s - (time.monotonic() - self.started)


class Source(abc.ABC):
    kind: ClassVar[str]
    naming: ClassVar[str]  # the GPU catalog alias namespace its gpu names use

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx

    def missing_credentials(self) -> str | None:
        """Why this source cannot poll live (e.g. "LAMBDA_API_KEY is not set"), or None when it can."""
        return None

    @abc.abstractmethod
    def fetch(self) -> Snapshot:
        """Poll the source once. Raise ``SourceError`` with an actionable message when nothing usable came back."""


def load_source_class(kind: str) -> type[Source]:
    """The Source class registered for ``kind``; raises KeyError naming the known kinds."""
    found = {ep.name: ep for ep in entry_points(group="broker.sources")}
    if kind not in found:
        raise KeyError(f"unknown source kind {kind!r} (known: {', '.join(sorted(found)) or 'none'})")
    cls = found[kind].load()
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise TypeError(f"entry point {kind!r} does not name a Source subclass")
    return cls


def registered_kinds() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="broker.sources"))
