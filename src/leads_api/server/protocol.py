"""uvicorn's httptools HTTP/1.1 protocol with limits, timeouts and a lingering close.

Stock uvicorn reads a request line and headers of any size for as long as the client
takes, keeps a silent connection open forever, and answers a malformed request with a
plain-text 400. This subclass adds, per connection, with the limits of `HttpLimits`:

- a request line over `max_request_line_bytes` is 414; a head (request line and headers)
  over `max_header_bytes` or with more than `max_headers` fields is 431;
- the head must arrive within `headers_timeout_s` of its first byte (or of the connection's
  start), the body within `body_timeout_s` of the head: else 408;
- a worker holds at most `max_connections` connections: one more is answered 503;
- those refusals, and requests the parser cannot read (400), are answered in the contract's
  error envelope with an X-Request-Id, and counted (`server.metrics`), not logged;
- a **lingering close**: when the server closes a connection whose request it has not read
  to the end (a 413 refused on its Content-Length, any refusal above), it sends its answer,
  half-closes, and reads and discards what still arrives, for at most `linger_s` and
  `linger_bytes`, before closing. Closing a socket with unread bytes makes the kernel send
  a reset, and a client still writing its body then gets EPIPE or ECONNRESET instead of
  the answer waiting in its receive buffer.

Everything else (parsing, the ASGI cycle, keep-alive, pipelining) is uvicorn's own.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from leads_api.errors import (
    ApiError,
    HeadersTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    UriTooLong,
    ValidationError,
)
from leads_api.lead import format_timestamp, now_ms
from leads_api.server import metrics
from leads_api.server.limits import HttpLimits

_process_limits: HttpLimits | None = None


def process_limits() -> HttpLimits:
    """This process's limits, read from the environment once."""
    global _process_limits
    if _process_limits is None:
        _process_limits = HttpLimits.from_env()
    return _process_limits


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that is over a limit."""

    def __init__(self, reason: str, error: ApiError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class _GracefulTransport:
    """The connection's transport as uvicorn sees it: `close()` closes gracefully."""

    def __init__(self, transport: asyncio.Transport, protocol: LimitedHttpProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        # The calls made for every request, bound once.
        self.write = transport.write
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._protocol.close_gracefully()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()


class LimitedHttpProtocol(HttpToolsProtocol):
    """`--http leads_api.server.protocol:LimitedHttpProtocol`; see the module's docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = process_limits()
        self.timeout_keep_alive = self.limits.keepalive_s  # type: ignore[assignment]
        self.lingering = False
        self._raw: asyncio.Transport | None = None
        self._lost = False
        self._timer: asyncio.TimerHandle | None = None
        self._in_request = False  # a request has begun and has not been read to its end
        self._in_head = True  # the bytes arriving belong to a request line or headers
        self._url_done = False
        self._head_bytes = 0
        self._url_bytes = 0
        self._header_bytes = 0  # of the header fields parsed so far
        self._header_count = 0
        self._discarded = 0

    # --- the connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        super().connection_made(_GracefulTransport(transport, self))  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections:
            self._in_request = True  # its request is on its way: read it before closing
            self._refuse(
                "too_many_connections",
                ServiceUnavailable("This server has too many open connections; retry shortly"),
            )
            return
        self._arm(self.limits.headers_timeout_s, self._headers_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._discarded += len(data)
            if self._discarded > self.limits.linger_bytes:
                self._close_now()
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            refused = error.__context__
            if not isinstance(refused, _Refused):
                raise
            self._refuse(refused.reason, refused.error)
            return
        except httptools.HttpParserUpgrade:
            return  # no WebSocket here: the request is answered as plain HTTP
        except httptools.HttpParserError as error:
            self._in_request = True
            self._refuse(
                "malformed",
                ValidationError(f"Malformed HTTP request: {error}", parameter="request"),
            )
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head_size()

    def close_gracefully(self) -> None:
        """Close now if the current request was read to its end, else linger (see above)."""
        raw = self._raw
        if raw is None or self._lost or raw.is_closing() or self.lingering:
            return
        if not self._in_request:
            raw.close()
            return
        self.lingering = True
        self._cancel_timer()
        self._unset_keepalive_if_required()
        if raw.can_write_eof():
            raw.write_eof()  # after what is buffered: the client reads the answer, then EOF
        self.flow.resume_reading()
        self._timer = self.loop.call_later(self.limits.linger_s, self._close_now)

    def _close_now(self) -> None:
        self._cancel_timer()
        if self._raw is not None and not self._raw.is_closing():
            self._raw.close()

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_request = True
        self._url_done = False
        self._url_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        if self._timer is None:
            self._arm(self.limits.headers_timeout_s, self._headers_timed_out)

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_request_line_bytes:
            raise _Refused("request_line_too_long", self._uri_too_long())
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._url_done = True
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._url_bytes + self._header_bytes > self.limits.max_header_bytes:
            raise _Refused("headers_too_large", self._headers_too_large())
        if self._header_count > self.limits.max_headers:
            raise _Refused(
                "too_many_headers",
                HeadersTooLarge(
                    f"The request has more than {self.limits.max_headers} header fields",
                    maxHeaders=self.limits.max_headers,
                ),
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_timer()
        self._in_head = False
        self._url_done = True
        super().on_headers_complete()
        self._arm(self.limits.body_timeout_s, self._body_timed_out)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_timer()
        self._in_request = False
        self._in_head = True
        self._head_bytes = 0

    # --- refusals ---------------------------------------------------------------------------

    def _refuse_head_size(self) -> None:
        if not self._url_done:
            self._refuse("request_line_too_long", self._uri_too_long())
            return
        self._refuse("headers_too_large", self._headers_too_large())

    def _headers_too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"The request line and headers are over {self.limits.max_header_bytes // 1024} KiB",
            maxBytes=self.limits.max_header_bytes,
        )

    def _uri_too_long(self) -> UriTooLong:
        return UriTooLong(
            f"The request line is over {self.limits.max_request_line_bytes} bytes",
            maxBytes=self.limits.max_request_line_bytes,
        )

    def _headers_timed_out(self) -> None:
        self._timer = None
        if not self._in_request:  # not a byte of a request yet: an idle connection
            self._close_now()
            return
        seconds = self.limits.headers_timeout_s
        self._refuse(
            "headers_timeout",
            RequestTimeout(
                f"The request headers did not arrive within {seconds:g} s",
                timeoutSeconds=seconds,
            ),
        )

    def _body_timed_out(self) -> None:
        self._timer = None
        seconds = self.limits.body_timeout_s
        self._refuse(
            "body_timeout",
            RequestTimeout(
                f"The request body did not arrive within {seconds:g} s",
                timeoutSeconds=seconds,
            ),
        )

    def _refuse(self, reason: str, error: ApiError) -> None:
        """Answer `error` for the server itself (unless an answer has begun), then close."""
        metrics.rejected(reason)
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            # The application may be waiting for the body: it now sees a disconnect, and
            # whatever it answers is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if self._raw is None or self._raw.is_closing():
            return
        if answered:
            self._close_now()
            return
        self._raw.write(self._envelope(error))
        self.close_gracefully()

    def _envelope(self, error: ApiError) -> bytes:
        """A whole HTTP response: `error` in the contract's envelope, and Connection: close."""
        rid = "req_" + secrets.token_hex(6)  # the form of api.envelope.request_id
        body = orjson.dumps({
            "success": False,
            "error": {"code": error.code, "message": error.message, "details": error.details},
            "meta": {"requestId": rid, "timestamp": format_timestamp(now_ms())},
        })
        head = [STATUS_LINE[error.status]]
        head.extend(name + b": " + value + b"\r\n" for name, value in
                    self.server_state.default_headers)
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"x-request-id: " + rid.encode() + b"\r\n")
        if isinstance(error, ServiceUnavailable):
            head.append(b"retry-after: %d\r\n" % error.retry_after_seconds)
        head.append(b"connection: close\r\n\r\n")
        return b"".join(head) + body

    # --- timers -----------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
