"""JSON Schemas of what the API sends and accepts, made from the field registry.

The OpenAPI document (api/openapi.py) is assembled from these and the endpoint
declarations (api/endpoints.py); nothing here is written per field, so a field added to
`fields.LEAD_FIELDS` appears in the lead object, the create body, the filters, `sort` and
`fields` at once.
"""

from __future__ import annotations

from typing import Any

from leads_api.errors import ApiError
from leads_api.fields import (
    BRACKET_OPERATORS,
    COMPARISONS,
    EQ,
    EXISTS,
    FILTERABLE,
    LEAD_FIELDS,
    LEGACY_SORT_NAMES,
    SORTABLE,
    WRITABLE,
    Field,
    Kind,
)
from leads_api.lead_input import CONTACT_FIELDS, IDENTIFIERS, UPDATE_STATUSES
from leads_api.query.model import (
    DEFAULT_FEED_LIMIT,
    DEFAULT_LIMIT,
    MAX_FEED_LIMIT,
    MAX_LIMIT,
    MAX_PAGE,
    MAX_SEARCH_LENGTH,
)

Schema = dict[str, Any]

REQUEST_ID_PATTERN = "^req_[0-9a-f]{12}$"
TIMESTAMP_EXAMPLE = "2026-01-15T10:30:00.000Z"
MAX_MONEY = 1_000_000_000_000


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


# --- the lead object ----------------------------------------------------------------------

_KIND_SCHEMAS: dict[Kind, Schema] = {
    Kind.ID: {"type": "string", "pattern": "^lead_[0-9A-Za-z]{16,64}$"},
    Kind.TEXT: {"type": "string"},
    Kind.CHOICE: {"type": "string"},
    Kind.MONEY: {"type": "number", "minimum": 0, "maximum": MAX_MONEY},
    Kind.TIME: {"type": "string", "format": "date-time", "examples": [TIMESTAMP_EXAMPLE]},
    Kind.CONSENT: {"type": "boolean"},
}


def field_schema(field: Field) -> Schema:
    schema = dict(_KIND_SCHEMAS[field.kind])
    if field.choices:
        schema["enum"] = list(field.choices)
    if field.kind is Kind.TEXT:
        schema["maxLength"] = field.max_length
    return nullable(schema) if field.nullable else schema


def lead_schema() -> Schema:
    """The lead object: every field, in output order. With `fields=` only some are present,
    so only `id` is required."""
    return {
        "type": "object",
        "description": "A lead. A full object has every property (absent values are null), "
        "in this order; `fields=` returns only the chosen ones, plus `id`.",
        "properties": {f.name: field_schema(f) for f in LEAD_FIELDS},
        "required": ["id"],
        "additionalProperties": False,
    }


# --- request bodies -----------------------------------------------------------------------

_CONSENT_INPUT: Schema = {
    "description": "true/false, \"granted\"/\"denied\", \"true\"/\"false\", or null",
    "anyOf": [
        {"type": "boolean"},
        {"type": "string", "enum": ["granted", "denied", "true", "false"]},
        {"type": "null"},
    ],
}


def _writable_schema(field: Field) -> Schema:
    if field.kind is Kind.CONSENT:
        return _CONSENT_INPUT
    if field.name == "custom":
        return {"description": "a string, or any JSON value (stored as compact JSON text); "
                "at most 64 KiB of UTF-8"}
    return {
        "type": ["string", "number", "null"],
        "maxLength": field.max_length,
        "description": f"trimmed; empty is null; at most {field.max_length:,} characters; "
        "a number is kept as text",
    }


def create_body_schema() -> Schema:
    return {
        "type": "object",
        "description": "A new lead. At least one of " + ", ".join(CONTACT_FIELDS)
        + " must be non-empty; an unknown key is 400 VALIDATION_ERROR.",
        "properties": {name: _writable_schema(f) for name, f in WRITABLE.items()},
        "additionalProperties": False,
        "anyOf": [{"required": [name]} for name in CONTACT_FIELDS],
    }


