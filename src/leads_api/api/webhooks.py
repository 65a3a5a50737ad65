"""/api/webhooks: subscriptions to lead events (create, list, read, change, delete, rotate
the secret, the delivery log, a test event). Read-only keys may list and read."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.auth import request_caller
from leads_api.api.body import read_json_object
from leads_api.api.envelope import request_id, success
from leads_api.delivery.address import AddressRefused, allow_private_from_env, destination
from leads_api.delivery.deliverer import Deliverer
from leads_api.errors import InvalidFilter, ValidationError
from leads_api.lead import base62, format_timestamp, now_ms
from leads_api.store import Store
from leads_api.store.delivery_queue import Message, log_attempts
from leads_api.store.webhooks import (
    Delivery,
    Signing,
    Webhook,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_deliveries,
    list_webhooks,
    rotate_secret,
    signing,
    update_webhook,
)
from leads_api.webhook_input import (
    EVENT_TYPES,
    MAX_DESCRIPTION_LENGTH,
    MAX_URL_LENGTH,
    TEST_EVENT_TYPE,
    subscription_input,
)

DEFAULT_DELIVERIES = 50
MAX_DELIVERIES = 100


def webhook_object(webhook: Webhook, *, secret: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "description": webhook.description,
    }
    if secret is not None:
        data["secret"] = secret
    data.update(
        enabled=webhook.enabled,
        failing=webhook.failing,
        createdAt=format_timestamp(webhook.created_at),
        updatedAt=format_timestamp(webhook.updated_at),
    )
    return data


def delivery_object(delivery: Delivery) -> dict[str, Any]:
    return {
        "eventId": delivery.event_id,
        "type": delivery.type,
        "attempt": delivery.attempt,
        "outcome": delivery.outcome,
        "statusCode": delivery.status_code,
        "error": delivery.error,
        "durationMs": delivery.duration_ms,
        "attemptedAt": format_timestamp(delivery.attempted_at),
        "nextRetryAt": None
        if delivery.next_retry_at is None
        else format_timestamp(delivery.next_retry_at),
    }


async def check_address(url: str) -> None:
    """The address guard at subscribe time: 400 naming `url` when it may not be called."""
    try:
        await run_in_threadpool(destination, url, allow_private=allow_private_from_env())
    except AddressRefused as refused:
        raise ValidationError(f"url is not allowed: {refused}", field="url") from None


def _no_parameters(request: Request, *allowed: str) -> None:
    for name in request.query_params:
        if name not in allowed:
            raise InvalidFilter(f"Unknown parameter {name!r}", parameter=name)


async def webhooks_endpoint(request: Request) -> Response:
    """GET lists the organization's subscriptions; POST subscribes (201, with the secret)."""
    store: Store = request.app.state.store
    _no_parameters(request)
    if request.method == "POST":
        caller = await request_caller(request, writes=True)
        values = subscription_input(await read_json_object(request))
        await check_address(values["url"])

        def create() -> tuple[Webhook, str]:
            with store.write() as conn:
                return create_webhook(
                    conn,
                    org_id=caller.org.id,
                    url=values["url"],
                    events=values["events"],
                    description=values["description"],
                )

        webhook, secret = await run_in_threadpool(create)
        return success(request, webhook_object(webhook, secret=secret), status=201)
    caller = await request_caller(request)

    def read() -> list[Webhook]:
        with store.read() as conn:
            return list_webhooks(conn, org_id=caller.org.id)

    return success(request, [webhook_object(w) for w in await run_in_threadpool(read)])


async def webhook_endpoint(request: Request) -> Response:
    """GET reads one subscription, PATCH changes it, DELETE removes it (204)."""
    store: Store = request.app.state.store
    webhook_id: str = request.path_params["webhook_id"]
    _no_parameters(request)
    if request.method in ("GET", "HEAD"):
        caller = await request_caller(request)

        def read() -> Webhook:
            with store.read() as conn:
                return get_webhook(conn, org_id=caller.org.id, webhook_id=webhook_id)

        return success(request, webhook_object(await run_in_threadpool(read)))
    caller = await request_caller(request, writes=True)
    if request.method == "DELETE":

        def delete() -> None:
            with store.write() as conn:
                delete_webhook(conn, org_id=caller.org.id, webhook_id=webhook_id)

        await run_in_threadpool(delete)
        return Response(status_code=204, headers={"X-Request-Id": request_id(request)})
    changes = subscription_input(await read_json_object(request), partial=True)
    if "url" in changes:
        await check_address(changes["url"])

    def change() -> Webhook:
        with store.write() as conn:
            return update_webhook(
                conn, org_id=caller.org.id, webhook_id=webhook_id, changes=changes
            )

    return success(request, webhook_object(await run_in_threadpool(change)))


