"""Operating the service: health probes, the access log, metrics and CORS."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from leads_api.api import access_log, create_app
from leads_api.api.answer_cache import AnswerCache
from leads_api.store import Store, create_engine
from leads_api.store.tenants import Organization
from server import free_port

# --- databases that do not answer, or hold no schema --------------------------------------


@pytest.fixture
def unreachable_store(database_url: str, tmp_path: Any) -> Iterator[Store]:
    """A store of the same kind whose database cannot be reached."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/no/such/dir/leads.db"
    else:
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    store = Store(create_engine(url))
    yield store
    store.dispose()


@pytest.fixture
def empty_store(database_url: str, tmp_path: Any) -> Iterator[Store]:
    """A store of the same kind that answers but was never migrated."""
    if database_url.startswith("sqlite"):
        store = Store(create_engine(f"sqlite:///{tmp_path}/empty.db"))
        yield store
        store.dispose()
        return
    schema = "e_" + secrets.token_hex(6)
    admin = create_engine(database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    base = database_url.split("?")[0]
    store = Store(create_engine(f"{base}?options=-csearch_path%3D{schema}"))
    yield store
    store.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


# --- health ---------------------------------------------------------------------------------


def test_healthz_and_readyz_need_no_key(anonymous: TestClient) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "schema": "current"}
    assert ready.headers["X-Request-Id"].startswith("req_")


def test_readyz_is_503_while_the_database_does_not_answer(unreachable_store: Store) -> None:
    with TestClient(create_app(unreachable_store)) as client:
        assert client.get("/healthz").status_code == 200  # the process itself is fine
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "database": "unavailable", "schema": "unknown"}


def test_readyz_is_503_on_a_schema_that_is_not_current(empty_store: Store) -> None:
    with TestClient(create_app(empty_store)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "database": "ok", "schema": "outdated"}


# --- the access log -------------------------------------------------------------------------


@pytest.fixture
def log_lines(request: pytest.FixtureRequest) -> Iterator[Callable[[], list[str]]]:
    """The access log's lines from here on (JSON, unless the test is parametrised)."""
    fmt = getattr(request, "param", "json")
    stream = io.StringIO()
    access_log.configure_access_log(fmt, stream)
    yield lambda: stream.getvalue().splitlines()
    access_log.configure_access_log()


def test_one_json_line_per_request_with_its_id_and_organization(
    client: TestClient, org: Organization, api_key: str, log_lines: Callable[[], list[str]]
) -> None:
    created = client.post("/api/leads", json={"name": "Ada", "email": "ada@example.com"})
    listed = client.get("/api/leads?search=ada@example.com&utm_source=x")
    checked = client.get("/api/check")
    missing = client.get("/nowhere")
    lines = [json.loads(line) for line in log_lines()]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("POST", "/api/leads", 201), ("GET", "/api/leads", 200), ("GET", "/api/check", 200),
        ("GET", "/nowhere", 404)]
    for line, response in zip(lines, (created, listed, checked, missing), strict=True):
        assert line["requestId"] == response.headers["X-Request-Id"]
        assert line["event"] == "request" and line["level"] == "info"
        assert isinstance(line["durationMs"], float | int) and line["durationMs"] >= 0
        assert line["ts"].endswith("Z")
    assert [x["orgId"] for x in lines] == [org.id, org.id, org.id, None]
    text = "\n".join(log_lines())
    assert api_key not in text and api_key[:12] not in text
    assert "ada@" not in text and "Ada" not in text and "search" not in text


def test_no_key_and_no_personal_data_even_when_sent_where_they_do_not_belong(
    client: TestClient, api_key: str, log_lines: Callable[[], list[str]]
) -> None:
    client.get(f"/api/leads?api_key={api_key}")
    client.get("/api/leads/ada@example.com")
    client.get("/api/leads/+44%2020%207946%200000")
    client.get("/api/leads/lead_0123456789abcdefABCD")
    lines = [json.loads(line) for line in log_lines()]
    text = "\n".join(log_lines())
    assert api_key not in text and "ada@" not in text and "7946" not in text
    assert [x["path"] for x in lines] == [
        "/api/leads", "/api/leads/{lead_id}", "/api/leads/{lead_id}",
        "/api/leads/lead_0123456789abcdefABCD"]  # an id is what a client reports: kept


@pytest.mark.parametrize("log_lines", ["text"], indirect=True)
def test_the_text_format(client: TestClient, org: Organization,
                         log_lines: Callable[[], list[str]]) -> None:
    response = client.get("/api/leads?limit=1")
    [line] = log_lines()
    rid = response.headers["X-Request-Id"]
    assert f" {rid} GET /api/leads 200 " in line and line.endswith(f"ms org={org.id}")