def update_body_schema() -> Schema:
    text: Schema = {"type": ["string", "null"]}
    status: Schema = {"type": ["string", "null"], "enum": [*UPDATE_STATUSES, None]}
    return {
        "type": "object",
        "description": "Which lead (the first present of " + ", ".join(IDENTIFIERS)
        + ") and what to change. `email` matches ignoring case; several matches need the "
        "organization's bulk updates, else 409.",
        "properties": {
            "id": text,
            "email": text,
            "phone": text,
            "status": status,
            "changedTo": {**status, "description": "legacy alias of status"},
            "value": {"type": ["number", "string", "null"], "description": "null clears it"},
            "note": {**text, "description": "null or \"\" clears it"},
            "lossReason": {**text, "description": "kept only when the status is lost"},
            "alsoQualified": {"type": "boolean",
                              "description": "with status won: also set qualifiedAt"},
        },
        "additionalProperties": False,
        "anyOf": [{"required": [name]} for name in IDENTIFIERS],
    }


def stats_body_schema() -> Schema:
    day: Schema = {"type": "string", "format": "date", "examples": ["2026-01-31"]}
    return {
        "type": "object",
        "properties": {
            "period": {"type": ["string", "null"], "enum": ["current", "previous", "custom", None],
                       "default": "current"},
            "startDate": {**day, "description": "with period custom"},
            "endDate": {**day, "description": "with period custom; through the end of the day"},
        },
        "additionalProperties": False,
    }


# --- answers ------------------------------------------------------------------------------


def meta_schema(*, pagination: bool = False, changes: bool = False) -> Schema:
    properties: Schema = {
        "requestId": {"type": "string", "pattern": REQUEST_ID_PATTERN},
        "timestamp": {"type": "string", "format": "date-time", "examples": [TIMESTAMP_EXAMPLE]},
    }
    required = ["requestId", "timestamp"]
    if changes:
        properties = {"changes": ref("Changes"), **properties}
        required.insert(0, "changes")
    if pagination:
        properties = {"pagination": ref("Pagination"), **properties}
        required.insert(0, "pagination")
    return {"type": "object", "properties": properties, "required": required}


def success_schema(data: Schema, *, pagination: bool = False, changes: bool = False) -> Schema:
    return {
        "type": "object",
        "properties": {
            "success": {"const": True},
            "data": data,
            "meta": meta_schema(pagination=pagination, changes=changes),
        },
        "required": ["success", "data", "meta"],
        "additionalProperties": False,
    }


def pagination_schema() -> Schema:
    whole: Schema = {"type": "integer", "minimum": 0}
    return {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "page": {"type": ["integer", "null"], "minimum": 1,
                     "description": "null on a page reached by `cursor`"},
            "totalPages": whole,
            "total": {**whole, "description": "exact number of matching leads"},
            "hasMore": {"type": "boolean"},
            "nextCursor": {"type": ["string", "null"],
                           "description": "pass as `cursor` for the next page; null on the last"},
        },
        "required": ["limit", "page", "totalPages", "total", "hasMore", "nextCursor"],
    }


def changes_schema() -> Schema:
    return {
        "type": "object",
        "properties": {
            "next": {"type": "string", "description": "pass as `since` to continue"},
            "hasMore": {"type": "boolean",
                        "description": "true: more changes wait; ask again now"},
        },
        "required": ["next", "hasMore"],
    }


def error_schema(errors: list[type[ApiError]]) -> Schema:
    """The error envelope for one HTTP status, with the codes it may carry."""
    return {
        "type": "object",
        "properties": {
            "success": {"const": False},
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "enum": sorted({e.code for e in errors})},
                    "message": {"type": "string",
                                "description": "names the parameter or field at fault"},
                    "details": {"type": "object",
                                "description": "{\"parameter\": ...} or {\"field\": ...}"},
                },
                "required": ["code", "message", "details"],
            },
            "meta": meta_schema(),
        },
        "required": ["success", "error", "meta"],
    }


# --- query parameters of GET /api/leads ---------------------------------------------------

