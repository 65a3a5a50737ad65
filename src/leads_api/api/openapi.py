"""The OpenAPI 3.1 document, assembled from the endpoint declarations and the field registry.

`document()` is built once per app and served by GET /openapi.json; GET /docs renders it.
Each endpoint's errors (its own, plus those every endpoint may give) become one response
per HTTP status, listing the contract codes that status can carry.
"""

from __future__ import annotations

from collections import defaultdict
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from leads_api.api import schemas as s
from leads_api.api.endpoints import ENDPOINTS, Endpoint
from leads_api.api.envelope import REQUEST_ID_HEADER
from leads_api.errors import ApiError, InternalError, ServiceUnavailable, Unauthorized
from leads_api.fields import SOURCES, STATUSES

OPENAPI_VERSION = "3.1.0"
API_KEY_SCHEME = "ApiKeyHeader"
BEARER_SCHEME = "BearerToken"

DESCRIPTION = """\
An open, self-hostable leads service that speaks the Octanist Leads API.

**Authentication.** Every `/api/...` endpoint needs an API key of your organization, made with
`leads-api keys create --org NAME`, sent as `X-API-KEY: lak_...` (or `Authorization: Bearer
lak_...`; `X-API-KEY` wins when both are sent). A key sees only its own organization's leads.
A missing, unknown or revoked key is 401; a read-only key gets 403 on POST and PATCH.
A key in the query string is not accepted.

**Envelope.** Every answer is `{"success", "data", "meta": {"pagination"?, "requestId",
"timestamp"}}` with an `X-Request-Id` header equal to `meta.requestId`; errors are
`{"success": false, "error": {"code", "message", "details"}, "meta"}`, and the message names
the parameter or field at fault. Timestamps are UTC with milliseconds. On any path, an
unknown route is 404 `NOT_FOUND` and another method than those listed is 405
`METHOD_NOT_ALLOWED` with an `Allow` header; routes are exact (`/api/leads/` is a 404).
"""

# Errors any endpoint may answer, beyond the ones it declares.
_EVERY_ENDPOINT: tuple[type[ApiError], ...] = (InternalError, ServiceUnavailable)
_STATUS_WORDS = {400: "Bad request", 401: "Missing, unknown or revoked API key",
                 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
                 409: "Conflict", 413: "Body over 1 MiB", 415: "Body is not JSON",
                 500: "Unexpected error (never shows SQL, paths or a traceback)",
                 503: "The database cannot be reached right now; retry after Retry-After"}


def _version() -> str:
    try:
        return version("leads-api")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for endpoint in ENDPOINTS:
        paths[endpoint.path][endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "leads-api", "version": _version(), "description": DESCRIPTION,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "tags": [
            {"name": "Leads", "description": "Read, create and update leads"},
            {"name": "Account", "description": "The key and the organization's numbers"},
            {"name": "Service", "description": "Health, metrics and this description; no key"},
        ],
        "paths": dict(paths),
        "components": {
            "securitySchemes": {
                API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "X-API-KEY",
                                 "description": "An organization's API key, `lak_...`"},
                BEARER_SCHEME: {"type": "http", "scheme": "bearer",
                                "description": "The same key as `Authorization: Bearer lak_...`"},
            },
            "schemas": _component_schemas(),
            "headers": {
                "RequestId": {"description": "Equal to meta.requestId",
                              "schema": {"type": "string", "pattern": s.REQUEST_ID_PATTERN}},
            },
        },
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.operation_id}_{endpoint.method.lower()}",
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.parameters:
        operation["parameters"] = list(endpoint.parameters)
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": endpoint.body}},
        }
    if endpoint.authenticated:
        operation["security"] = [{API_KEY_SCHEME: []}, {BEARER_SCHEME: []}]
    else:
        operation["security"] = []
    responses: dict[str, Any] = {}
    for status, answer in endpoint.answers.items():
        response: dict[str, Any] = {"description": answer.description}
        body = answer.schema if answer.schema is not None else {"type": "string"}
        if answer.media_types:  # a 304 has no body at all
            response["content"] = {
                media_type: {"schema": body} for media_type in answer.media_types
            }
        headers = {name: {"description": words, "schema": {"type": "string"}}
                   for name, words in answer.headers.items()}
        if endpoint.authenticated and status < 300 and endpoint.path != "/api/check":
            headers[REQUEST_ID_HEADER] = {"$ref": "#/components/headers/RequestId"}
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    errors = [*endpoint.errors, *_EVERY_ENDPOINT]
    if endpoint.authenticated:
        errors.append(Unauthorized)
    by_status: dict[int, list[type[ApiError]]] = defaultdict(list)
    for error in errors:
        by_status[error.status].append(error)
    for status in sorted(by_status):
        if str(status) in responses:
            continue  # the endpoint describes this status itself
        response = {
            "description": _STATUS_WORDS.get(status, "Error"),
            "headers": {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": s.error_schema(by_status[status])}},
        }
        if status == ServiceUnavailable.status:
            response["headers"]["Retry-After"] = {
                "description": "Seconds to wait", "schema": {"type": "string"}}
        responses[str(status)] = response
    operation["responses"] = responses
    return operation


def _component_schemas() -> dict[str, Any]:
    counts = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
    number: dict[str, Any] = {"type": "number", "minimum": 0}
    return {
        "Lead": s.lead_schema(),
        "NewLead": s.create_body_schema(),
        "LeadUpdate": s.update_body_schema(),
        "StatsRequest": s.stats_body_schema(),
        "Pagination": s.pagination_schema(),
        "Changes": s.changes_schema(),
        "Stats": {
            "type": "object",
            "properties": {
                "usage": {"type": "object", "properties": {
                    "leadsUsed": {"type": "integer", "minimum": 0},
                    "leadsLimit": {"type": ["integer", "null"]},
                    "lockedLeads": {"const": 0},
                    "periodStart": {"type": "string", "format": "date-time"},
                    "periodEnd": {"type": "string", "format": "date-time"},
                }, "required": ["leadsUsed", "leadsLimit", "lockedLeads", "periodStart",
                                "periodEnd"]},
                "leads": {"type": "object", "properties": {
                    "total": {"type": "integer", "minimum": 0},
                    "byStatus": {**counts, "required": list(STATUSES)},
                    "bySource": {**counts, "required": list(SOURCES)},
                }, "required": ["total", "byStatus", "bySource"]},
                "conversion": {"type": "object", "properties": {
                    "qualified": {"type": "integer", "minimum": 0},
                    "qualificationRate": {**number, "maximum": 1},
                    "winRate": {**number, "maximum": 1},
                    "averageValue": number,
                    "totalValue": number,
                }, "required": ["qualified", "qualificationRate", "winRate", "averageValue",
                                "totalValue"]},
            },
            "required": ["usage", "leads", "conversion"],
        },
        "Readiness": {
            "type": "object",
            "properties": {
                "status": {"enum": ["ready", "not ready"]},
                "database": {"enum": ["ok", "unavailable"]},
                "schema": {"enum": ["current", "outdated", "unknown"]},
            },
            "required": ["status", "database", "schema"],
        },
    }
