"""A plain reading of CONTRACT.md section 4 (GET /api/leads) over lead objects, for tests.

Deliberately naive and independent of the service: it takes the JSON lead objects a GET
returns and the decoded query parameters, tests every lead in Python, orders with stable
sorts and slices the page. It shares nothing with `leads_api.query` or `leads_api.store`;
from the package it takes only the list of field names, in lead-object order.

>>> leads = [{"id": "lead_a", "name": "Bob", "status": "won", "value": 10},
...          {"id": "lead_b", "name": "alice", "status": "lost", "value": None}]
>>> answer = list_leads(leads, [("sort", "name"), ("fields", "name")], fields=("id", "name"))
>>> answer.data, answer.pagination["total"]
([{'id': 'lead_b', 'name': 'alice'}, {'id': 'lead_a', 'name': 'Bob'}], 2)
>>> list_leads(leads, [("value[gte]", "9.999"), ("sort", "value")], fields=("id",)).data
[{'id': 'lead_a'}]
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from leads_api.fields import FIELD_NAMES

Lead = Mapping[str, Any]
Test = Callable[[Lead], bool]

# The contract's tables, written out again on purpose (section 3 and 4).
STATUSES = ("open", "qualified", "won", "lost")
SOURCES = ("inbound", "gtm", "api", "manual", "wordpress", "import")
CLICK_IDS = ("gclid", "ga4cid", "ga4sid", "fbc", "fbp", "msclkid", "ttclid", "twclid",
             "rdt_cid", "sccid", "li_fat_id", "dclid", "wbraid", "gbraid", "epik")
TEXT_FILTERS = ("labelId", "website", "utm_source", "utm_medium", "utm_campaign", *CLICK_IDS)
EQUALITY_ONLY = ("sessionId",)  # text compared for equality, no [exists]
DATE_FIELDS = ("createdAt", "updatedAt", "qualifiedAt", "expiresAt")
NUMBER_FIELDS = ("value",)
CHOICES = {"status": STATUSES, "source": SOURCES}
COMPARISONS = ("gte", "gt", "lte", "lt")
SORTABLE = ("createdAt", "updatedAt", "qualifiedAt", "value", "name", "email", "status",
            "expiresAt")
LEGACY_SORT = {"created_at": "createdAt", "updated_at": "updatedAt",
               "qualified_at": "qualifiedAt"}
LEGACY_FILTERS = {"updated_after": ("updatedAt", "gte")}
SINGLE = ("limit", "page", "sort", "search", "fields")
LIST_SINGLES = ("sort", "fields")  # the single parameters that take a comma list
ASCII_DIGITS = "0123456789"

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]+))?)?(Z|[+\- ][0-9]{2}:[0-9]{2})?"
)


class Rejected(Exception):
    """The query breaks the contract: the API must answer 400 with this code and parameter."""

    def __init__(self, code: str, parameter: str) -> None:
        super().__init__(f"{code} {parameter!r}")
        self.code = code
        self.parameter = parameter


@dataclass(frozen=True)
class Answer:
    data: list[dict[str, Any]]
    pagination: dict[str, Any]


@dataclass(frozen=True)
class Day:
    """A date without a time: the whole UTC day [start, end), in epoch seconds."""

    start: Decimal
    end: Decimal


def list_leads(
    leads: Sequence[Lead], params: Sequence[tuple[str, str]], *,
    fields: Sequence[str] = FIELD_NAMES,
) -> Answer:
    """What GET /api/leads answers for `params` (decoded pairs) over these lead objects.

    `fields` is the full lead object's field list (the doctest passes a shorter one).
    """
    singles: dict[str, str] = {}
    any_of: dict[str, list[str]] = {}
    tests: list[Test] = []
    for name, raw in params:
        value = raw.strip()
        if name in SINGLE:
            if value == "" or (name in LIST_SINGLES and not _items(value)):
                continue  # empty, or a comma list with no items: absent, so not a repeat
            if name in singles:
                raise Rejected("VALIDATION_ERROR", name)
            singles[name] = value
            continue
        field, op = _filter_name(name)
        items = _items(value)
        if not items:
            continue
        if op is None:
            any_of.setdefault(field, []).extend(items)
        elif len(items) != 1:
            raise Rejected("INVALID_FILTER", name)
        else:
            tests.append(_operator_test(name, field, op, items[0]))
    tests.extend(_any_of_test(field, items) for field, items in any_of.items())
    if "search" in singles:
        tests.append(_search_test(singles["search"]))

    matched = [lead for lead in leads if all(test(lead) for test in tests)]
    ordered = _ordered(matched, _sort_keys(singles.get("sort")))
    limit = _whole("limit", singles.get("limit"), default=50, maximum=100)
    page = _whole("page", singles.get("page"), default=1, maximum=None)
    chosen = _chosen_fields(singles.get("fields"), fields)
    window = ordered[(page - 1) * limit : page * limit]
    total = len(matched)
    total_pages = (total + limit - 1) // limit
    return Answer(
        data=[{f: lead[f] for f in fields if f in chosen} for lead in window],
        pagination={"limit": limit, "page": page, "totalPages": total_pages, "total": total,
                    "hasMore": page < total_pages},
    )


# --- filters ---------------------------------------------------------------------------


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _filter_name(name: str) -> tuple[str, str | None]:
    """`status` -> ("status", None); `value[gte]` -> ("value", "gte"); else Rejected."""
    if name in LEGACY_FILTERS:
        return LEGACY_FILTERS[name]
    base, bracket, rest = name.partition("[")
    op: str | None = None
    if bracket:
        if not rest.endswith("]") or "[" in rest[:-1] or "]" in rest[:-1] or "]" in base:
            raise Rejected("INVALID_FILTER", name)
        op = rest[:-1]
    allowed: tuple[str, ...]
    if base in CHOICES or base in EQUALITY_ONLY:
        allowed = ()
    elif base in TEXT_FILTERS:
        allowed = ("exists",)
    elif base in DATE_FIELDS or base in NUMBER_FIELDS:
        allowed = (*COMPARISONS, "exists")
    else:
        raise Rejected("INVALID_FILTER", name)
    if op is not None and op not in allowed:
        raise Rejected("INVALID_FILTER", name)
    return base, op


def _any_of_test(field: str, items: list[str]) -> Test:
    if field in CHOICES:
        for item in items:
            if item not in CHOICES[field]:
                raise Rejected("INVALID_FILTER", field)
        return lambda lead: lead[field] in items
    if field in NUMBER_FIELDS or field in DATE_FIELDS:
        tests = [_operator_test(field, field, "eq", item) for item in items]
        return lambda lead: any(test(lead) for test in tests)
    return lambda lead: lead[field] is not None and lead[field] in items


def _operator_test(parameter: str, field: str, op: str, item: str) -> Test:
    if op == "exists":
        word = item.lower()
        if word not in ("true", "false"):
            raise Rejected("INVALID_FILTER", parameter)
        present = word == "true"
        return lambda lead: (lead[field] is not None) == present
    if field in NUMBER_FIELDS:
        if not _NUMBER.fullmatch(item):
            raise Rejected("INVALID_FILTER", parameter)
        bound = Decimal(item)
        return lambda lead: lead[field] is not None and _compare(_amount(lead[field]), op, bound)
    moment = _date_value(parameter, item)
    if isinstance(moment, Day):
        day = moment
        return lambda lead: lead[field] is not None and _within_day(_seconds(lead[field]), op, day)
    return lambda lead: lead[field] is not None and _compare(_seconds(lead[field]), op, moment)


def _compare(x: Decimal, op: str, bound: Decimal) -> bool:
    return {
        "eq": x == bound, "gte": x >= bound, "gt": x > bound, "lte": x <= bound, "lt": x < bound,
    }[op]


def _within_day(t: Decimal, op: str, day: Day) -> bool:
    """A date without a time means the whole UTC day (CONTRACT.md, Dates)."""
    return {
        "eq": day.start <= t < day.end,
        "gte": t >= day.start,  # from the start of D
        "gt": t >= day.end,  # after the end of D
        "lte": t < day.end,  # through the end of D
        "lt": t < day.start,  # before the start of D
    }[op]


def _amount(value: int | float) -> Decimal:
    # The JSON number's shortest text is the decimal the API means (5000, 99.5, 12.25).
    return Decimal(repr(value))


def _seconds(timestamp: str) -> Decimal:
    """An output timestamp (`2026-01-15T10:30:00.000Z`) -> exact epoch seconds."""
    moment = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return Decimal(calendar.timegm(moment.timetuple())) + Decimal(moment.microsecond) / 10**6


def _date_value(parameter: str, text: str) -> Day | Decimal:
    """A filter date: a whole UTC day, or an exact instant in epoch seconds."""
    try:
        day = _DAY.fullmatch(text)
        if day:
            start = calendar.timegm(datetime(int(day[1]), int(day[2]), int(day[3])).timetuple())
            return Day(Decimal(start), Decimal(start + 86_400))
        m = _INSTANT.fullmatch(text)
        if not m:
            raise ValueError(text)
        local = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0))
        zone = m[8] or "Z"
        offset = 0
        if zone != "Z":
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError(text)
            offset = (hours * 3600 + minutes * 60) * (-1 if zone[0] == "-" else 1)
        fraction = Decimal("0." + m[7]) if m[7] else Decimal(0)
        return Decimal(calendar.timegm(local.timetuple()) - offset) + fraction
    except ValueError:
        raise Rejected("INVALID_DATE", parameter) from None


def _search_test(term: str) -> Test:
    if len(term) > 200:
        raise Rejected("VALIDATION_ERROR", "search")
    folded = term.casefold()
    digits = "".join(c for c in term if c in ASCII_DIGITS)

    def matches(lead: Lead) -> bool:
        texts = [lead[f] for f in ("name", "email", "phone") if lead[f] is not None]
        if any(folded in text.casefold() for text in texts):
            return True
        phone = lead["phone"]
        if len(digits) >= 3 and phone is not None:
            return digits in "".join(c for c in phone if c in ASCII_DIGITS)
        return False

    return matches


# --- order, pages and fields -----------------------------------------------------------


def _sort_keys(raw: str | None) -> list[tuple[str, bool]]:
    """`value:desc,name` -> [("value", True), ("name", False)]; default createdAt:desc."""
    keys: list[tuple[str, bool]] = []
    for item in _items(raw or ""):
        name, _, direction = item.partition(":")
        name = LEGACY_SORT.get(name.strip(), name.strip())
        direction = direction.strip().lower() or "asc"
        if name not in SORTABLE or direction not in ("asc", "desc"):
            raise Rejected("VALIDATION_ERROR", "sort")
        if name in (k for k, _ in keys):
            raise Rejected("VALIDATION_ERROR", "sort")
        keys.append((name, direction == "desc"))
    return keys or [("createdAt", True)]


def _sort_value(lead: Lead, field: str) -> Any:
    value = lead[field]
    if value is None:
        return None
    if field in ("name", "email"):
        return value.casefold()  # then code point by code point, as Python compares str
    if field in NUMBER_FIELDS:
        return _amount(value)
    if field in DATE_FIELDS:
        return _seconds(value)
    return value


def _ordered(leads: list[Lead], keys: list[tuple[str, bool]]) -> list[Lead]:
    """Stable sorts from the last key to the first, over an order by id in the last key's
    direction; at every key the nulls go after the values, whatever the direction."""
    rows = sorted(leads, key=lambda lead: str(lead["id"]), reverse=keys[-1][1])
    for field, descending in reversed(keys):
        present = [lead for lead in rows if lead[field] is not None]
        absent = [lead for lead in rows if lead[field] is None]
        present.sort(key=lambda lead: _sort_value(lead, field), reverse=descending)
        rows = present + absent
    return rows


def _whole(name: str, raw: str | None, *, default: int, maximum: int | None) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
        raise Rejected("VALIDATION_ERROR", name)
    if maximum is not None and int(raw) > maximum:
        raise Rejected("VALIDATION_ERROR", name)
    return int(raw)


def _chosen_fields(raw: str | None, fields: Sequence[str]) -> set[str]:
    names = _items(raw or "")
    if not names:
        return set(fields)
    for name in names:
        if name not in fields:
            raise Rejected("VALIDATION_ERROR", "fields")
    return {"id", *names}
