"""Running the service under uvicorn with the limits an exposed endpoint needs.

uvicorn on its own keeps a connection open for as long as a client takes to send its
headers: 1,000 clients sending a byte now and then held 1,000 sockets for a minute and
more. :func:`server_config` gives ``marrow-triage serve`` its settings:

* every request must arrive whole (request line, headers and body) within
  ``request_timeout`` seconds of its first byte, and a new connection must start one
  within as long; otherwise the connection is closed (``408`` when no request has been
  read yet). Time spent triaging does not count: the clock stops once the request is in.
* at most ``max_connections`` open connections; one more is answered ``503`` and closed
  at once, so a flood of slow clients cannot take every file descriptor;
* headers are limited to 16 KiB, idle keep-alive connections close after 5 s;
* ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are ignored unless ``forwarded_allow_ips``
  names the proxies allowed to set them (uvicorn trusts loopback by default).

The guard is a subclass of uvicorn's h11 protocol: it adds a timer per request and
counts connections, and leaves HTTP parsing to h11.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_REQUEST_TIMEOUT",
    "guarded_protocol",
    "server_config",
]

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 200
KEEP_ALIVE_SECONDS = 5
MAX_HEADER_BYTES = 16 * 1024

_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 15\r\nconnection: close\r\n\r\nRequest Timeout")
_FULL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
         b"content-length: 19\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
         b"Service Unavailable")
_RECEIVING = (h11.IDLE, h11.SEND_BODY)  # the client's side while a request is incomplete

_log = logging.getLogger("marrow_triage.adapters.service.server")


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline per request and a cap on connections."""

    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            _log.warning("connection refused: %d connections open (the limit)",
                         self.max_connections)
            transport.write(_FULL)
            transport.close()
            return
        self._arm()  # a connection that never sends a byte is closed too

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state in _RECEIVING:
            self._arm()  # the first bytes of a request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state not in _RECEIVING:
            self._disarm()  # the whole request is in (or the connection is done)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _RECEIVING:
            return
        _log.info("closed a connection that did not send a whole request in %g s",
                  self.request_timeout)
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            self.transport.write(_TIMED_OUT)  # no request read: nothing else will answer
        self.transport.close()


def guarded_protocol(request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                     max_connections: int = DEFAULT_MAX_CONNECTIONS) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with these limits (pass it as ``Config(http=...)``)."""
    if not request_timeout > 0:
        raise ValueError("request_timeout must be a positive number of seconds")
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), {
        "request_timeout": float(request_timeout), "max_connections": max_connections,
    })


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    forwarded_allow_ips: str | None = None,
    log_level: str = "info",
    **extra: Any,
) -> uvicorn.Config:
    """The uvicorn configuration ``marrow-triage serve`` runs with (see the module doc).

    ``forwarded_allow_ips``: the proxies (comma-separated addresses, or ``*``) whose
    ``X-Forwarded-*`` headers are believed; ``None`` believes nobody's.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # The cap is kept at accept time: uvicorn's limit_concurrency answers 503 only
        # once the headers are in, too late against clients that never finish them.
        http=guarded_protocol(request_timeout, max_connections),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        log_level=log_level,
        **extra,
    )
