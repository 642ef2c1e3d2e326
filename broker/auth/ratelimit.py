"""Per-key token buckets, in memory: each replica limits on its own (N replicas allow up to N times the rate)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``take`` spends one token from the bucket named ``key``; buckets refill at ``rate`` tokens/s up to ``burst``."""

    MAX_BUCKETS = 100_000  # idle full buckets are dropped beyond this (they carry no information)

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float, burst: int) -> float:
        """0.0 when the request may proceed, else the seconds until a token is available. rate <= 0: unlimited."""
        if rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.MAX_BUCKETS:
                    self._prune(now, rate, burst)
                bucket = self._buckets[key] = _Bucket(float(burst), now)
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate

    def _prune(self, now: float, rate: float, burst: int) -> None:
        full_after = burst / rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}
