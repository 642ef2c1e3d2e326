"""Bulk work in a background thread of a serving process, paced so that the requests keep the interpreter.

An API process rebuilds its offer index (seconds of interpreter time at 100k offers) in a thread beside the event
loop, and only one of them can hold the GIL. Left alone, the rebuild takes about half of it, and under load the
requests queue behind it for hundreds of milliseconds. Paced, the rebuild runs in short slices and sleeps between
them (a sleep releases the GIL), so it takes at most a set share of the time: it finishes a few seconds later and
the requests hardly notice it.

The bulk loops call ``pause_point()`` every few hundred items; outside a ``paced()`` block (the CLI, the
scheduler, the first load at start) that costs a thread-local lookup and nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_local = threading.local()


class _Pacer:
    __slots__ = ("rest_s", "slice_s", "started")

    def __init__(self, share: float, slice_s: float) -> None:
        self.slice_s = slice_s
        self.rest_s = slice_s * (1 - share) / share
        self.started = time.perf_counter()

    def pause(self) -> None:
        if time.perf_counter() - self.started >= self.slice_s:
            time.sleep(self.rest_s)
            self.started = time.perf_counter()


@contextmanager
def paced(share: float, slice_s: float = 0.002) -> Iterator[None]:
    """Within the block, this thread's bulk loops run in slices of ``slice_s`` seconds and rest in between, so
    that they take at most ``share`` (0 < share <= 1) of the wall-clock time. Wall clock, not CPU time: a slice in
    which the thread waited for a core or for the GIL counts as used."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], not {share}")
    previous = getattr(_local, "pacer", None)
    _local.pacer = _Pacer(share, slice_s) if share < 1 else None
    try:
        yield
    finally:
        _local.pacer = previous


def active() -> bool:
    """Whether this thread is pacing (bulk code may then prefer steps that hold the GIL briefly to faster ones)."""
    return getattr(_local, "pacer", None) is not None


def release(objects: list[object], slice_len: int = 256) -> None:
    """Drop the references in ``objects`` a slice at a time, with a pause point after each slice.

    Freeing a whole index at once (100k offers, each with its key, attributes and numbers) holds the GIL for a
    few hundred milliseconds in one go; collect its per-offer objects in a list, drop the containers, then this.
    """
    while objects:
        del objects[-slice_len:]
        pause_point()


def pause_point() -> None:
    """Where a paced bulk loop may rest: call it every few hundred items (or milliseconds) of work."""
    pacer: _Pacer | None = getattr(_local, "pacer", None)
    if pacer is not None:
        pacer.pause()


@contextmanager
def one_at_a_time(lock_file: Path) -> Iterator[None]:
    """Among the processes of one machine that use ``lock_file``: one at a time inside the block (flock).

    The API processes of ``serve --workers N`` all see a poll at once; rebuilding one after the other instead of
    together halves the background load in those seconds. Without a usable lock file, no waiting."""
    try:
        import fcntl

        handle = lock_file.open("a+b")
    except (ImportError, OSError) as exc:
        log.debug("no machine-wide rebuild lock (%s)", exc)
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits without the GIL
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
