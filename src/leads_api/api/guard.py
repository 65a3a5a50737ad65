"""The outermost handler of what the endpoints did not answer themselves.

- A client that hung up before its body was read (or whose body the server stopped
  waiting for) is one INFO line and a count, never a traceback: nobody is left to answer.
- Any other exception is a bug: one ERROR line with the request id and the traceback, and
  the 500 envelope, which carries the same request id.

It sits inside Starlette's ServerErrorMiddleware, which would otherwise log every
exception's traceback again (through the server) after its handler had answered.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leads_api.api.envelope import request_id
from leads_api.api.errors import error_response
from leads_api.api.metrics import count_database_error
from leads_api.errors import InternalError
from leads_api.server import metrics

log = logging.getLogger("leads_api")


class Guard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except ClientDisconnect:
            metrics.disconnected()
            request = Request(scope)
            log.info(
                "request not read to its end (the client left or was too slow): %s %s (%s)",
                request.method, request.url.path, request_id(request),
            )
        except Exception as exc:
            count_database_error(exc)
            request = Request(scope)
            rid = request_id(request)
            log.error(
                "unexpected error on %s %s (%s)", request.method, request.url.path, rid,
                exc_info=exc,
            )
            if not started:
                response = error_response(request, InternalError("An unexpected error occurred"))
                await response(scope, receive, send)
