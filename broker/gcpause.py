"""Bulk work on hundreds of thousands of long-lived objects runs with the cycle collector paused.

Those objects hold no reference cycles, but allocating them triggers full collections that walk every live object
again and again (up to half the time of an ingest, an index rebuild or a placement preparation), and can free
nothing. Reference counting still frees everything meanwhile.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause cyclic collection for the block; a nested or concurrent pause that found it off leaves it off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
