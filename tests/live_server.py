"""A real uvicorn server on a free loopback port, in a background thread, for HTTP tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn


class LiveServer:
    """``with LiveServer(lambda url: create_app(...)) as server: httpx.get(server.url)``.

    The socket is bound first, so the app factory gets the server's own URL (the CDS
    Hooks JWT audience). ``config`` builds the uvicorn settings from the app (default:
    uvicorn's own).
    """

    def __init__(self, app_factory: Callable[[str], Any],
                 config: Callable[[Any], uvicorn.Config] | None = None) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app_factory(self.url)
        # log_config=None: uvicorn's loggers propagate to the root logger (and caplog).
        settings = (config(self.app) if config is not None
                    else uvicorn.Config(self.app, log_config=None, access_log=True,
                                        lifespan="off"))
        self.server = uvicorn.Server(settings)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        # Wait for startup; bounded so a broken server fails the test instead of hanging.
        for _ in range(3000):
            if self.server.started or not self._thread.is_alive():
                break
            self._thread.join(0.01)
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._socket.close()
