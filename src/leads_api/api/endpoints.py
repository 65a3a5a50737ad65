"""Every endpoint, declared once: method, path, handler, and what the document says of it.

The app's routes (api/app.py) and the OpenAPI document (api/openapi.py) are both made
from `ENDPOINTS`, so a route cannot exist undocumented. A new endpoint is one entry here:
its handler, summary, parameters, body schema, answers and the errors it may raise (the
document groups those by HTTP status, with their codes). Paths use OpenAPI's `{name}`
syntax, which Starlette reads too. Order matters where paths overlap: a fixed path such as
`/api/leads/changes` goes before `/api/leads/{lead_id}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from leads_api.api import schemas as s
from leads_api.api.changes import changes_endpoint
from leads_api.api.check import check_endpoint
from leads_api.api.docs import ASSETS, docs_asset_endpoint, docs_endpoint
from leads_api.api.health import healthz_endpoint, readyz_endpoint
from leads_api.api.metrics import metrics_endpoint
from leads_api.api.openapi_route import openapi_endpoint
from leads_api.api.read import list_leads_endpoint, one_lead_endpoint
from leads_api.api.stats import stats_endpoint
from leads_api.api.webhooks import (
    DEFAULT_DELIVERIES,
    MAX_DELIVERIES,
    deliveries_endpoint,
    delivery_schema,
    rotate_secret_endpoint,
    subscription_body_schema,
    test_endpoint,
    webhook_endpoint,
    webhook_schema,
    webhooks_endpoint,
)
from leads_api.api.write import (
    IDEMPOTENCY_HEADER,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    REPLAYED_HEADER,
    create_lead_endpoint,
    update_leads_endpoint,
)
from leads_api.errors import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidDate,
    InvalidFilter,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from leads_api.fields import ID_FIELD

Handler = Callable[[Request], Awaitable[Response]]
Schema = s.Schema


@dataclass(frozen=True)
class Answer:
    """A successful answer: its description, body schema and any headers it carries."""

    description: str
    schema: Schema | None = None  # JSON body; None = described by its media types alone
    media_types: tuple[str, ...] = ("application/json",)
    headers: dict[str, str] = field(default_factory=dict)  # name -> description


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    description: str = ""
    parameters: tuple[Schema, ...] = ()
    body: Schema | None = None  # a JSON request body's schema, when it takes one
    answers: dict[int, Answer] = field(default_factory=dict)
    errors: tuple[type[ApiError], ...] = ()  # beyond those every endpoint may give
    authenticated: bool = True  # needs X-API-KEY (or Authorization: Bearer)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.removesuffix("_endpoint")


BODY_ERRORS = (ValidationError, PayloadTooLarge, UnsupportedMediaType)

_ETAG = {"ETag": "Strong; send it as `If-None-Match` for a 304 while nothing it shows changed"}
# Conditional GET (api/conditional.py): no body, the same ETag, the request id.
NOT_MODIFIED = Answer("Not modified since the answer the If-None-Match tag names",
                      media_types=(), headers={"ETag": "The tag that matched"})

_LEADS = "Leads"
_ACCOUNT = "Account"
_SERVICE = "Service"
_WEBHOOKS = "Webhooks"
_WEBHOOK_ID = {"name": "webhook_id", "in": "path", "required": True,
               "schema": {"type": "string"}, "description": "The subscription's id (`wh_...`)."}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET", "/api/leads", list_leads_endpoint,
        summary="List leads, filtered, searched, sorted and paged",
        tag=_LEADS,
        description="Filters combine with AND; a comma list (or a repeated plain filter) "
        "means any of its values. An empty parameter counts as absent. Totals are exact.",
        parameters=(*s.list_parameters(), s.if_none_match_parameter()),
        answers={
            200: Answer("A page of leads", s.success_schema(
                {"type": "array", "items": s.ref("Lead")}, pagination=True), headers=_ETAG),
            304: NOT_MODIFIED,
        },
        errors=(ValidationError, InvalidFilter, InvalidDate),
    ),
    Endpoint(
        "GET", "/api/leads/changes", changes_endpoint,
        summary="The change feed: leads in the order they last changed",
        tag=_LEADS,
        description="Start without `since`, then always pass the last `meta.changes.next`: "
        "every lead of the organization, then every later create and change, each once at "
        "its latest version, never skipping one. Filters and `search` apply to each lead as "
        "it is now. `sort`, `page` and `cursor` are refused (400 VALIDATION_ERROR).",
        parameters=(*s.changes_parameters(), s.if_none_match_parameter()),
        answers={
            200: Answer("The next leads to change", s.success_schema(
                {"type": "array", "items": s.ref("Lead")}, changes=True), headers=_ETAG),
            304: NOT_MODIFIED,
        },
        errors=(ValidationError, InvalidFilter, InvalidDate),
    ),
    Endpoint(
        "POST", "/api/leads", create_lead_endpoint,
        summary="Create a lead",
        tag=_LEADS,
        description=f"With an `{IDEMPOTENCY_HEADER}`, a retry within 24 hours returns the "
        "first answer and creates nothing. Over the organization's monthly `leadsLimit`: 403.",
        parameters=({
            "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
            "description": "Makes a retried create safe (per organization, 24 hours).",
            "schema": {"type": "string", "minLength": 1,
                       "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
        },),
        body=s.ref("NewLead"),
        answers={201: Answer(
            "Created (or, for a repeated Idempotency-Key, the first answer again)",
            s.success_schema({
                "type": "object",
                "properties": {"id": s.field_schema(ID_FIELD),
                               "message": {"const": "Lead added"}},
                "required": ["id", "message"],
            }),
            headers={REPLAYED_HEADER: "`true` when this repeats the first answer to the key"},
        )},
        errors=(*BODY_ERRORS, Forbidden, Conflict),
    ),
    Endpoint(
        "PATCH", "/api/leads", update_leads_endpoint,
        summary="Update a lead's status, value, note or loss reason",
        tag=_LEADS,
        body=s.ref("LeadUpdate"),
        answers={200: Answer("Updated", s.success_schema({
            "type": "object",
            "properties": {
                "leadId": {"type": "string"},
                "leadIds": {"type": "array", "items": {"type": "string"}},
                "leadsUpdated": {"type": "integer", "minimum": 1},
                "message": {"const": "Lead updated successfully"},
            },
            "required": ["leadId", "leadIds", "leadsUpdated", "message"],
        }))},
        errors=(*BODY_ERRORS, Forbidden, NotFound, Conflict),
    ),
    Endpoint(
        "GET", "/api/leads/{lead_id}", one_lead_endpoint,
        summary="One lead by id",
        tag=_LEADS,
        parameters=(
            {"name": "lead_id", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "The lead's id (`lead_...`)."},
            s.fields_parameter(),
            s.if_none_match_parameter(),
        ),
        answers={200: Answer("The lead", s.success_schema(s.ref("Lead")), headers=_ETAG),
                 304: NOT_MODIFIED},
        errors=(ValidationError, InvalidFilter, NotFound),
    ),
    Endpoint(
        "POST", "/api/stats", stats_endpoint,
        summary="Counts and rates of the leads created in a period",
        tag=_ACCOUNT,
        body=s.ref("StatsRequest"),
        answers={200: Answer("The period's numbers", s.success_schema(s.ref("Stats")))},
        errors=(*BODY_ERRORS, InvalidDate),
    ),
    Endpoint(
        "GET", "/api/check", check_endpoint,
        summary="Is this key valid?",
        tag=_ACCOUNT,
        answers={200: Answer("The key is valid", {
            "type": "object", "properties": {"success": {"const": True}},
            "required": ["success"], "additionalProperties": False,
        })},
    ),
    Endpoint(
        "POST", "/api/check", check_endpoint,
        summary="Is this key valid? (the older form of GET)",
        tag=_ACCOUNT,
        answers={200: Answer("The key is valid", {
            "type": "object", "properties": {"success": {"const": True}},
            "required": ["success"], "additionalProperties": False,
        })},
    ),
    Endpoint(
        "GET", "/api/webhooks", webhooks_endpoint,
        summary="The organization's webhook subscriptions (never their secrets)",
        tag=_WEBHOOKS,
        answers={200: Answer("Subscriptions, oldest first", s.success_schema(
            {"type": "array", "items": webhook_schema()}))},
        errors=(InvalidFilter,),
    ),
    Endpoint(
        "POST", "/api/webhooks", webhooks_endpoint,
        summary="Subscribe a URL to lead events (Zapier REST hooks: subscribe)",
        tag=_WEBHOOKS,
        description="Every change of the organization's leads is then POSTed to `url`, "
        "signed per Standard Webhooks, retried for about 24 hours, in order per lead. "
        "Read-only keys: 403.",
        body=subscription_body_schema(partial=False),
        answers={201: Answer("Subscribed; the secret is shown only here",
                             s.success_schema(webhook_schema(secret=True)))},
        errors=(*BODY_ERRORS, Forbidden, InvalidFilter),
    ),
    Endpoint(
        "GET", "/api/webhooks/{webhook_id}", webhook_endpoint,
        summary="One subscription",
        tag=_WEBHOOKS,
        parameters=(_WEBHOOK_ID,),
        answers={200: Answer("The subscription", s.success_schema(webhook_schema()))},
        errors=(NotFound, InvalidFilter),
    ),
    Endpoint(
        "PATCH", "/api/webhooks/{webhook_id}", webhook_endpoint,
        summary="Change a subscription's url, events, description or enabled",
        tag=_WEBHOOKS,
        description="Disabling pauses it (no new events; pending ones wait); enabling "
        "clears `failing`.",
        parameters=(_WEBHOOK_ID,),
        body=subscription_body_schema(partial=True),
        answers={200: Answer("The changed subscription", s.success_schema(webhook_schema()))},
        errors=(*BODY_ERRORS, Forbidden, NotFound, InvalidFilter),
    ),
    Endpoint(
        "DELETE", "/api/webhooks/{webhook_id}", webhook_endpoint,
        summary="Delete a subscription and its pending events (Zapier REST hooks: unsubscribe)",
        tag=_WEBHOOKS,
        parameters=(_WEBHOOK_ID,),
        answers={204: Answer("Deleted", media_types=())},
        errors=(Forbidden, NotFound, InvalidFilter),
    ),
    Endpoint(
        "POST", "/api/webhooks/{webhook_id}/rotate-secret", rotate_secret_endpoint,
        summary="A new secret; the old one keeps signing beside it for 24 hours",
        tag=_WEBHOOKS,
        parameters=(_WEBHOOK_ID,),
        answers={200: Answer("The subscription with its new secret",
                             s.success_schema(webhook_schema(secret=True)))},
        errors=(Forbidden, NotFound, InvalidFilter),
    ),
    Endpoint(
        "GET", "/api/webhooks/{webhook_id}/deliveries", deliveries_endpoint,
        summary="The subscription's latest delivery attempts, newest first",
        tag=_WEBHOOKS,
        parameters=(_WEBHOOK_ID, {
            "name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DELIVERIES,
                       "default": DEFAULT_DELIVERIES},
        }),
        answers={200: Answer("Attempts", s.success_schema(
            {"type": "array", "items": delivery_schema()}))},
        errors=(ValidationError, NotFound, InvalidFilter),
    ),
    Endpoint(
        "POST", "/api/webhooks/{webhook_id}/test", test_endpoint,
        summary="Send a `webhook.test` event now, once, and answer with what happened",
        tag=_WEBHOOKS,
        parameters=(_WEBHOOK_ID,),
        answers={200: Answer("The attempt", s.success_schema(delivery_schema()))},
        errors=(Forbidden, NotFound, InvalidFilter),
    ),
    Endpoint(
        "GET", "/healthz", healthz_endpoint,
        summary="Liveness: the process is up (touches no database)",
        tag=_SERVICE,
        authenticated=False,
        answers={200: Answer("Up", {"type": "object", "properties": {
            "status": {"const": "ok"}}, "required": ["status"]})},
    ),
    Endpoint(
        "GET", "/readyz", readyz_endpoint,
        summary="Readiness: the database answers and its schema is current",
        tag=_SERVICE,
        description="503 (not the envelope's SERVICE_UNAVAILABLE alone: the body says which "
        "check failed) while the database is unreachable or needs `leads-api migrate`.",
        authenticated=False,
        answers={200: Answer("Ready", s.ref("Readiness"))},
    ),
    Endpoint(
        "GET", "/openapi.json", openapi_endpoint,
        summary="This document",
        tag=_SERVICE,
        authenticated=False,
        answers={200: Answer("The OpenAPI 3.1 document", {"type": "object"})},
    ),
    Endpoint(
        "GET", "/docs", docs_endpoint,
        summary="A readable reference of this document (served offline)",
        tag=_SERVICE,
        authenticated=False,
        answers={200: Answer("An HTML page", media_types=("text/html",))},
    ),
    Endpoint(
        "GET", "/docs/assets/{name}", docs_asset_endpoint,
        summary="The reference page's script, style sheet and icon",
        tag=_SERVICE,
        authenticated=False,
        parameters=({"name": "name", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": sorted(ASSETS)}},),
        answers={200: Answer("The file", media_types=tuple(sorted(set(ASSETS.values()))))},
        errors=(NotFound,),
    ),
    Endpoint(
        "GET", "/metrics", metrics_endpoint,
        summary="Prometheus metrics (off unless LEADS_METRICS=1 or LEADS_METRICS_TOKEN is set)",
        tag=_SERVICE,
        description="With `LEADS_METRICS_TOKEN` set, send it as `Authorization: Bearer "
        "<token>`; otherwise 401. While metrics are off: 404.",
        authenticated=False,
        answers={200: Answer("Metrics in Prometheus text format", media_types=("text/plain",))},
        errors=(NotFound, Unauthorized),
    ),
)