_OP_WORDS = {"gte": "at or after / at least", "gt": "after / more than",
             "lte": "at or before / at most", "lt": "before / less than"}


def _value_words(field: Field) -> str:
    if field.kind is Kind.TIME:
        return ("a date (`YYYY-MM-DD`, the whole UTC day) or an instant "
                "(`YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z`, `+HH:MM` or nothing for UTC)")
    if field.kind is Kind.MONEY:
        return "a number like `100` or `99.50`"
    if field.choices:
        return "one of " + ", ".join(f"`{c}`" for c in field.choices)
    return "exact, case-sensitive text"


def filter_parameters() -> list[Schema]:
    """One query parameter per filter form of every filterable field: `f`, `f[gte]`, ..."""
    parameters: list[Schema] = []
    for field in FILTERABLE.values():
        words = _value_words(field)
        if EQ in field.operators:
            schema: Schema = {"type": "string"}
            if field.choices:
                schema["examples"] = [",".join(field.choices[:2])]
            parameters.append(_query(
                field.name, f"`{field.name}` equals {words}; a comma list means any of them.",
                schema,
            ))
        for op in BRACKET_OPERATORS:
            if op not in field.operators:
                continue
            name = f"{field.name}[{op}]"
            if op == EXISTS:
                parameters.append(_query(
                    name, f"`true`: {field.name} is set; `false`: it is null (any case).",
                    {"type": "string", "enum": ["true", "false", "TRUE", "FALSE"]},
                ))
            else:
                assert op in COMPARISONS
                parameters.append(_query(
                    name, f"{field.name} {_OP_WORDS[op]} {words}. Repeats all apply (AND).",
                    {"type": "string"},
                ))
    return parameters


def list_parameters() -> list[Schema]:
    sortable = [*SORTABLE]
    return [
        _query("limit", "Leads per page.", {"type": "integer", "minimum": 1,
                                           "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
        _query("cursor", "A `meta.pagination.nextCursor`: the next page of the query it came "
               "from (its filters, search, sort and fields travel in it; `limit` may change; "
               "`page` or a parameter it does not carry is refused).", {"type": "string"}),
        _query("page", "Page number; a page past the end is an empty `data`.",
               {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}),
        _query("sort", "Comma list of `field[:asc|desc]`; sortable: " + ", ".join(sortable)
               + " (legacy: " + ", ".join(LEGACY_SORT_NAMES) + "). Default `createdAt:desc`; "
               "nulls last; ties broken by id.",
               {"type": "string", "examples": ["value:desc,createdAt:asc"]}),
        fields_parameter(),
        _query("search", "Name, email or phone containing the term, ignoring case; with 3 or "
               "more digits also the phone's digits.",
               {"type": "string", "maxLength": MAX_SEARCH_LENGTH}),
        _query("updated_after", "Legacy: the same as `updatedAt[gte]`.", {"type": "string"}),
        *filter_parameters(),
    ]


def changes_parameters() -> list[Schema]:
    return [
        _query("since", "A `meta.changes.next` of an earlier answer; absent: from the "
               "beginning.", {"type": "string"}),
        _query("limit", "Leads per answer.", {"type": "integer", "minimum": 1,
                                             "maximum": MAX_FEED_LIMIT,
                                             "default": DEFAULT_FEED_LIMIT}),
        fields_parameter(),
        _query("search", "As in GET /api/leads.", {"type": "string",
                                                   "maxLength": MAX_SEARCH_LENGTH}),
        _query("updated_after", "Legacy: the same as `updatedAt[gte]`.", {"type": "string"}),
        *filter_parameters(),
    ]


def if_none_match_parameter() -> Schema:
    return {"name": "If-None-Match", "in": "header", "required": False,
            "description": "An ETag of an earlier answer: 304 while nothing it shows changed.",
            "schema": {"type": "string"}}


def fields_parameter() -> Schema:
    return _query(
        "fields",
        "Comma list of lead fields to return (plus `id`): "
        + ", ".join(f.name for f in LEAD_FIELDS) + ".",
        {"type": "string", "examples": ["id,name,email,status,value"]},
    )


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}
