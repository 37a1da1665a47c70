"""``marrow-triage serve``'s uvicorn settings against real sockets: slow and idle clients
are cut off, connections are capped, forwarded headers are believed only when told."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from live_server import LiveServer
from marrow_triage import TriageEngine
from marrow_triage.adapters.service.app import create_app
from marrow_triage.adapters.service.server import guarded_protocol, server_config

TOKEN = "limits-token-0123456789abcdef-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GIVE_UP = 15.0  # the slow client's own patience; the server must cut it off well before


@pytest.fixture(scope="module")
def engine() -> TriageEngine:
    return TriageEngine.default()


def _serve(engine: TriageEngine, **limits: Any) -> LiveServer:
    return LiveServer(lambda url: create_app(engine, token=TOKEN),
                      config=lambda app: server_config(app, log_config=None, **limits))


@pytest.fixture(scope="module")
def quick(engine: TriageEngine) -> Iterator[LiveServer]:
    """A server that gives a client one second to send a whole request."""
    with _serve(engine, request_timeout=1.0) as live:
        yield live


def _connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.settimeout(0.05)
    return sock


def _trickle(sock: socket.socket, data: bytes) -> tuple[bytes, int]:
    """Send ``data`` a byte at a time, 0.1 s apart, until the server hangs up or the
    client gives up; returns what the server answered and how many bytes were sent."""
    answer = b""
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < GIVE_UP:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            chunk = None
        except ConnectionResetError:
            return answer, sent
        if chunk == b"":
            return answer, sent
        if chunk:
            answer += chunk
            continue
        if sent < len(data):
            try:
                sock.sendall(data[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return answer, sent
            sent += 1
        time.sleep(0.1)
    raise AssertionError(f"still connected after {GIVE_UP} s ({sent} bytes sent)")


def test_a_client_sending_headers_byte_by_byte_is_cut_off(quick: LiveServer) -> None:
    """Issue 13: 1,000 such clients stayed connected for 60 s, one descriptor each."""
    headers = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
    with _connect(quick) as sock:
        answer, sent = _trickle(sock, headers + b"\r\n\r\n")
    assert sent < len(headers)  # cut off while still sending headers
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_client_sending_its_body_byte_by_byte_is_cut_off(quick: LiveServer) -> None:
    body = json.dumps({"hours_since_procedure": 1, "note": "x" * 200}).encode()
    head = (b"POST /v1/triage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            b"\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    with _connect(quick) as sock:
        sock.sendall(head)
        answer, sent = _trickle(sock, body)
    assert sent < len(body)
    assert answer == b""  # never triaged: the request was not whole


def test_a_connection_that_sends_nothing_is_closed(quick: LiveServer) -> None:
    with _connect(quick) as sock:
        answer, sent = _trickle(sock, b"")
    assert sent == 0
    assert answer.startswith(b"HTTP/1.1 408 ")


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and a Content-Length body) from a blocking socket."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_requests_that_arrive_in_time_are_served_and_kept_alive(quick: LiveServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", quick.port), timeout=5) as sock:
        sock.sendall(request)
        first = _read_response(sock)
        time.sleep(1.5)  # longer than the request timeout, shorter than keep-alive
        sock.sendall(request)  # the same connection: the deadline restarts per request
        second = _read_response(sock)
    assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nserver:" not in first.lower()  # no product banner


class _SlowEngine(TriageEngine):
    def triage(self, report: Any, locale: str | None = None) -> Any:
        time.sleep(1.5)
        return super().triage(report, locale)


def test_time_spent_triaging_does_not_count(quick: LiveServer) -> None:
    slow = _SlowEngine(TriageEngine.default().pack)
    with LiveServer(lambda url: create_app(slow, token=TOKEN),
                    config=lambda app: server_config(app, log_config=None,
                                                     request_timeout=1.0)) as live:
        response = httpx.post(live.url + "/v1/triage", json={"hours_since_procedure": 20},
                              headers=AUTH, timeout=10)
    assert response.status_code == 200


def test_connections_past_the_cap_are_refused_at_once(engine: TriageEngine) -> None:
    with _serve(engine, request_timeout=30.0, max_connections=3) as live:
        held = [_connect(live) for _ in range(3)]
        try:
            time.sleep(0.2)  # let the server accept all three
            with _connect(live) as extra:
                answer, _ = _trickle(extra, b"")
            assert answer.startswith(b"HTTP/1.1 503 ")
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        assert httpx.get(live.url + "/healthz").status_code == 200


async def _echo_scheme_and_client(scope: Any, receive: Any, send: Any) -> None:
    body = json.dumps({"scheme": scope["scheme"], "client": scope["client"][0]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


def test_forwarded_headers_are_ignored_unless_configured() -> None:
    """Issue 13: uvicorn believed X-Forwarded-Proto from loopback by default."""
    with LiveServer(lambda url: _echo_scheme_and_client,
                    config=lambda app: server_config(app, log_config=None)) as live:
        seen = httpx.get(live.url, headers=FORWARDED).json()
    assert seen == {"scheme": "http", "client": "127.0.0.1"}
    with LiveServer(lambda url: _echo_scheme_and_client,
                    config=lambda app: server_config(app, log_config=None,
                                                     forwarded_allow_ips="127.0.0.1")) as live:
        seen = httpx.get(live.url, headers=FORWARDED).json()
    assert seen == {"scheme": "https", "client": "203.0.113.9"}


@pytest.mark.parametrize(("timeout", "cap"), [(0, 10), (-1, 10), (5, 0)])
def test_nonsense_limits_are_refused(timeout: float, cap: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        guarded_protocol(timeout, cap)
