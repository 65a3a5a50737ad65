"""schemathesis against /openapi.json on a seeded store: for requests generated from the
document (valid and invalid ones), no 5xx, and every answer's status, media type, headers
and body match what the document says. Bounded: a few dozen examples per operation."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from leads_api.api.endpoints import ENDPOINTS
from leads_api.lead import now_ms
from leads_api.sample import LeadSampler
from leads_api.store import Store
from leads_api.store.tenants import create_key, create_organization
from leads_api.store.unit_of_work import insert_leads

SEEDED_LEADS = 300
EXAMPLES = 50
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="session")
def seeded_key(store: Store) -> str:
    """A key of an organization holding realistic leads (each database gets its own)."""
    with store.write() as conn:
        org = create_organization(conn, "fuzz-" + secrets.token_hex(4), allow_bulk_updates=True)
        rows = LeadSampler(seed=7).leads(SEEDED_LEADS, now_ms=now_ms(), attribution_days=90)
        insert_leads(conn, org_id=org.id, rows=list(rows))
        return create_key(conn, org)[1]


@pytest.fixture(scope="session")
def api_schema(app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize(
    ("method", "path"), [(e.method, e.path) for e in ENDPOINTS], ids=lambda x: str(x)
)
def test_answers_match_the_document(
    api_schema: Any, seeded_key: str, method: str, path: str
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(headers={"X-API-KEY": seeded_key}, checks=CHECKS)

    answers_as_documented()
