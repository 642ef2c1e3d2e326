"""``broker serve --workers N``: N API processes on one port, each with its own listening socket.

uvicorn's supervisor hands every worker the same listening socket, and whichever worker wakes first accepts a whole
burst of new connections: a client pool that connects at once ends up mostly on one worker (under load the two
workers of a 2-core machine ran at 81% and 50% CPU). With ``SO_REUSEPORT`` each worker listens on a socket of its
own and the kernel (Linux) spreads connections over the sockets by their address hash. uvicorn's supervisor
(health checks, restarts, signals) is kept; only the sockets it hands out differ.
"""

from __future__ import annotations

import logging
import socket

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

log = logging.getLogger(__name__)


def reuse_port_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound with ``SO_REUSEPORT`` (other sockets of this user may bind the same address), listening
    unless ``listen`` is false: a bound socket that does not listen holds the port without receiving connections."""
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's ``Multiprocess``, except that every worker it starts (or restarts) gets a new socket of its own.

    The supervisor reads ``self.sockets`` exactly when it starts a worker process, so serving a fresh socket
    from that attribute gives each worker its own. A dead worker's socket is closed when its process object is
    dropped, so the kernel stops routing connections to it."""

    def __init__(self, config: Config) -> None:
        # held (not listening) for the supervisor's lifetime: a port taken by another program fails here, at once
        self._probe = reuse_port_socket(config.host, config.port, listen=False)
        config.port = self._probe.getsockname()[1]  # port 0: every worker on the port the kernel chose
        super().__init__(config, sockets=[])

    @property
    def sockets(self) -> list[socket.socket]:
        return [reuse_port_socket(self.config.host, self.config.port)]

    @sockets.setter
    def sockets(self, _value: list[socket.socket]) -> None:
        """The base class stores the shared socket list here; each worker gets its own instead."""

    def run(self) -> None:
        try:
            log.info("serving on %s:%d with %d workers, one socket each", self.config.host, self.config.port,
                     self.processes_num)  # fmt: skip
            super().run()
        finally:
            self._probe.close()
