"""POST /api/stats: the organization's leads created in a period, counted and rated.

The body chooses the period; the store counts leads by (status, source) in one grouped
query; the rates and money here are exact decimals, rounded half up (rates to 4 places,
money to 2) and written like a lead's value (no fraction when whole).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.auth import request_caller
from leads_api.api.body import read_json_object
from leads_api.api.envelope import success
from leads_api.api.read_slots import in_read_slot
from leads_api.errors import InvalidDate, ValidationError
from leads_api.fields import SOURCES, STATUSES
from leads_api.lead import format_timestamp, money_to_json, now_ms
from leads_api.query.values import BadValue, day_or_instant
from leads_api.store import Store
from leads_api.store.lead_writes import month_bounds
from leads_api.store.stats import GroupCount, count_created

PERIODS = ("current", "previous", "custom")
STATS_KEYS = ("period", "startDate", "endDate")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RATE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Period:
    start_ms: int
    end_ms: int  # exclusive: the first millisecond after the period


async def stats_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    caller = await request_caller(request)  # a read: read-only keys may ask
    period = stats_period(await read_json_object(request), now=now_ms())

    def work() -> list[GroupCount]:
        with store.read() as conn:
            return count_created(
                conn, org_id=caller.org.id, start_ms=period.start_ms, end_ms=period.end_ms
            )

    groups = await in_read_slot(request, work)
    return success(request, stats_data(groups, period, leads_limit=caller.org.leads_limit))


def stats_period(body: Mapping[str, Any], *, now: int) -> Period:
    """The body's period: this UTC month (default), the last one, or startDate..endDate.

    >>> p = stats_period({"period": "custom", "startDate": "2026-01-01", "endDate": "2026-01-31"},
    ...                  now=0)
    >>> format_timestamp(p.start_ms), format_timestamp(p.end_ms - 1)
    ('2026-01-01T00:00:00.000Z', '2026-01-31T23:59:59.999Z')
    """
    for name in body:
        if name not in STATS_KEYS:
            raise ValidationError(
                f"Unknown field {name[:100]!r}: stats accept {', '.join(STATS_KEYS)}", field=name
            )
    period = body.get("period")
    if isinstance(period, str):
        period = period.strip() or None
    if period is None:
        period = "current"
    if period not in PERIODS:
        raise ValidationError(
            f"period must be one of {', '.join(PERIODS)}", field="period", allowed=list(PERIODS)
        )
    if period != "custom":
        for name in ("startDate", "endDate"):
            if body.get(name) is not None:
                raise ValidationError(f"{name} needs \"period\": \"custom\"", field=name)
        start, end = month_bounds(now)
        return Period(*month_bounds(start - 1)) if period == "previous" else Period(start, end)
    first, _ = _day(body, "startDate")
    last_start, last_end = _day(body, "endDate")
    if last_start < first:
        raise ValidationError("endDate must not be before startDate", field="endDate")
    return Period(first, last_end)


def stats_data(
    groups: Iterable[GroupCount], period: Period, *, leads_limit: int | None
) -> dict[str, Any]:
    by_status = dict.fromkeys(STATUSES, 0)
    by_source = dict.fromkeys(SOURCES, 0)
    won_cents = 0
    for group in groups:
        by_status[group.status] += group.leads
        by_source[group.source] += group.leads
        won_cents += group.won_value_cents
    total = sum(by_status.values())
    won = by_status["won"]
    qualified = by_status["qualified"] + won
    return {
        "usage": {
            "leadsUsed": total,
            "leadsLimit": leads_limit,
            "lockedLeads": 0,
            "periodStart": format_timestamp(period.start_ms),
            "periodEnd": format_timestamp(period.end_ms - 1),
        },
        "leads": {"total": total, "byStatus": by_status, "bySource": by_source},
        "conversion": {
            "qualified": qualified,
            "qualificationRate": rate(total - by_status["open"], total),
            "winRate": rate(won, qualified),
            "averageValue": money_to_json(average_cents(won_cents, won)),
            "totalValue": money_to_json(won_cents),
        },
    }


def rate(part: int, whole: int) -> int | float:
    """part / whole rounded half up to 4 places (0 when whole is 0), as a JSON number.

    >>> rate(2, 3), rate(1, 8), rate(3, 3), rate(1, 0)
    (0.6667, 0.125, 1, 0)
    """
    if whole == 0:
        return 0
    rounded = (Decimal(part) / Decimal(whole)).quantize(_RATE_PLACES, rounding=ROUND_HALF_UP)
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def average_cents(total_cents: int, count: int) -> int:
    """The mean in whole cents, rounded half up (0 when count is 0).

    >>> average_cents(1001, 2), average_cents(1, 3), average_cents(5, 0)
    (501, 0, 0)
    """
    if count == 0:
        return 0
    return int((Decimal(total_cents) / Decimal(count)).quantize(Decimal(1), ROUND_HALF_UP))


def _day(body: Mapping[str, Any], name: str) -> tuple[int, int]:
    """A `YYYY-MM-DD` field as its whole UTC day, [start, end) in epoch ms."""
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError(f"{name} is required with period=custom (YYYY-MM-DD)", field=name)
    text = value.strip() if isinstance(value, str) else None
    try:
        if text is None or not _DAY.fullmatch(text):
            raise BadValue(name)
        day = day_or_instant(text)
    except BadValue:
        raise InvalidDate(
            f"{name} must be a date that exists, written YYYY-MM-DD", field=name
        ) from None
    assert isinstance(day, tuple)
    return day