def test_an_unexpected_error_is_logged_as_a_500(
    store: Store, log_lines: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("leads_api.api.read.list_leads", broken)
    app = create_app(store, AnswerCache(0))
    with TestClient(app, raise_server_exceptions=False) as client:
        org_key = _new_key(store)
        response = client.get("/api/leads", headers={"X-API-KEY": org_key})
    assert response.status_code == 500
    lines = [json.loads(line) for line in log_lines()]
    assert lines[-1]["status"] == 500 and lines[-1]["path"] == "/api/leads"


def test_the_log_can_be_turned_off(store: Store, monkeypatch: pytest.MonkeyPatch,
                                   log_lines: Callable[[], list[str]]) -> None:
    monkeypatch.setenv("LEADS_ACCESS_LOG", "0")
    with TestClient(create_app(store)) as client:
        response = client.get("/healthz")
    assert log_lines() == []
    assert response.headers["X-Request-Id"].startswith("req_")  # ids do not need the log


# --- metrics --------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metrics_app(store: Store, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LEADS_METRICS", "1")
    monkeypatch.delenv("LEADS_METRICS_TOKEN", raising=False)
    return create_app(store)


def test_metrics_are_off_by_default(anonymous: TestClient) -> None:
    response = anonymous.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert "LEADS_METRICS" in response.json()["error"]["message"]


def test_requests_latencies_and_cache_lookups_are_counted(
    metrics_app: Any, org: Organization, make_key: Callable[..., str]
) -> None:
    with TestClient(metrics_app, headers={"X-API-KEY": make_key(org)}) as client:
        before = client.get("/metrics").text
        for _ in range(3):
            assert client.get("/api/leads?limit=3").status_code == 200
        assert client.get("/api/leads?limit=0").status_code == 400
        client.get(f"/api/leads/{'lead_' + 'x' * 20}")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    ok = {"route": "/api/leads", "method": "GET", "status": "200"}
    assert delta("leads_http_requests_total", **ok) == 3
    assert delta("leads_http_requests_total", **{**ok, "status": "400"}) == 1
    assert delta("leads_http_requests_total", route="/api/leads/{lead_id}", method="GET",
                 status="404") == 1
    assert delta("leads_http_request_duration_seconds_count", route="/api/leads",
                 method="GET") == 4
    assert delta("leads_http_request_duration_seconds_bucket", route="/api/leads",
                 method="GET", le="+Inf") == 4
    assert delta("leads_answer_cache_lookups_total", result="miss") >= 1
    assert delta("leads_answer_cache_lookups_total", result="hit") >= 2


def test_database_errors_are_counted(unreachable_store: Store,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADS_METRICS", "1")
    with TestClient(create_app(unreachable_store)) as client:
        before = client.get("/metrics").text
        assert client.get("/api/check", headers={"X-API-KEY": "lak_x"}).status_code == 503
        after = client.get("/metrics").text
    kind = {"kind": "unavailable"}
    assert (_value(after, "leads_database_errors_total", **kind)
            - _value(before, "leads_database_errors_total", **kind)) == 1


def test_metrics_other_modules_register_are_exposed(metrics_app: Any) -> None:
    name = "leads_test_other_" + secrets.token_hex(4)
    Counter(name, "registered elsewhere").inc(7)
    with TestClient(metrics_app) as client:
        assert _value(client.get("/metrics").text, name + "_total") == 7


def test_a_metrics_token_is_required_when_set(store: Store,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADS_METRICS", raising=False)
    monkeypatch.setenv("LEADS_METRICS_TOKEN", "s3cret-token")
    with TestClient(create_app(store)) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "UNAUTHORIZED"
        right = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert right.status_code == 200 and "leads_http_requests_total" in right.text


# --- CORS -----------------------------------------------------------------------------------

ORIGIN = "https://forms.example.com"


def test_no_cors_unless_configured(anonymous: TestClient) -> None:
    preflight = anonymous.options("/api/leads", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers


@pytest.fixture
def cors_client(store: Store, monkeypatch: pytest.MonkeyPatch,
                org: Organization, make_key: Callable[..., str]) -> Iterator[TestClient]:
    monkeypatch.setenv("LEADS_CORS_ORIGINS", f" {ORIGIN}/ , https://other.example ")
    with TestClient(create_app(store), headers={"X-API-KEY": make_key(org)}) as client:
        yield client


def test_a_preflight_from_a_listed_origin_is_allowed(cors_client: TestClient) -> None:
    response = cors_client.options("/api/leads", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-API-KEY, Idempotency-Key, Content-Type"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip().lower() for h in
               response.headers["access-control-allow-headers"].split(",")}
    assert {"x-api-key", "idempotency-key", "content-type"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]


def test_answers_to_a_listed_origin_expose_the_request_id(cors_client: TestClient) -> None:
    response = cors_client.post("/api/leads", json={"name": "Ada"}, headers={"Origin": ORIGIN})
    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Request-Id" in response.headers["access-control-expose-headers"]


def test_other_origins_get_no_cors_headers(cors_client: TestClient) -> None:
    preflight = cors_client.options("/api/leads", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    answer = cors_client.get("/api/leads", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def _new_key(store: Store) -> str:
    from leads_api.store.tenants import create_key, create_organization

    with store.write() as conn:
        org = create_organization(conn, "o-" + secrets.token_hex(6))
        return create_key(conn, org)[1]
