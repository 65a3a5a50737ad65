"""A loopback HTTP proxy in front of a real server that misbehaves on cue, for client tests.

Each request takes the next action of its script (then `PASS` for ever): `UNAVAILABLE`
answers 503 in the contract's envelope with `Retry-After` (what the service sends while its
database is away, without taking a database away), `DROP` closes the connection without
answering and without forwarding, `BAD_GATEWAY` answers 502 with an HTML page (a load
balancer's, not the API's envelope), `DROP_AFTER` forwards the request to the real server and
then closes the connection without relaying its answer (the write happened, the client
never heard), and `PASS` relays. Every request is recorded with the action it got.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson

PASS = "pass"
UNAVAILABLE = "unavailable"
DROP = "drop"
DROP_AFTER = "drop-after"
BAD_GATEWAY = "bad-gateway"

# Hop-by-hop headers, and the ones that describe a body this proxy re-frames.
_NOT_RELAYED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
                "content-encoding", "accept-encoding"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    action: str
    at: float
    idempotency_key: str | None


class FlakyProxy:
    def __init__(
        self, upstream: str, script: Iterable[str] = (), *, retry_after: str = "1"
    ) -> None:
        self.upstream = upstream
        self.script = list(script)
        self.retry_after = retry_after
        self.seen: list[Seen] = []
        self.answered: list[tuple[str, int]] = []  # (path, status) of each relayed answer
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=upstream, timeout=30.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def actions(self) -> list[str]:
        with self._lock:
            return [s.action for s in self.seen]

    def _next_action(self, method: str, path: str, key: str | None) -> str:
        with self._lock:
            action = self.script.pop(0) if self.script else PASS
            self.seen.append(Seen(method, path, action, time.monotonic(), key))
            return action

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = proxy._next_action(
                    self.command, self.path, self.headers.get("Idempotency-Key")
                )
                if action == DROP:
                    self.close_connection = True
                    return
                if action == UNAVAILABLE:
                    self.answer(503, unavailable_body(), {"Retry-After": proxy.retry_after})
                    return
                if action == BAD_GATEWAY:
                    self.answer(502, b"<html><body>502 Bad Gateway</body></html>",
                                {"Content-Type": "text/html"})
                    return
                upstream = proxy._http.request(
                    self.command,
                    self.path,
                    content=body,
                    headers={k: v for k, v in self.headers.items()
                             if k.lower() not in _NOT_RELAYED},
                )
                with proxy._lock:
                    proxy.answered.append((self.path, upstream.status_code))
                if action == DROP_AFTER:
                    self.close_connection = True
                    return
                headers = {k: v for k, v in upstream.headers.items()
                           if k.lower() not in _NOT_RELAYED}
                self.answer(upstream.status_code, upstream.content, headers)

            def answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = handle_any

        return Handler

    def start(self) -> FlakyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


def unavailable_body() -> bytes:
    return orjson.dumps({
        "success": False,
        "error": {"code": "SERVICE_UNAVAILABLE",
                  "message": "The database is unavailable; try again shortly",
                  "details": {}},
        "meta": {"requestId": "req_" + secrets.token_hex(6),
                 "timestamp": "2026-01-01T00:00:00.000Z"},
    })


@contextmanager
def flaky_proxy(upstream: str, script: Iterable[str] = (), **options: str) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(upstream, script, **options).start()
    try:
        yield proxy
    finally:
        proxy.stop()
