"""The HTTP server's limits and timeouts, over real sockets against a real `leads-api serve`:
oversized request lines and headers, slow headers and bodies, idle and surplus connections,
malformed requests in the envelope, an oversized body's 413 read by a real client, and the
log staying quiet (a vanished client is one INFO line, a malformed request no line)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from leads_api.errors import UsageError
from leads_api.server.limits import HttpLimits, described
from server import Server, running_server

pytestmark = pytest.mark.server

TIMEOUT_S = 1.0  # the headers, body and keep-alive timeouts of these servers
LIMIT_ENV = {
    "LEADS_HTTP_HEADERS_TIMEOUT_S": str(TIMEOUT_S),
    "LEADS_HTTP_BODY_TIMEOUT_S": str(TIMEOUT_S),
    "LEADS_HTTP_KEEPALIVE_S": str(TIMEOUT_S),
    "LEADS_LOG_LEVEL": "info",
}
MIB = 1024 * 1024
# A request that others make while one client misbehaves must not be delayed measurably.
UNDISTURBED_S = 0.5


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(database_url, tmp_path_factory.mktemp("limits"), env=LIMIT_ENV) as s:
        yield s


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


def connect(server: Server, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, started: float) -> Answer:
    """One HTTP response from `sock` (with a Content-Length), parsed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        rest += chunk
    return Answer(int(lines[0].split()[1]), headers, orjson.loads(rest[:length]),
                  time.monotonic() - started)


def exchange(server: Server, request: bytes) -> Answer:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(request)
        return read_answer(sock, started)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        return False


def assert_envelope(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer
    assert answer.body["success"] is False
    assert answer.body["error"]["code"] == code, answer.body
    assert answer.headers["x-request-id"] == answer.body["meta"]["requestId"]
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    error: dict[str, Any] = answer.body["error"]
    return error


def check_seconds(server: Server) -> float:
    """How long an ordinary request takes right now (a fresh connection each time)."""
    start = time.monotonic()
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.get("/api/check").status_code == 401
    return time.monotonic() - start


def log_lines(server: Server) -> list[str]:
    return server.log().splitlines()


# --- malformed requests: the envelope, and no log line ----------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/le ads HTTP/1.1\r\nHost: x\r\n\r\n",  # a space in the request target
        b"GET /api/check HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",  # a control character
        b"POST /api/stats HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/stats HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS spoken to plain HTTP
    ],
    ids=["space-in-target", "control-char", "bad-length", "two-lengths", "tls"],
)
def test_a_malformed_request_is_a_400_envelope(server: Server, request_bytes: bytes) -> None:
    error = assert_envelope(exchange(server, request_bytes), 400, "VALIDATION_ERROR")
    assert error["message"].startswith("Malformed HTTP request")
    assert error["details"] == {"parameter": "request"}


def test_malformed_requests_are_counted_not_logged(server: Server) -> None:
    before = len(log_lines(server))
    for _ in range(200):
        exchange(server, b"GET /a b HTTP/1.1\r\n\r\n")
    time.sleep(0.2)
    assert log_lines(server)[before:] == []


# --- sizes: request line and headers -------------------------------------------------------


