"""A real uvicorn server on a loopback port, in a thread, for clients that speak HTTP themselves."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import uvicorn

from polycolbert.server.cross_site import SitePolicy

IN_PROCESS = SitePolicy(allowed_hosts=("testserver",))
"""What an app driven by Starlette's TestClient needs: its requests carry ``Host: testserver``."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app):
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
