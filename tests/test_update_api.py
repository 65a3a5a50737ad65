"""PATCH /api/leads (CONTRACT.md section 6), on both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from api_support import assert_error, ms
from conftest import BASE_MS, ClientFor
from leads_api.lead import format_timestamp, now_ms
from leads_api.store.tenants import Organization

UPDATED = "Lead updated successfully"


def lead(client: TestClient, lead_id: str) -> dict[str, Any]:
    response = client.get(f"/api/leads/{lead_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["data"]
    return found


def patch(client: TestClient, body: Any) -> dict[str, Any]:
    """A PATCH that must succeed; its data."""
    response = client.patch("/api/leads", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-Id"] == response.json()["meta"]["requestId"]
    data: dict[str, Any] = response.json()["data"]
    return data


# --- the answer and what changes ------------------------------------------------------------


def test_qualify_by_id(client: TestClient, add_leads: Any) -> None:
    (row,) = add_leads({"name": "Ada"})
    before = now_ms()
    data = patch(client, {"id": row["id"], "status": "qualified"})
    after = now_ms()
    assert data == {
        "leadId": row["id"], "leadIds": [row["id"]], "leadsUpdated": 1, "message": UPDATED
    }
    stored = lead(client, row["id"])
    assert stored["status"] == "qualified"
    assert before <= ms(stored["qualifiedAt"]) <= after
    assert before <= ms(stored["updatedAt"]) <= after
    assert stored["createdAt"] == format_timestamp(BASE_MS)
    assert stored["name"] == "Ada"


def test_qualified_at_is_kept_once_set(client: TestClient, add_leads: Any) -> None:
    (row,) = add_leads({"name": "Ada", "status": "qualified", "qualified_at": BASE_MS})
    patch(client, {"id": row["id"], "status": "qualified"})
    patch(client, {"id": row["id"], "status": "won", "alsoQualified": True})
    assert lead(client, row["id"])["qualifiedAt"] == format_timestamp(BASE_MS)


@pytest.mark.parametrize(
    ("body", "qualified_at_set"),
    [
        ({"status": "won", "alsoQualified": True}, True),
        ({"status": "won"}, False),
        ({"status": "won", "alsoQualified": False}, False),
        ({"status": "lost", "alsoQualified": True}, False),
        ({"status": "qualified", "alsoQualified": False}, True),
        ({"value": 10, "alsoQualified": True}, False),
    ],
)
def test_when_qualified_at_is_set(
    client: TestClient, add_leads: Any, body: dict[str, Any], qualified_at_set: bool
) -> None:
    (row,) = add_leads({"name": "Ada"})
    patch(client, {"id": row["id"], **body})
    assert (lead(client, row["id"])["qualifiedAt"] is not None) is qualified_at_set


def test_changed_to_is_the_legacy_status_and_status_wins(
    client: TestClient, add_leads: Any
) -> None:
    first, second = add_leads({"name": "A"}, {"name": "B"})
    patch(client, {"id": first["id"], "changedTo": "lost"})
    assert lead(client, first["id"])["status"] == "lost"
    patch(client, {"id": second["id"], "changedTo": "lost", "status": "won"})
    assert lead(client, second["id"])["status"] == "won"
    patch(client, {"id": second["id"], "changedTo": "qualified", "status": None})
    assert lead(client, second["id"])["status"] == "qualified"


@pytest.mark.parametrize(
    ("field", "sent"),
    [("status", "open"), ("status", "WON"), ("status", "closed"), ("status", 3),
     ("status", ""), ("changedTo", "open"), ("changedTo", True)],
)
def test_bad_statuses_are_refused_with_the_allowed_list(
    client: TestClient, add_leads: Any, field: str, sent: Any
) -> None:
    (row,) = add_leads({"name": "Ada"})
    response = client.patch("/api/leads", json={"id": row["id"], field: sent})
    error = assert_error(response, 400, "VALIDATION_ERROR", field=field)
    assert "qualified, won, lost" in error["message"]
    assert lead(client, row["id"])["status"] == "open"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(5000, 5000), (5000.0, 5000), ("99.50", 99.5), (12.25, 12.25), (" 7 ", 7), (0, 0),
     (None, None), ("", None)],
)
def test_value(client: TestClient, add_leads: Any, sent: Any, stored: Any) -> None:
    (row,) = add_leads({"name": "Ada", "value_cents": 123})
    patch(client, {"id": row["id"], "value": sent})
    assert lead(client, row["id"])["value"] == stored


@pytest.mark.parametrize("sent", ["abc", -1, "-1", 1.234, "1.234", True, {}, [5], "1e3"])
def test_bad_values_are_refused(client: TestClient, add_leads: Any, sent: Any) -> None:
    (row,) = add_leads({"name": "Ada", "value_cents": 123})
    response = client.patch("/api/leads", json={"id": row["id"], "value": sent})
    assert_error(response, 400, "VALIDATION_ERROR", field="value")
    assert lead(client, row["id"])["value"] == 1.23


def test_note_is_set_trimmed_cleared_and_limited(client: TestClient, add_leads: Any) -> None:
    (row,) = add_leads({"name": "Ada"})
    patch(client, {"id": row["id"], "note": "  called back  "})
    assert lead(client, row["id"])["note"] == "called back"
    patch(client, {"id": row["id"], "note": None})
    assert lead(client, row["id"])["note"] is None
    too_long = client.patch("/api/leads", json={"id": row["id"], "note": "x" * 10_001})
    assert_error(too_long, 400, "VALIDATION_ERROR", field="note")
    patch(client, {"id": row["id"], "note": "x" * 10_000})


def test_loss_reason_is_stored_only_on_lost_leads(client: TestClient, add_leads: Any) -> None:
    lost, won, still_open, was_lost = add_leads(
        {"name": "A"}, {"name": "B"}, {"name": "C"},
        {"name": "D", "status": "lost", "loss_reason": "price"},
    )
    patch(client, {"id": lost["id"], "status": "lost", "lossReason": " Too expensive "})
    assert lead(client, lost["id"])["lossReason"] == "Too expensive"
    patch(client, {"id": won["id"], "status": "won", "lossReason": "ignored"})
    assert lead(client, won["id"])["lossReason"] is None
    patch(client, {"id": still_open["id"], "lossReason": "ignored"})  # status stays open
    assert lead(client, still_open["id"])["lossReason"] is None
    patch(client, {"id": was_lost["id"], "lossReason": "timing"})  # status stays lost
    assert lead(client, was_lost["id"])["lossReason"] == "timing"


def test_a_lost_lead_keeps_its_reason_until_it_is_won_back(
    client: TestClient, add_leads: Any
) -> None:
    (row,) = add_leads({"name": "Ada", "status": "lost", "loss_reason": "price"})
    patch(client, {"id": row["id"], "status": "lost", "value": 5})
    assert lead(client, row["id"])["lossReason"] == "price"
    patch(client, {"id": row["id"], "status": "qualified"})
    assert lead(client, row["id"])["lossReason"] is None


@pytest.mark.parametrize("sent", ["true", 1, "yes", {}])
def test_also_qualified_must_be_a_boolean(client: TestClient, add_leads: Any, sent: Any) -> None:
    (row,) = add_leads({"name": "Ada"})
    response = client.patch("/api/leads", json={"id": row["id"], "status": "won",
                                                "alsoQualified": sent})
    assert_error(response, 400, "VALIDATION_ERROR", field="alsoQualified")


def test_every_update_moves_updated_at_and_keeps_other_fields(
    client: TestClient, add_leads: Any
) -> None:
    (row,) = add_leads({"name": "Ada", "email": "ada@example.com", "phone": "+1 555", "gclid": "g"})
    before = lead(client, row["id"])
    patch(client, {"id": row["id"], "note": "n"})
    after = lead(client, row["id"])
    assert ms(after["updatedAt"]) > ms(before["updatedAt"])
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"note", "updatedAt"}
    # derived search columns still match the unchanged contact fields
    assert client.get("/api/leads?search=ADA@EXAMPLE").json()["meta"]["pagination"]["total"] == 1


def test_updates_move_the_list_totals(client: TestClient, add_leads: Any) -> None:
    rows = add_leads(*({"name": f"L{i}", "value_cents": 100 * i} for i in range(5)))
    for row in rows[:3]:
        patch(client, {"id": row["id"], "status": "won", "value": 2000})

    def count(query: str) -> int:
        total: int = client.get(f"/api/leads?{query}").json()["meta"]["pagination"]["total"]
        return total

    assert count("status=won") == 3
    assert count("status=open") == 2
    assert count("value[gte]=2000") == 3
    assert count("value[gte]=1000&status=won") == 3


# --- finding the leads ----------------------------------------------------------------------


def test_email_matches_ignoring_case(client: TestClient, add_leads: Any) -> None:
    (row,) = add_leads({"name": "Ada", "email": "Ada.Lovelace@Example.COM"})
    data = patch(client, {"email": "  ada.lovelace@example.com ", "status": "won"})
    assert data["leadIds"] == [row["id"]]


def test_phone_matches_exactly_after_trimming(client: TestClient, add_leads: Any) -> None:
    (row,) = add_leads({"name": "Ada", "phone": "+1 (555) 0100"})
    assert patch(client, {"phone": " +1 (555) 0100 ", "note": "x"})["leadIds"] == [row["id"]]
    for other in ("+15550100", "+1 (555) 010", "1 (555) 0100"):
        response = client.patch("/api/leads", json={"phone": other, "note": "x"})
        assert_error(response, 404, "NOT_FOUND", field="phone")


def test_numbers_are_accepted_as_phone_text(client: TestClient, add_leads: Any) -> None:
    (row,) = add_leads({"name": "Ada", "phone": "5550100"})
    assert patch(client, {"phone": 5550100, "note": "x"})["leadIds"] == [row["id"]]


def test_the_first_identifier_present_is_used(client: TestClient, add_leads: Any) -> None:
    a, b, c = add_leads(
        {"name": "A", "email": "a@x.io", "phone": "1"},
        {"name": "B", "email": "b@x.io", "phone": "2"},
        {"name": "C", "email": "c@x.io", "phone": "3"},
    )
    assert patch(client, {"phone": "3", "email": "b@x.io", "id": a["id"], "note": "x"})[
        "leadIds"] == [a["id"]]
    assert patch(client, {"phone": "3", "email": "b@x.io", "note": "x"})["leadIds"] == [b["id"]]
    assert patch(client, {"phone": "3", "note": "x"})["leadIds"] == [c["id"]]
    # an empty or null identifier counts as absent
    assert patch(client, {"id": "", "email": None, "phone": "3", "note": "x"})["leadIds"] == [
        c["id"]]
    # the chosen identifier decides alone: no fallback when it matches nothing
    response = client.patch("/api/leads", json={"id": "lead_nope", "email": "b@x.io", "note": "x"})
    assert_error(response, 404, "NOT_FOUND", field="id")


@pytest.mark.parametrize(
    "body", [{"status": "won"}, {"id": "", "status": "won"}, {"email": "  ", "phone": None,
                                                               "value": 1}]
)
def test_an_identifier_is_required(client: TestClient, body: Any) -> None:
    error = assert_error(client.patch("/api/leads", json=body), 400, "VALIDATION_ERROR",
                         field="id")
    assert "id, email or phone" in error["message"]


@pytest.mark.parametrize(
    "extra", [{}, {"alsoQualified": True}, {"status": None}, {"changedTo": None}]
)
def test_something_to_change_is_required(client: TestClient, add_leads: Any, extra: Any) -> None:
    (row,) = add_leads({"name": "Ada"})
    before = lead(client, row["id"])
    response = client.patch("/api/leads", json={"id": row["id"], **extra})
    assert_error(response, 400, "VALIDATION_ERROR")
    assert lead(client, row["id"]) == before


@pytest.mark.parametrize("key", ["name", "source", "qualifiedAt", "unknown"])
def test_unknown_keys_are_refused_by_name(client: TestClient, add_leads: Any, key: str) -> None:
    (row,) = add_leads({"name": "Ada"})
    response = client.patch("/api/leads", json={"id": row["id"], "status": "won", key: "x"})
    assert_error(response, 400, "VALIDATION_ERROR", field=key)
    assert lead(client, row["id"])["status"] == "open"


def test_no_match_is_404(client: TestClient) -> None:
    for body in ({"id": "lead_unknown"}, {"email": "nobody@x.io"}, {"phone": "000"}):
        response = client.patch("/api/leads", json={**body, "status": "won"})
        assert_error(response, 404, "NOT_FOUND", field=next(iter(body)))


def test_another_organizations_lead_does_not_exist(
    client: TestClient, add_leads: Any, make_org: Callable[..., Organization],
    client_for: ClientFor,
) -> None:
    other = make_org(allow_bulk_updates=True)
    (theirs,) = add_leads({"name": "T", "email": "t@x.io", "phone": "9"}, into=other)
    for body in ({"id": theirs["id"]}, {"email": "t@x.io"}, {"phone": "9"}):
        response = client.patch("/api/leads", json={**body, "status": "won"})
        assert_error(response, 404, "NOT_FOUND")
    with client_for(other) as them:
        assert lead(them, theirs["id"])["status"] == "open"


def test_several_matches_conflict_and_change_nothing(client: TestClient, add_leads: Any) -> None:
    rows = add_leads(
        {"name": "A", "email": "same@x.io"}, {"name": "B", "email": "SAME@x.io"},
    )
    response = client.patch("/api/leads", json={"email": "same@x.io", "status": "won"})
    error = assert_error(response, 409, "CONFLICT", field="email")
    assert "bulk" in error["message"]
    assert [lead(client, r["id"])["status"] for r in rows] == ["open", "open"]
    assert [lead(client, r["id"])["updatedAt"] for r in rows] == [format_timestamp(BASE_MS)] * 2


def test_bulk_updates_change_every_match(
    make_org: Callable[..., Organization], client_for: ClientFor, add_leads: Any
) -> None:
    bulk = make_org(allow_bulk_updates=True)
    rows = add_leads(
        {"name": "New", "phone": "555", "created_at": BASE_MS + 3000},
        {"name": "Old", "phone": "555", "created_at": BASE_MS + 1000, "qualified_at": BASE_MS},
        {"name": "Mid", "phone": "555", "created_at": BASE_MS + 2000, "status": "lost",
         "loss_reason": "price"},
        {"name": "Other", "phone": "556"},
        into=bulk,
    )
    new, old, mid, other = (r["id"] for r in rows)
    with client_for(bulk) as client:
        data = patch(client, {"phone": "555", "status": "qualified", "value": "10.5"})
        assert data == {"leadId": old, "leadIds": [old, mid, new], "leadsUpdated": 3,
                        "message": UPDATED}
        for lead_id in (old, mid, new):
            stored = lead(client, lead_id)
            assert (stored["status"], stored["value"], stored["lossReason"]) == (
                "qualified", 10.5, None)
        assert lead(client, old)["qualifiedAt"] == format_timestamp(BASE_MS)
        assert lead(client, new)["qualifiedAt"] != format_timestamp(BASE_MS)
        assert lead(client, other)["status"] == "open"
        # a bulk lossReason lands on the lost leads only
        patch(client, {"id": mid, "status": "lost"})
        patch(client, {"phone": "555", "lossReason": "budget"})
        assert [lead(client, i)["lossReason"] for i in (old, mid, new)] == [None, "budget", None]


def test_read_only_key_cannot_update(
    org: Organization, client_for: ClientFor, client: TestClient, add_leads: Any
) -> None:
    (row,) = add_leads({"name": "Ada"})
    with client_for(org, read_only=True) as reader:
        response = reader.patch("/api/leads", json={"id": row["id"], "status": "won"})
        assert_error(response, 403, "FORBIDDEN")
    assert lead(client, row["id"])["status"] == "open"


def test_update_needs_a_key(anonymous: TestClient) -> None:
    response = anonymous.patch("/api/leads", json={"id": "lead_x", "status": "won"})
    assert_error(response, 401, "UNAUTHORIZED")


def test_concurrent_updates_lose_nothing(client: TestClient, add_leads: Any) -> None:
    """Threads each set their own value and note; the result is one whole acknowledged write,
    and a `qualified` among them leaves qualifiedAt set."""
    (row,) = add_leads({"name": "Contended"})
    statuses = ("qualified", "won", "lost")
    sent: list[dict[str, Any]] = []
    barrier = threading.Barrier(6, timeout=30)
    failures: list[str] = []

    def work(thread: int) -> None:
        barrier.wait()
        for i in range(5):
            body = {"status": statuses[(thread + i) % 3], "value": thread * 100 + i,
                    "note": f"{thread}-{i}"}
            response = client.patch("/api/leads", json={"id": row["id"], **body})
            if response.status_code != 200:
                failures.append(response.text)
            sent.append(body)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    final = lead(client, row["id"])
    assert {"status": final["status"], "value": final["value"], "note": final["note"]} in sent
    assert final["qualifiedAt"] is not None
    assert client.get("/api/leads?status=open").json()["meta"]["pagination"]["total"] == 0
    total_by_status = sum(
        client.get(f"/api/leads?status={s}").json()["meta"]["pagination"]["total"]
        for s in statuses
    )
    assert total_by_status == 1