def test_a_long_request_line_is_414_at_once_and_delays_nobody(server: Server) -> None:
    """The probe's 50 MB request line: refused after 8 KiB, while others are served."""
    results: dict[str, Any] = {}

    def blast() -> None:
        with connect(server) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /" + b"a" * MIB)  # the first of 50 MiB
            results["answer"] = read_answer(sock, started)
            try:
                for _ in range(49):
                    sock.sendall(b"a" * MIB)
            except OSError:
                results["cut"] = True  # the server stops reading after a bounded amount

    thread = threading.Thread(target=blast)
    thread.start()
    others = [check_seconds(server) for _ in range(5)]
    thread.join(30)
    error = assert_envelope(results["answer"], 414, "URI_TOO_LONG")
    assert error["details"] == {"maxBytes": 8192}
    assert results["answer"].seconds < UNDISTURBED_S
    assert results.get("cut") is True
    assert max(others) < UNDISTURBED_S, others


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-H-%d: v\r\n" % i for i in range(20_000)),  # the probe's 20,000 headers
        b"X-Big: " + b"v" * (40 * 1024) + b"\r\n",  # one header over the 32 KiB of all
        b"".join(b"X-H-%d: v\r\n" % i for i in range(101)),  # one field over the count
    ],
    ids=["20000-headers", "one-huge-header", "101-headers"],
)
def test_too_many_or_too_large_headers_are_431(server: Server, headers: bytes) -> None:
    answer = exchange(server, b"GET /api/check HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert_envelope(answer, 431, "HEADERS_TOO_LARGE")


def test_headers_within_the_limits_are_served(server: Server) -> None:
    headers = b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * 200) for i in range(90))
    answer = exchange(server, b"GET /api/check HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.status == 401  # the app answered: no key


# --- time: slow headers, slow bodies, idle connections --------------------------------------


def trickle(sock: socket.socket, data: bytes, every_s: float) -> None:
    """Send `data` a byte at a time until the server stops listening."""
    try:
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(every_s)
    except OSError:
        pass


def slow_client(server: Server, head: bytes, slow_part: bytes) -> Answer:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(head)
        sender = threading.Thread(target=trickle, args=(sock, slow_part, 0.2), daemon=True)
        sender.start()
        return read_answer(sock, started)


def test_forty_clients_sending_headers_slowly_get_408_and_delay_nobody(server: Server) -> None:
    head = b"GET /api/check HTTP/1.1\r\n"
    slow = b"X-Slow: " + b"s" * 200 + b"\r\n\r\n"
    with ThreadPoolExecutor(40) as pool:
        futures = [pool.submit(slow_client, server, head, slow) for _ in range(40)]
        time.sleep(0.3)
        others = [check_seconds(server) for _ in range(3)]
        answers = [f.result(timeout=30) for f in futures]
    for answer in answers:
        assert_envelope(answer, 408, "REQUEST_TIMEOUT")
        assert TIMEOUT_S - 0.1 <= answer.seconds < TIMEOUT_S + 1.0
    assert max(others) < UNDISTURBED_S, others


def test_a_body_sent_slowly_is_408(server: Server, api_key: str) -> None:
    head = (
        b"POST /api/stats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-API-KEY: " + api_key.encode() + b"\r\nContent-Length: 100\r\n\r\n"
    )
    answer = slow_client(server, head, b"{" + b" " * 99)
    error = assert_envelope(answer, 408, "REQUEST_TIMEOUT")
    assert "body" in error["message"]
    assert TIMEOUT_S - 0.1 <= answer.seconds < TIMEOUT_S + 1.0


def test_a_silent_connection_is_closed(server: Server) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        assert closed_by_server(sock)
        assert TIMEOUT_S - 0.1 <= time.monotonic() - started < TIMEOUT_S + 1.0


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api/check HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_answer(sock, time.monotonic())
        assert answer.status == 401
        started = time.monotonic()
        assert closed_by_server(sock)
        assert time.monotonic() - started < TIMEOUT_S + 1.0


# --- the connection cap ----------------------------------------------------------------------


def test_a_connection_over_the_cap_is_503_with_retry_after(
    sqlite_url: str, tmp_path: Path
) -> None:
    with running_server(sqlite_url, tmp_path, env={"LEADS_HTTP_MAX_CONNECTIONS": "4"}) as server:
        held = [connect(server) for _ in range(4)]
        time.sleep(0.2)
        answer = exchange(server, b"GET /api/check HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_envelope(answer, 503, "SERVICE_UNAVAILABLE")
        assert answer.headers["retry-after"] == "2"
        held.pop().close()
        time.sleep(0.2)
        assert exchange(server, b"GET /api/check HTTP/1.1\r\nHost: x\r\n\r\n").status == 401
        for sock in held:
            sock.close()


# --- an oversized body: the client reads the 413 ---------------------------------------------


def urllib_post(server: Server, api_key: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        server.base_url + "/api/leads", data=body, method="POST",
        headers={"X-API-KEY": api_key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


@pytest.mark.parametrize("size", [MIB + 100_000, 4 * MIB])
def test_urllib_sending_too_much_reads_the_413_every_time(
    server: Server, api_key: str, size: int
) -> None:
    body = b'{"name": "' + b"x" * size + b'"}'
    for _ in range(30):
        status, answer = urllib_post(server, api_key, body)
        assert status == 413, answer
        assert answer["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_keep_alive_client_reads_the_413_and_carries_on(server: Server, api_key: str) -> None:
    with server.client(api_key) as http:
        for _ in range(10):
            response = http.post("/api/leads", content=b"x" * (MIB + 1),
                                 headers={"Content-Type": "application/json"})
            assert response.status_code == 413, response.text
            assert http.get("/api/check").status_code == 200


# --- a client that hangs up ----------------------------------------------------------------


def test_a_client_that_hangs_up_is_one_info_line(server: Server, api_key: str) -> None:
    """The probe's request: Content-Length 100, a body of `{`, then the socket closed."""
    before = len(log_lines(server))
    for _ in range(10):
        with connect(server) as sock:
            sock.sendall(
                b"POST /api/stats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-API-KEY: " + api_key.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
            )
            time.sleep(0.1)  # the app is waiting for the rest of the body
    assert check_seconds(server) < UNDISTURBED_S
    time.sleep(0.3)
    new = log_lines(server)[before:]
    assert len(new) == 10, new
    assert all(line.startswith("INFO:") and "POST /api/stats" in line for line in new), new
    assert "Traceback" not in server.log()


def test_the_readme_documents_every_limit() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, _default, _meaning in described():
        assert f"`{name}`" in readme or f"`{name}`," in readme, name


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5x"])
def test_a_bad_limit_is_a_usage_error_naming_it(value: str) -> None:
    with pytest.raises(UsageError, match="LEADS_HTTP_MAX_HEADERS"):
        HttpLimits.from_env({"LEADS_HTTP_MAX_HEADERS": value})


def test_limits_are_read_from_the_environment() -> None:
    env = {"LEADS_HTTP_BODY_TIMEOUT_S": "2.5", "LEADS_HTTP_MAX_HEADERS": "7"}
    limits = HttpLimits.from_env(env)
    assert (limits.body_timeout_s, limits.max_headers) == (2.5, 7)
    assert HttpLimits.from_env({}) == HttpLimits()
