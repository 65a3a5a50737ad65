"""POST /api/stats (CONTRACT.md section 7), on both databases.

The numbers are checked against a plain-Python computation over random leads, with exact
fractions and half-up rounding written out here independently of the service's code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest
from starlette.testclient import TestClient

from api_support import assert_error
from conftest import DAY_MS, ClientFor
from leads_api.fields import SOURCES, STATUSES
from leads_api.lead import format_timestamp
from leads_api.store.tenants import Organization


def utc_ms(year: int, month: int, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


def month_start(moment: datetime, months_back: int = 0) -> int:
    index = moment.year * 12 + moment.month - 1 - months_back
    return utc_ms(index // 12, index % 12 + 1)


def stats(client: TestClient, body: Any) -> dict[str, Any]:
    response = client.post("/api/stats", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-Id"] == response.json()["meta"]["requestId"]
    data: dict[str, Any] = response.json()["data"]
    return data


# --- the expected numbers, from first principles --------------------------------------------


def half_up(x: Fraction, places: int) -> Fraction:
    scale = 10**places
    return Fraction(math.floor(x * scale + Fraction(1, 2)), scale)


def json_number(x: Fraction) -> int | float:
    """How the contract writes a decimal: an integer when whole."""
    return int(x) if x.denominator == 1 else float(x)


def expected_stats(rows: Sequence[dict[str, Any]], start: int, end: int) -> dict[str, Any]:
    inside = [r for r in rows if start <= r["created_at"] < end]
    total = len(inside)
    by_status = {s: sum(r["status"] == s for r in inside) for s in STATUSES}
    by_source = {s: sum(r["source"] == s for r in inside) for s in SOURCES}
    won = by_status["won"]
    qualified = by_status["qualified"] + won
    won_total = Fraction(
        sum(r.get("value_cents") or 0 for r in inside if r["status"] == "won"), 100
    )

    def rate(part: int, whole: int) -> int | float:
        return json_number(half_up(Fraction(part, whole), 4)) if whole else 0

    return {
        "leads": {"total": total, "byStatus": by_status, "bySource": by_source},
        "conversion": {
            "qualified": qualified,
            "qualificationRate": rate(total - by_status["open"], total),
            "winRate": rate(won, qualified),
            "averageValue": json_number(half_up(won_total / won, 2)) if won else 0,
            "totalValue": json_number(won_total),
        },
    }


def random_leads(rng: random.Random, count: int, start: int, end: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(count):
        status = rng.choice(STATUSES)
        created = rng.choice(
            [rng.randrange(start, end), start, end - 1, start - 1, end,
             rng.randrange(start - 30 * DAY_MS, start)]
        )
        value = rng.choice([None, rng.randrange(0, 10**9), rng.randrange(0, 1000), 1, 3, 5])
        rows.append(
            {"status": status, "source": rng.choice(SOURCES), "created_at": created,
             "value_cents": value}
        )
    return rows


def assert_same_numbers(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["leads"] == want["leads"]
    assert got["conversion"] == want["conversion"]
    for key, value in want["conversion"].items():
        assert type(got["conversion"][key]) is type(value), key  # 1 not 1.0, 0.5 not "0.5"


# --- formulas over random leads -------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_custom_period_numbers_match_a_plain_computation(
    client: TestClient, add_leads: Any, seed: int
) -> None:
    rng = random.Random(seed)
    start, end = utc_ms(2026, 2, 3), utc_ms(2026, 3, 15)  # 2026-02-03 .. 2026-03-14
    rows = random_leads(rng, rng.randrange(1, 120), start, end)
    add_leads(*rows)
    got = stats(client, {"period": "custom", "startDate": "2026-02-03", "endDate": "2026-03-14"})
    assert_same_numbers(got, expected_stats(rows, start, end))
    assert got["usage"] == {
        "leadsUsed": got["leads"]["total"],
        "leadsLimit": None,
        "lockedLeads": 0,
        "periodStart": "2026-02-03T00:00:00.000Z",
        "periodEnd": "2026-03-14T23:59:59.999Z",
    }


@pytest.mark.parametrize("seed", [5, 6])
def test_current_and_previous_months(client: TestClient, add_leads: Any, seed: int) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    current, previous, nxt = month_start(now), month_start(now, 1), month_start(now, -1)
    rows = random_leads(rng, 80, previous, current) + random_leads(rng, 80, current, nxt)
    add_leads(*rows)
    got_current = stats(client, {})
    assert got_current == stats(client, {"period": "current"})
    assert_same_numbers(got_current, expected_stats(rows, current, nxt))
    got_previous = stats(client, {"period": "previous"})
    assert_same_numbers(got_previous, expected_stats(rows, previous, current))
    assert got_current["usage"]["periodStart"] == format_timestamp(current)
    assert got_current["usage"]["periodEnd"] == format_timestamp(nxt - 1)
    assert got_previous["usage"]["periodStart"] == format_timestamp(previous)
    assert got_previous["usage"]["periodEnd"] == format_timestamp(current - 1)


# --- shape and edges ------------------------------------------------------------------------


def test_an_empty_organization(client: TestClient) -> None:
    data = stats(client, {})
    assert data["leads"] == {
        "total": 0,
        "byStatus": {"open": 0, "qualified": 0, "won": 0, "lost": 0},
        "bySource": {s: 0 for s in SOURCES},
    }
    assert data["conversion"] == {
        "qualified": 0, "qualificationRate": 0, "winRate": 0, "averageValue": 0, "totalValue": 0,
    }
    assert list(data) == ["usage", "leads", "conversion"]
    assert list(data["usage"]) == [
        "leadsUsed", "leadsLimit", "lockedLeads", "periodStart", "periodEnd"
    ]
    assert list(data["leads"]["bySource"]) == list(SOURCES)
    assert data["usage"]["periodStart"].endswith("-01T00:00:00.000Z")
    assert data["usage"]["periodEnd"].endswith("T23:59:59.999Z")


def test_rounding_is_half_up(client: TestClient, add_leads: Any) -> None:
    day = utc_ms(2026, 4, 1)
    # 32 leads, one of them not open: 1/32 = 0.03125 -> 0.0313 (half-even would give 0.0312)
    # two won leads worth 0.01 and 0.02: average 0.015 -> 0.02
    add_leads(
        {"created_at": day, "status": "won", "value_cents": 1},
        *({"created_at": day, "status": "open"} for _ in range(31)),
    )
    data = stats(client, {"period": "custom", "startDate": "2026-04-01", "endDate": "2026-04-01"})
    assert data["conversion"]["qualificationRate"] == 0.0313
    add_leads({"created_at": day, "status": "won", "value_cents": 2})
    data = stats(client, {"period": "custom", "startDate": "2026-04-01", "endDate": "2026-04-01"})
    assert data["conversion"] == {
        "qualified": 2,
        "qualificationRate": 0.0606,  # 2/33
        "winRate": 1,
        "averageValue": 0.02,
        "totalValue": 0.03,
    }


def test_won_leads_without_a_value_count_in_the_average(
    client: TestClient, add_leads: Any
) -> None:
    day = utc_ms(2026, 5, 5)
    add_leads(
        {"created_at": day, "status": "won", "value_cents": 10_000},
        {"created_at": day, "status": "won"},
        {"created_at": day, "status": "qualified", "value_cents": 99_999},
        {"created_at": day, "status": "lost", "value_cents": 99_999},
    )
    data = stats(client, {"period": "custom", "startDate": "2026-05-05", "endDate": "2026-05-05"})
    assert data["conversion"] == {
        "qualified": 3, "qualificationRate": 1, "winRate": 0.6667,
        "averageValue": 50, "totalValue": 100,
    }


def test_other_organizations_are_not_counted(
    client: TestClient, add_leads: Any, make_org: Callable[..., Organization]
) -> None:
    day = utc_ms(2026, 6, 1)
    add_leads({"created_at": day, "status": "won", "value_cents": 500}, into=make_org())
    add_leads({"created_at": day})
    data = stats(client, {"period": "custom", "startDate": "2026-06-01", "endDate": "2026-06-30"})
    assert data["leads"]["total"] == 1
    assert data["conversion"]["totalValue"] == 0


def test_usage_shows_the_limit_and_read_only_keys_may_ask(
    make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    with client_for(make_org(leads_limit=250), read_only=True) as reader:
        usage = stats(reader, {})["usage"]
    assert (usage["leadsLimit"], usage["leadsUsed"], usage["lockedLeads"]) == (250, 0, 0)


def test_a_lead_created_over_the_api_counts_this_month(client: TestClient) -> None:
    assert client.post("/api/leads", json={"name": "Ada"}).status_code == 201
    data = stats(client, {"period": "current"})
    assert data["usage"]["leadsUsed"] == 1
    assert data["leads"]["bySource"]["api"] == 1
    assert stats(client, {"period": "previous"})["leads"]["total"] == 0


def test_stats_need_a_key(anonymous: TestClient) -> None:
    assert_error(anonymous.post("/api/stats", json={}), 401, "UNAUTHORIZED")


# --- the body -------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"   ", b"[]", b"null", b'"current"', b"{"])
def test_a_json_object_body_is_required(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/api/stats", content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "VALIDATION_ERROR", field="body")


def test_no_body_at_all_is_400(client: TestClient) -> None:
    assert_error(client.post("/api/stats"), 400, "VALIDATION_ERROR", field="body")


def test_an_empty_period_means_current(client: TestClient) -> None:
    assert stats(client, {"period": ""}) == stats(client, {"period": None}) == stats(client, {})


@pytest.mark.parametrize("period", ["month", "Current", "all", 1, True, ["current"]])
def test_bad_periods_are_refused_with_the_allowed_list(client: TestClient, period: Any) -> None:
    error = assert_error(
        client.post("/api/stats", json={"period": period}), 400, "VALIDATION_ERROR",
        field="period",
    )
    assert "current, previous, custom" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"period": "custom"}, "startDate"),
        ({"period": "custom", "endDate": "2026-01-31"}, "startDate"),
        ({"period": "custom", "startDate": "2026-01-01"}, "endDate"),
        ({"period": "custom", "startDate": "", "endDate": "2026-01-31"}, "startDate"),
        ({"period": "custom", "startDate": "2026-01-01", "endDate": None}, "endDate"),
    ],
)
def test_custom_needs_both_dates(client: TestClient, body: Any, field: str) -> None:
    assert_error(client.post("/api/stats", json=body), 400, "VALIDATION_ERROR", field=field)


@pytest.mark.parametrize(
    "bad", ["2026-02-30", "2026-13-01", "2026-1-1", "01/02/2026", "2026-01-01T00:00:00Z",
            "yesterday", 20260101, True, "0000-01-01"]
)
@pytest.mark.parametrize("field", ["startDate", "endDate"])
def test_bad_dates_are_refused_by_name(client: TestClient, bad: Any, field: str) -> None:
    body = {"period": "custom", "startDate": "2026-01-01", "endDate": "2026-01-31", field: bad}
    error = assert_error(client.post("/api/stats", json=body), 400, "INVALID_DATE", field=field)
    assert "YYYY-MM-DD" in error["message"]


def test_end_date_before_start_date_is_refused(client: TestClient) -> None:
    body = {"period": "custom", "startDate": "2026-02-01", "endDate": "2026-01-31"}
    assert_error(client.post("/api/stats", json=body), 400, "VALIDATION_ERROR", field="endDate")


def test_a_one_day_period(client: TestClient, add_leads: Any) -> None:
    day = utc_ms(2026, 7, 4)
    add_leads({"created_at": day - 1}, {"created_at": day}, {"created_at": day + DAY_MS - 1},
              {"created_at": day + DAY_MS})
    data = stats(client, {"period": "custom", "startDate": "2026-07-04", "endDate": "2026-07-04"})
    assert data["leads"]["total"] == 2
    assert (data["usage"]["periodStart"], data["usage"]["periodEnd"]) == (
        "2026-07-04T00:00:00.000Z", "2026-07-04T23:59:59.999Z")


@pytest.mark.parametrize("field", ["startDate", "endDate"])
def test_dates_need_the_custom_period(client: TestClient, field: str) -> None:
    response = client.post("/api/stats", json={"period": "current", field: "2026-01-01"})
    assert_error(response, 400, "VALIDATION_ERROR", field=field)
    response = client.post("/api/stats", json={field: "2026-01-01"})
    assert_error(response, 400, "VALIDATION_ERROR", field=field)


@pytest.mark.parametrize("key", ["from", "status", "Period"])
def test_unknown_keys_are_refused(client: TestClient, key: str) -> None:
    assert_error(client.post("/api/stats", json={key: "x"}), 400, "VALIDATION_ERROR", field=key)


def test_early_years_keep_four_digits(client: TestClient) -> None:
    usage = stats(
        client, {"period": "custom", "startDate": "0001-01-01", "endDate": "0999-12-31"}
    )["usage"]
    assert (usage["periodStart"], usage["periodEnd"]) == (
        "0001-01-01T00:00:00.000Z", "0999-12-31T23:59:59.999Z")
