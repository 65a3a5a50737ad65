"""GET /openapi.json: a valid OpenAPI 3.1 document of every route, field, filter and error."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from leads_api.errors import ApiError, MethodNotAllowed
from leads_api.fields import (
    BRACKET_OPERATORS,
    EQ,
    FILTERABLE,
    LEAD_FIELDS,
    SORTABLE,
    WRITABLE,
    Kind,
)


@pytest.fixture
def spec(anonymous: TestClient) -> dict[str, Any]:
    response = anonymous.get("/openapi.json")  # no key needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_route_of_the_app_is_documented_with_its_methods(
    app: Any, spec: dict[str, Any]
) -> None:
    routes = {r.path: set(r.methods or ()) - {"HEAD"} for r in app.routes if isinstance(r, Route)}
    documented = {path: {m.upper() for m in item} for path, item in spec["paths"].items()}
    assert routes == documented


def test_the_lead_object_lists_every_field_in_order(spec: dict[str, Any]) -> None:
    lead = spec["components"]["schemas"]["Lead"]
    assert list(lead["properties"]) == [f.name for f in LEAD_FIELDS]
    assert lead["additionalProperties"] is False
    for field in LEAD_FIELDS:
        schema = lead["properties"][field.name]
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert ("null" in kinds) == field.nullable, field.name
        if field.choices:
            assert schema["enum"] == list(field.choices)
        if field.kind is Kind.TEXT:
            assert schema["maxLength"] == field.max_length


def _parameters(spec: dict[str, Any], method: str, path: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in spec["paths"][path][method].get("parameters", [])}


def test_every_filter_form_of_every_filterable_field_is_a_parameter(spec: dict[str, Any]) -> None:
    parameters = _parameters(spec, "get", "/api/leads")
    expected = set()
    for field in FILTERABLE.values():
        if EQ in field.operators:
            expected.add(field.name)
        expected |= {f"{field.name}[{op}]" for op in BRACKET_OPERATORS if op in field.operators}
    shaping = ("limit", "page", "sort", "fields", "search", "updated_after", "cursor",
               "If-None-Match")
    filters = {name for name in parameters if name not in shaping}
    assert filters == expected
    feed = _parameters(spec, "get", "/api/leads/changes")
    assert {name for name in feed if name not in ("since", *shaping)} == expected
    assert not {"sort", "page", "cursor"} & set(feed)
    assert "sessionId" in parameters and "sessionId[exists]" not in parameters
    assert "epik[exists]" in parameters and "epik[gte]" not in parameters
    for name in ("limit", "page", "sort", "fields", "search", "updated_after"):
        assert parameters[name]["in"] == "query"


def test_sortable_and_selectable_fields_are_named(spec: dict[str, Any]) -> None:
    parameters = _parameters(spec, "get", "/api/leads")
    for name in SORTABLE:
        assert name in parameters["sort"]["description"]
    for field in LEAD_FIELDS:
        assert field.name in parameters["fields"]["description"]


def test_the_create_body_takes_exactly_the_writable_fields(spec: dict[str, Any]) -> None:
    body = spec["components"]["schemas"]["NewLead"]
    assert set(body["properties"]) == set(WRITABLE)
    assert body["additionalProperties"] is False
    operation = spec["paths"]["/api/leads"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewLead"}


def test_every_error_code_appears_with_its_status(spec: dict[str, Any]) -> None:
    seen: dict[str, set[str]] = {}
    for item in spec["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                codes = schema.get("properties", {}).get("error", {}).get("properties", {})
                for code in codes.get("code", {}).get("enum", []):
                    seen.setdefault(code, set()).add(status)
    every = {cls for cls in _subclasses(ApiError)} - {MethodNotAllowed}  # routing's, not a route's
    for error in every:
        assert str(error.status) in seen.get(error.code, set()), error.code


def test_keys_are_described_and_required_on_the_api_only(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {**schemes["ApiKeyHeader"], "type": "apiKey",
                                       "in": "header", "name": "X-API-KEY"}
    assert schemes["BearerToken"]["scheme"] == "bearer"
    assert "X-API-KEY" in spec["info"]["description"]
    for path, item in spec["paths"].items():
        for operation in item.values():
            assert bool(operation["security"]) == path.startswith("/api/"), path


def test_the_answers_it_documents_are_the_answers_given(
    client: TestClient, spec: dict[str, Any]
) -> None:
    """A few real answers checked against the document's own schemas (schemathesis, in
    test_openapi_fuzz.py, does this for generated requests)."""
    from jsonschema import Draft202012Validator

    def check(schema: dict[str, Any], body: Any) -> None:
        root = {**schema, "components": spec["components"]}
        Draft202012Validator(root).validate(body)

    created = client.post("/api/leads", json={"name": "Ada", "sessionId": "s-1", "epik": "e"})
    post = spec["paths"]["/api/leads"]["post"]["responses"]
    check(post["201"]["content"]["application/json"]["schema"], created.json())
    listed = client.get("/api/leads?sessionId=s-1&epik[exists]=true")
    get = spec["paths"]["/api/leads"]["get"]["responses"]
    check(get["200"]["content"]["application/json"]["schema"], listed.json())
    assert listed.json()["data"][0]["sessionId"] == "s-1"
    bad = client.get("/api/leads?sessionId[exists]=true")
    check(get["400"]["content"]["application/json"]["schema"], bad.json())


def _subclasses(cls: type[ApiError]) -> set[type[ApiError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found
