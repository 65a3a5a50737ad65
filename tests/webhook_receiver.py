"""A real webhook receiver on loopback for tests: verifies every Standard Webhooks signature
with the `standardwebhooks` package, records what arrived, and fails on request.

`respond(message) -> Reply` decides each answer (status, headers, a delay before it), so a
test can make the receiver fail for a while (500, 429 with Retry-After, timeouts) and then
recover. It also notices one message being delivered twice at the same time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    id: str
    type: str
    body: dict[str, Any]
    signatures: int  # how many v1 signatures the header carried
    at: float  # time.time() on arrival


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def always_ok(_message: Received) -> Reply:
    return Reply()


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.secrets: list[str] = []  # a message is accepted if one of them verifies it
        self.respond: Callable[[Received], Reply] = always_ok
        self.accepted: list[Received] = []  # answered 2xx, in arrival order
        self.attempts: list[Received] = []  # every verified request, whatever the answer
        self.unverified: list[str] = []  # why requests were refused
        self.overlaps: list[str] = []  # ids that arrived while already being delivered
        self.truncated = 0  # requests whose sender hung up before the whole body came
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            assert self._port, "not started, and no port chosen"
            return self._port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away mid-body (a test may SIGKILL the server while it
                    # delivers): a request that never arrived, not one that failed to verify.
                    with receiver._lock:
                        receiver.truncated += 1
                    self.close_connection = True
                    return
                status, headers, delay = receiver._handle(body, dict(self.headers.items()))
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self.port  # a restart binds the same port again
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], float]:
        payload = None
        for secret in list(self.secrets):
            try:
                payload = Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError:
                continue
        if payload is None:
            with self._lock:
                self.unverified.append(headers.get("webhook-id", "?"))
            return 400, {}, 0.0
        lowered = {k.lower(): v for k, v in headers.items()}
        message = Received(
            lowered["webhook-id"],
            payload["type"],
            payload,
            len(lowered["webhook-signature"].split(" ")),
            time.time(),
        )
        with self._lock:
            if message.id in self._in_flight:
                self.overlaps.append(message.id)
            self._in_flight.add(message.id)
            self.attempts.append(message)
        try:
            reply = self.respond(message)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            with self._lock:
                if 200 <= reply.status < 300:
                    self.accepted.append(message)
            return reply.status, reply.headers, 0.0
        finally:
            with self._lock:
                self._in_flight.discard(message.id)

    # --- what arrived ---------------------------------------------------------------------

    def wait_for(self, count: int, *, timeout: float = 30.0) -> list[Received]:
        """Wait until `count` distinct messages were accepted; the first of each id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            distinct = self.distinct()
            if len(distinct) >= count:
                return distinct
            time.sleep(0.02)
        raise AssertionError(
            f"{len(self.distinct())} of {count} messages arrived in {timeout} s "
            f"({len(self.attempts)} attempts, {len(self.unverified)} unverified)"
        )

    def distinct(self) -> list[Received]:
        with self._lock:
            seen: dict[str, Received] = {}
            for message in self.accepted:
                seen.setdefault(message.id, message)
            return list(seen.values())

    def per_lead(self) -> dict[str, list[Received]]:
        """Accepted lead messages by lead id, in arrival order (repeats included)."""
        leads: dict[str, list[Received]] = {}
        with self._lock:
            for message in self.accepted:
                if message.type.startswith("lead."):
                    leads.setdefault(message.body["data"]["id"], []).append(message)
        return leads
