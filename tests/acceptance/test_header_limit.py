"""Request headers past 64 KiB in all are refused with 431 as soon as they pass it, not read
to their end: a real `hubsync serve` process, spoken to over a raw socket (an HTTP client
would refuse to send such headers itself)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.acceptance.test_embedded_default import free_port
from tests.acceptance.test_production_safety import clean_env, serve, stop, wait_until_up
from tests.acceptance.test_slow_clients import rss_mib

pytestmark = pytest.mark.slow
HUGE = 64 << 20
CHUNK = 64 << 10
LIMIT = 64 << 10  # the stated limit (README, openapi.yaml)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    number = free_port()
    env = clean_env(HUBSYNC_MODE="demo", HUBSYNC_WORKER="false", HUBSYNC_LOG_LEVEL="WARNING")
    server = serve(env, number, cwd=tmp_path_factory.mktemp("serve"))
    try:
        wait_until_up(f"http://127.0.0.1:{number}/readyz", server)
        yield number, server.pid
    finally:
        log = stop(server)
        assert "Traceback" not in log, log[-3000:]


def _answer(connection: socket.socket, seconds: float = 10.0) -> bytes:
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionError):
        pass
    return received


def test_headers_past_the_limit_are_431_before_their_end(port: tuple[int, int]) -> None:
    number, _ = port
    with socket.create_connection(("127.0.0.1", number)) as connection:
        # Twice the limit, and never the blank line that would end the headers.
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2 * CHUNK)
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"request_header_fields_too_large" in answer
    assert str(LIMIT).encode() in answer


def test_many_small_headers_add_up_to_the_limit(port: tuple[int, int]) -> None:
    number, _ = port
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(1000))  # ~110 KiB
    with socket.create_connection(("127.0.0.1", number)) as connection:
        connection.sendall(
            b"POST /v1/sync/process-queue HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            + many
            + b"\r\n{}"
        )
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_headers_under_the_limit_are_served(port: tuple[int, int]) -> None:
    number, _ = port
    some = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(500))  # ~55 KiB
    with socket.create_connection(("127.0.0.1", number)) as connection:
        connection.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + some + b"\r\n"
        )
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_one_64_mib_header_is_refused_without_being_held(port: tuple[int, int]) -> None:
    number, pid = port
    before = rss_mib(pid)
    answers: list[bytes] = []
    with socket.create_connection(("127.0.0.1", number)) as connection:
        reader = threading.Thread(target=lambda: answers.append(_answer(connection, 30.0)))
        reader.start()
        try:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ")
            for _ in range(HUGE // CHUNK):
                connection.sendall(b"a" * CHUNK)
            connection.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what is wanted
        reader.join(40)
    grown = rss_mib(pid) - before
    assert answers, "no answer"
    assert answers[0].startswith(b"HTTP/1.1 431 "), answers[0][:200]
    assert grown < 16, f"the server grew by {grown:.0f} MiB"


def test_the_server_still_serves_after_refusals(port: tuple[int, int]) -> None:
    number, _ = port
    with socket.create_connection(("127.0.0.1", number)) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 200 ")
