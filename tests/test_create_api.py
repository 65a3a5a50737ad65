"""POST /api/leads (CONTRACT.md section 5), on both databases."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from api_support import assert_error, ms
from conftest import DAY_MS, ClientFor
from leads_api.fields import WRITABLE
from leads_api.lead import now_ms
from leads_api.store import Store
from leads_api.store.schema import idempotency_keys
from leads_api.store.tenants import Organization

CONSENTS = ("ad_storage", "ad_user_data", "analytics_storage", "ad_personalization")


def create(client: TestClient, body: Any, **kwargs: Any) -> dict[str, Any]:
    """POST a lead that must be accepted; the stored lead object."""
    response = client.post("/api/leads", json=body, **kwargs)
    assert response.status_code == 201, response.text
    lead_id = response.json()["data"]["id"]
    lead: dict[str, Any] = client.get(f"/api/leads/{lead_id}").json()["data"]
    return lead


def total(client: TestClient) -> int:
    count: int = client.get("/api/leads?limit=1").json()["meta"]["pagination"]["total"]
    return count


# --- the answer and the new lead ------------------------------------------------------------


def test_create_answers_201_with_the_new_id(client: TestClient) -> None:
    response = client.post("/api/leads", json={"name": "Ada Lovelace"})
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    assert set(body["data"]) == {"id", "message"}
    assert body["data"]["message"] == "Lead added"
    assert re.fullmatch(r"lead_[0-9A-Za-z]{16,}", body["data"]["id"])
    assert re.fullmatch(r"req_[0-9a-f]{12}", body["meta"]["requestId"])
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]
    assert "Idempotent-Replayed" not in response.headers


def test_new_lead_is_open_from_the_api_and_stamped_now(client: TestClient) -> None:
    before = now_ms()
    lead = create(client, {"email": "ada@example.com"})
    after = now_ms()
    assert lead["status"] == "open"
    assert lead["source"] == "api"
    assert lead["createdAt"] == lead["updatedAt"]
    assert before <= ms(lead["createdAt"]) <= after
    assert lead["qualifiedAt"] is None
    assert lead["value"] is None
    assert lead["lossReason"] is None
    assert ms(lead["expiresAt"]) == ms(lead["createdAt"]) + 90 * DAY_MS


def test_expires_at_follows_the_organizations_attribution_days(
    make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    with client_for(make_org(attribution_days=30)) as client:
        lead = create(client, {"name": "Thirty days"})
    assert ms(lead["expiresAt"]) - ms(lead["createdAt"]) == 30 * DAY_MS


def test_every_accepted_field_is_stored(client: TestClient) -> None:
    body: dict[str, Any] = {}
    for name in WRITABLE:
        body[name] = True if name in CONSENTS else f"{name} value"
    lead = create(client, body)
    for name, sent in body.items():
        assert lead[name] == sent, name


def test_strings_are_trimmed_and_empty_ones_stored_as_null(client: TestClient) -> None:
    lead = create(
        client,
        {"name": "  Ada  ", "email": "   ", "phone": "\t+1 555 0100\n", "note": "",
         "utm_source": " "},
    )
    assert lead["name"] == "Ada"
    assert lead["phone"] == "+1 555 0100"
    assert lead["email"] is None
    assert lead["note"] is None
    assert lead["utm_source"] is None


def test_formats_are_never_judged(client: TestClient) -> None:
    body = {"email": "not an email", "phone": "call me maybe", "website": "::::/??", "path": "x"}
    lead = create(client, body)
    assert {k: lead[k] for k in body} == body


def test_numbers_for_string_fields_are_kept_as_text(client: TestClient) -> None:
    lead = create(client, {"phone": 5550100, "name": 1.5, "labelId": 42})
    assert (lead["phone"], lead["name"], lead["labelId"]) == ("5550100", "1.5", "42")


@pytest.mark.parametrize(
    "body",
    [{}, {"note": "only a note"}, {"name": "  "}, {"name": None, "email": "", "phone": None},
     {"website": "https://example.com", "gclid": "abc"}, {"custom": ""}, {"custom": None}],
)
def test_a_lead_needs_name_email_phone_or_custom(client: TestClient, body: Any) -> None:
    error = assert_error(client.post("/api/leads", json=body), 400, "VALIDATION_ERROR")
    assert "name" in error["details"]["field"]
    assert "custom" in error["message"]
    assert total(client) == 0


@pytest.mark.parametrize("field", ["name", "email", "phone", "custom"])
def test_any_one_contact_field_is_enough(client: TestClient, field: str) -> None:
    assert create(client, {field: "x"})[field] == "x"


@pytest.mark.parametrize(
    "key",
    ["status", "value", "source", "id", "createdAt", "lossReason", "googleAdsAdId", "Name",
     "unknown", ""],
)
def test_unknown_keys_are_refused_by_name(client: TestClient, key: str) -> None:
    error = assert_error(
        client.post("/api/leads", json={"name": "Ada", key: "x"}), 400, "VALIDATION_ERROR",
        field=key,
    )
    assert repr(key) in error["message"]
    assert total(client) == 0


# --- custom, consent, types and lengths -----------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("  plain text  ", "plain text"),
        ('{"a": 1}', '{"a": 1}'),  # a string is kept as given
        ({"b": [1, 2.5, None], "a": {"x": "é"}}, '{"b":[1,2.5,null],"a":{"x":"é"}}'),
        ([1, "two", True], '[1,"two",true]'),
        (5000, "5000"),
        (False, "false"),
        ({}, "{}"),
    ],
)
def test_custom_is_a_string_or_compact_json(client: TestClient, sent: Any, stored: str) -> None:
    assert create(client, {"custom": sent})["custom"] == stored


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(True, True), (False, False), ("granted", True), ("denied", False), ("true", True),
     ("false", False), (" Granted ", True), (None, None)],
)
def test_consent_values(client: TestClient, sent: Any, stored: bool | None) -> None:
    assert create(client, {"name": "Ada", "ad_storage": sent})["ad_storage"] is stored


@pytest.mark.parametrize("sent", ["yes", 1, 0, "maybe", {}, [], "grant"])
def test_bad_consent_values_are_refused(client: TestClient, sent: Any) -> None:
    response = client.post("/api/leads", json={"name": "Ada", "ad_user_data": sent})
    error = assert_error(response, 400, "VALIDATION_ERROR", field="ad_user_data")
    assert "granted" in error["message"]


@pytest.mark.parametrize(
    "body",
    [{"name": True}, {"email": {"a": 1}}, {"phone": [1, 2]}, {"name": "Ada", "note": False},
     {"name": "Ada", "website": {}}],
)
def test_booleans_and_objects_for_string_fields_are_refused(client: TestClient, body: Any) -> None:
    field = next(k for k, v in body.items() if not isinstance(v, str))
    assert_error(client.post("/api/leads", json=body), 400, "VALIDATION_ERROR", field=field)


@pytest.mark.parametrize(
    "body", [{"name": "A\x00da"}, {"name": "Ada", "note": "\x00"}, {"custom": "x\x00"}]
)
def test_nul_characters_are_refused(client: TestClient, body: Any) -> None:
    field = next(k for k, v in body.items() if "\x00" in v)
    assert_error(client.post("/api/leads", json=body), 400, "VALIDATION_ERROR", field=field)
    assert total(client) == 0


@pytest.mark.parametrize(
    ("field", "limit"), [("note", 10_000), ("name", 2_000), ("email", 2_000), ("gclid", 2_000),
                         ("epik", 2_000), ("sessionId", 255)]
)
def test_length_limits_in_characters(client: TestClient, field: str, limit: int) -> None:
    at_limit = " " + "é" * limit + " "  # trimmed first; characters, not bytes
    assert create(client, {"phone": "1", field: at_limit})[field] == "é" * limit
    over = client.post("/api/leads", json={"phone": "1", field: "é" * (limit + 1)})
    error = assert_error(over, 400, "VALIDATION_ERROR", field=field)
    assert str(limit) in error["message"].replace(",", "")


def test_custom_is_limited_to_64_kib_of_utf8(client: TestClient) -> None:
    assert create(client, {"custom": "é" * 32_768})["custom"] == "é" * 32_768  # 65,536 bytes
    over = client.post("/api/leads", json={"custom": "é" * 32_768 + "x"})
    assert_error(over, 400, "VALIDATION_ERROR", field="custom")
    big_json = {"items": ["x" * 100] * 700}  # over 64 KiB once written as JSON text
    assert_error(client.post("/api/leads", json={"custom": big_json}), 400, "VALIDATION_ERROR",
                 field="custom")


# --- keys -----------------------------------------------------------------------------------


def test_read_only_key_cannot_create(
    org: Organization, client_for: ClientFor, client: TestClient
) -> None:
    with client_for(org, read_only=True) as reader:
        response = reader.post("/api/leads", json={"name": "Ada"})
        assert_error(response, 403, "FORBIDDEN")
        assert "read-only" in response.json()["error"]["message"]
    assert total(client) == 0


def test_create_needs_a_key(anonymous: TestClient, client: TestClient) -> None:
    assert_error(anonymous.post("/api/leads", json={"name": "Ada"}), 401, "UNAUTHORIZED")
    assert_error(
        anonymous.post("/api/leads", json={"name": "Ada"}, headers={"X-API-KEY": "lak_nope"}),
        401, "UNAUTHORIZED",
    )
    assert total(client) == 0


# What a write's body holds is looked at only after its key (in the same worker thread as
# the write, api/write.py): an unknown key is 401 and a read-only one 403 whatever the body.
_BAD_BODIES = [
    pytest.param({"content": b"{not json", "headers": {"Content-Type": "application/json"}},
                 id="not-json"),
    pytest.param({"content": b"[1]", "headers": {"Content-Type": "application/json"}},
                 id="an-array"),
    pytest.param({"content": b'{"name": "Ada"}', "headers": {"Content-Type": "text/plain"}},
                 id="not-json-media-type"),
    pytest.param({"content": b"{}" + b" " * (1024 * 1024),
                  "headers": {"Content-Type": "application/json"}}, id="over-the-limit"),
    pytest.param({"json": {"name": "Ada", "status": "nonsense", "value": "x"}},
                 id="invalid-fields"),
    pytest.param({"json": {"name": "Ada"}, "headers": {"Idempotency-Key": " "}},
                 id="blank-idempotency-key"),
]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("request_body", _BAD_BODIES)
def test_the_key_is_answered_before_anything_the_body_holds(
    org: Organization, client_for: ClientFor, anonymous: TestClient, client: TestClient,
    method: str, request_body: dict[str, Any],
) -> None:
    headers = request_body.get("headers", {})
    body = {k: v for k, v in request_body.items() if k != "headers"}
    for key, status, code in (
        (None, 401, "UNAUTHORIZED"), ("lak_" + "A" * 40, 401, "UNAUTHORIZED")
    ):
        sent = headers if key is None else {**headers, "X-API-KEY": key}
        assert_error(anonymous.request(method, "/api/leads", headers=sent, **body), status, code)
    with client_for(org, read_only=True) as reader:
        assert_error(reader.request(method, "/api/leads", headers=headers, **body),
                     403, "FORBIDDEN")
    # and with a good key, the body's own error
    assert client.request(method, "/api/leads", headers=headers, **body).status_code in (
        400, 413, 415
    )
    assert total(client) == 0


def test_leads_go_to_the_keys_organization_only(
    client: TestClient, make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    lead = create(client, {"name": "Mine"})
    with client_for(make_org()) as other:
        assert total(other) == 0
        assert other.get(f"/api/leads/{lead['id']}").status_code == 404


# --- Idempotency-Key ------------------------------------------------------------------------


def test_a_repeated_key_returns_the_first_answer_and_creates_nothing(client: TestClient) -> None:
    key = {"Idempotency-Key": "order-1001"}
    first = client.post("/api/leads", json={"name": "Ada", "email": "a@x.io"}, headers=key)
    again = client.post("/api/leads", json={"email": "a@x.io", "name": "Ada"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["data"] == first.json()["data"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["meta"]["requestId"] != first.json()["meta"]["requestId"]
    assert again.headers["X-Request-Id"] == again.json()["meta"]["requestId"]
    assert total(client) == 1


def test_a_reused_key_with_another_body_is_a_conflict(client: TestClient) -> None:
    key = {"Idempotency-Key": "order-1002"}
    assert client.post("/api/leads", json={"name": "Ada"}, headers=key).status_code == 201
    response = client.post("/api/leads", json={"name": "Grace"}, headers=key)
    assert_error(response, 409, "CONFLICT", parameter="Idempotency-Key")
    assert total(client) == 1


def test_keys_belong_to_one_organization(
    client: TestClient, make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    key = {"Idempotency-Key": "shared-key"}
    mine = client.post("/api/leads", json={"name": "Ada"}, headers=key)
    with client_for(make_org()) as other:
        theirs = other.post("/api/leads", json={"name": "Ada"}, headers=key)
        assert theirs.status_code == 201
        assert "Idempotent-Replayed" not in theirs.headers
        assert total(other) == 1
    assert theirs.json()["data"]["id"] != mine.json()["data"]["id"]
    assert total(client) == 1


def test_keys_older_than_24_hours_are_forgotten(
    client: TestClient, store: Store, org: Organization
) -> None:
    key = {"Idempotency-Key": "yesterday"}
    first = client.post("/api/leads", json={"name": "Ada"}, headers=key)
    with store.write() as conn:  # the first use, 24 hours and a second ago
        conn.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.org_id == org.id, idempotency_keys.c.key == "yesterday")
            .values(created_at=idempotency_keys.c.created_at - DAY_MS - 1000)
        )
    again = client.post("/api/leads", json={"name": "Grace"}, headers=key)
    assert again.status_code == 201
    assert again.json()["data"]["id"] != first.json()["data"]["id"]
    assert total(client) == 2
    # ...and the key now remembers the second body
    replay = client.post("/api/leads", json={"name": "Grace"}, headers=key)
    assert replay.json()["data"] == again.json()["data"]
    assert total(client) == 2


def test_a_refused_create_does_not_use_up_its_key(client: TestClient) -> None:
    key = {"Idempotency-Key": "retry-after-fix"}
    assert client.post("/api/leads", json={"note": "no contact"}, headers=key).status_code == 400
    fixed = client.post("/api/leads", json={"name": "Ada"}, headers=key)
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
def test_bad_idempotency_keys_are_refused(client: TestClient, key: str) -> None:
    response = client.post("/api/leads", json={"name": "Ada"}, headers={"Idempotency-Key": key})
    assert_error(response, 400, "VALIDATION_ERROR", parameter="Idempotency-Key")
    assert total(client) == 0


def test_a_255_character_key_is_fine(client: TestClient, store: Store, org: Organization) -> None:
    key = {"Idempotency-Key": "k" * 255}
    assert client.post("/api/leads", json={"name": "Ada"}, headers=key).status_code == 201
    assert client.post("/api/leads", json={"name": "Ada"}, headers=key).status_code == 201
    assert total(client) == 1
    with store.read() as conn:
        stored = conn.execute(
            sa.select(idempotency_keys.c.key).where(idempotency_keys.c.org_id == org.id)
        ).scalars().all()
    assert stored == ["k" * 255]


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count, timeout=30)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_creates_with_one_key_create_one_lead(client: TestClient) -> None:
    key = {"Idempotency-Key": "race"}
    responses = in_threads(
        6, lambda _: client.post("/api/leads", json={"name": "Once"}, headers=key)
    )
    assert [r.status_code for r in responses] == [201] * 6, [r.text for r in responses]
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    assert total(client) == 1


# --- the monthly limit ----------------------------------------------------------------------


def month_start_ms() -> int:
    now = datetime.now(UTC)
    return int(datetime(now.year, now.month, 1, tzinfo=UTC).timestamp() * 1000)


def test_the_monthly_limit_stops_creates(
    make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    with client_for(make_org(leads_limit=2)) as client:
        create(client, {"name": "One"})
        create(client, {"name": "Two"})
        response = client.post("/api/leads", json={"name": "Three"})
        error = assert_error(response, 403, "FORBIDDEN")
        assert "monthly limit of 2 leads" in error["message"]
        assert total(client) == 2


def test_a_zero_limit_refuses_every_create(
    make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    with client_for(make_org(leads_limit=0)) as client:
        assert_error(client.post("/api/leads", json={"name": "One"}), 403, "FORBIDDEN")
        assert total(client) == 0


def test_the_limit_counts_this_months_leads_of_any_source(
    make_org: Callable[..., Organization], client_for: ClientFor, add_leads: Any
) -> None:
    limited = make_org(leads_limit=3)
    start = month_start_ms()
    add_leads(
        {"created_at": start - 1, "source": "api"},  # last month: not counted
        {"created_at": start - 40 * DAY_MS},
        {"created_at": start, "source": "import"},  # this month, imported: counted
        into=limited,
    )
    with client_for(limited) as client:
        create(client, {"name": "Two"})
        create(client, {"name": "Three"})
        assert client.post("/api/leads", json={"name": "Four"}).status_code == 403
        assert total(client) == 5


def test_a_repeat_under_the_limit_still_gets_its_first_answer(
    make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    key = {"Idempotency-Key": "last-one"}
    with client_for(make_org(leads_limit=1)) as client:
        first = client.post("/api/leads", json={"name": "One"}, headers=key)
        again = client.post("/api/leads", json={"name": "One"}, headers=key)
        assert again.status_code == 201
        assert again.json()["data"] == first.json()["data"]
        assert client.post("/api/leads", json={"name": "Two"}).status_code == 403


def test_concurrent_creates_never_pass_the_limit(
    make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    with client_for(make_org(leads_limit=3)) as client:
        responses = in_threads(
            8, lambda i: client.post("/api/leads", json={"name": f"Racer {i}"})
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * 3 + [403] * 5, [r.text for r in responses]
        assert total(client) == 3


def settings_reads(statements: list[str]) -> int:
    return sum("leads_limit" in s and "api_keys" not in s for s in statements)


@pytest.mark.parametrize("leads_limit", [None, 5])
def test_a_create_reads_the_settings_again_only_to_hold_a_limit(
    make_org: Callable[..., Organization], client_for: ClientFor, leads_limit: int | None
) -> None:
    """The key's check already read the organization; a create re-reads its settings only
    when a monthly limit must be held (each statement of a write runs while the writers
    behind it wait)."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with client_for(make_org(leads_limit=leads_limit)) as client:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
        try:
            create(client, {"name": "Counted"})
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert any("INSERT INTO leads" in s for s in statements)  # the capture saw the write
    assert settings_reads(statements) == (0 if leads_limit is None else 1)