async def rotate_secret_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    webhook_id: str = request.path_params["webhook_id"]
    _no_parameters(request)
    caller = await request_caller(request, writes=True)

    def rotate() -> tuple[Webhook, str]:
        with store.write() as conn:
            return rotate_secret(conn, org_id=caller.org.id, webhook_id=webhook_id)

    webhook, secret = await run_in_threadpool(rotate)
    return success(request, webhook_object(webhook, secret=secret))


async def deliveries_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    webhook_id: str = request.path_params["webhook_id"]
    _no_parameters(request, "limit")
    caller = await request_caller(request)
    limit = _limit(request.query_params.get("limit"))

    def read() -> list[Delivery]:
        with store.read() as conn:
            return list_deliveries(
                conn, org_id=caller.org.id, webhook_id=webhook_id, limit=limit
            )

    return success(request, [delivery_object(d) for d in await run_in_threadpool(read)])


def _limit(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return DEFAULT_DELIVERIES
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_DELIVERIES:
        raise ValidationError(
            f"limit must be an integer from 1 to {MAX_DELIVERIES}", parameter="limit"
        )
    return int(text)


async def test_endpoint(request: Request) -> Response:
    """Send a `webhook.test` event now, once, and answer with what the receiver did."""
    store: Store = request.app.state.store
    webhook_id: str = request.path_params["webhook_id"]
    _no_parameters(request)
    caller = await request_caller(request, writes=True)

    def target() -> Signing:
        with store.read() as conn:
            return signing(conn, org_id=caller.org.id, webhook_id=webhook_id)

    target_signing = await run_in_threadpool(target)
    now = now_ms()
    event_id = "evt_test_" + base62(16)
    body = orjson.dumps(
        {
            "type": TEST_EVENT_TYPE,
            "timestamp": format_timestamp(now),
            "data": {"webhookId": webhook_id},
        }
    )
    message = Message(webhook_id, 0, event_id, TEST_EVENT_TYPE, 1, now, body)
    attempt = await Deliverer(store).send_once(target_signing, message)

    def log() -> None:
        with store.write() as conn:
            log_attempts(conn, attempts=[attempt])

    await run_in_threadpool(log)
    return success(
        request,
        delivery_object(
            Delivery(
                event_id,
                TEST_EVENT_TYPE,
                1,
                attempt.outcome,
                attempt.status_code,
                attempt.error,
                attempt.duration_ms,
                attempt.attempted_at,
                None,
            )
        ),
    )


# --- the OpenAPI document's schemas (api/endpoints.py declares the endpoints) -------------

_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_EVENTS: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {"enum": [t.name for t in EVENT_TYPES]},
    "description": "; ".join(f"`{t.name}`: {t.description}" for t in EVENT_TYPES),
}


def webhook_schema(*, secret: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {"type": "string", "pattern": "^wh_[0-9A-Za-z]+$"},
        "url": {"type": "string", "format": "uri"},
        "events": _EVENTS,
        "description": {"type": ["string", "null"]},
        "enabled": {"type": "boolean"},
        "failing": {"type": "boolean",
                    "description": "A delivery failed for good; cleared by the next success"},
        "createdAt": _TIME,
        "updatedAt": _TIME,
    }
    if secret:
        properties["secret"] = {
            "type": "string", "pattern": "^whsec_",
            "description": "Signs every delivery (Standard Webhooks); shown only here",
        }
    return {"type": "object", "properties": properties, "required": list(properties)}


def subscription_body_schema(*, partial: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "url": {"type": "string", "maxLength": MAX_URL_LENGTH,
                "description": "http:// or https://; internal addresses are refused unless "
                "LEADS_WEBHOOK_ALLOW_PRIVATE=1"},
        "events": {**_EVENTS, "description": "Default: all. " + _EVENTS["description"]},
        "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION_LENGTH},
    }
    if partial:
        properties["enabled"] = {"type": "boolean"}
    schema: dict[str, Any] = {
        "type": "object", "properties": properties, "additionalProperties": False,
    }
    if not partial:
        schema["required"] = ["url"]
    return schema


def delivery_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "eventId": {"type": "string"},
            "type": {"type": "string"},
            "attempt": {"type": "integer", "minimum": 1},
            "outcome": {"enum": ["delivered", "retrying", "failed", "gone"]},
            "statusCode": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "durationMs": {"type": "integer", "minimum": 0},
            "attemptedAt": _TIME,
            "nextRetryAt": {"type": ["string", "null"], "format": "date-time"},
        },
        "required": ["eventId", "type", "attempt", "outcome", "statusCode", "error",
                     "durationMs", "attemptedAt", "nextRetryAt"],
    }
