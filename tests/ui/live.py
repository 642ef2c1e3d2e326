"""The real app served by uvicorn on a free loopback port, in a thread, for a browser to talk to."""

from __future__ import annotations

import importlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from litestar import Litestar

from broker.api.app import create_app
from broker.runtime import Runtime

# (path the dashboard needs, module whose ROUTES serve it): registered here only while create_app does not yet
OWN_ROUTES = (("/ui", "broker.ui.endpoints"), ("/v1/prices/history", "broker.history.endpoints"))


def dashboard_app(runtime: Runtime) -> Litestar:
    app = create_app(runtime)
    served = {route.path for route in app.routes}
    for path, module in OWN_ROUTES:
        if path not in served:
            for handler in importlib.import_module(module).ROUTES:
                app.register(handler)
    return app


@contextmanager
def serve(app: Litestar) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
