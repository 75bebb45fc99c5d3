"""The sandbox served over real HTTP on a free loopback port, in a thread, for clients that
cannot go through ASGI in-process (HubSpot's official client speaks urllib3)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.sandbox.sandbox import Sandbox


@dataclass
class ServedSandbox:
    url: str
    sandbox: Sandbox


@contextlib.contextmanager
def served_sandbox(config: SandboxConfig) -> Iterator[ServedSandbox]:
    app = create_sandbox_app(config)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    try:
        yield ServedSandbox(f"http://127.0.0.1:{port}", app.state.sandbox)
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()
