"""A small, fast webhook receiver for the benchmark: an ASGI app under uvicorn in its own
process that verifies each signature (standardwebhooks) and records when each message
arrived. `GET /stats` answers {"count", "unverified"}, `GET /stats/full` adds
"arrivals" ({webhook-id: unix seconds}) and "leads" ({webhook-id: lead id}).

    python -m bench.webhook_receiver --port 9000 --secret whsec_...
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def receiver_app(secret: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    verifier = Webhook(secret)
    arrivals: dict[str, float] = {}
    leads: dict[str, str] = {}  # webhook-id -> lead id, for the latency probe
    unverified = [0]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # /stats: counts; /stats/full: every arrival too
            answer: dict[str, Any] = {"count": len(arrivals), "unverified": unverified[0]}
            if scope["path"].endswith("/full"):
                answer.update(arrivals=arrivals, leads=leads)
            body = orjson.dumps(answer)
            await _answer(send, 200, body)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            payload = verifier.verify(raw, headers)
        except WebhookVerificationError:
            unverified[0] += 1
            await _answer(send, 400, b"")
            return
        message_id = headers["webhook-id"]
        arrivals.setdefault(message_id, time.time())
        leads.setdefault(message_id, payload["data"]["id"])
        await _answer(send, 200, b"")

    return app


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    uvicorn.run(receiver_app(args.secret), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False, http="httptools", loop="uvloop")


if __name__ == "__main__":
    main()
