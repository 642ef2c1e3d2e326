"""Random (version 4) UUIDs for placements and request ids, from the OS's random source a block at a time.

``uuid.uuid4()`` asks the kernel for 16 bytes per id, and ``os.urandom`` lets go of the interpreter for that call:
in a serving process each id is then a chance for a background thread (index rebuild, decision writer) to take the
interpreter from the request for a switch interval. One call per 256 ids keeps the ids as unpredictable (the same
source) and takes that chance away from nearly every request.
"""

from __future__ import annotations

import os
import threading
import uuid

_BLOCK = 16 * 256


class _RandomBlocks:
    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        """Start afresh: a new lock (another thread may have held the old one at a fork) and no block."""
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def take16(self) -> bytes:
        with self._lock:
            if self._at >= len(self._block):
                self._block, self._at = os.urandom(_BLOCK), 0
            start = self._at
            self._at += 16
            return self._block[start : start + 16]


_blocks = _RandomBlocks()
# a forked child must not hand out the ids its parent has left in the block
os.register_at_fork(after_in_child=_blocks.renew)


def random_uuid() -> uuid.UUID:
    """A version 4 UUID, as ``uuid.uuid4()`` makes."""
    return uuid.UUID(bytes=_blocks.take16(), version=4)
