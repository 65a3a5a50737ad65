"""Python keyword arguments -> the query parameters of `GET /api/leads` (pure, no I/O).

Names are the API's own (`status`, `utm_source`, `createdAt`), except that an operator
can be written with a double underscore, since `[` cannot appear in a keyword:
`createdAt__gte=...` is `createdAt[gte]=...` (`createdAt[gte]` itself also works, through
`**{"createdAt[gte]": ...}`). Values may be Python values: lists and tuples become comma
lists (any of), booleans `true`/`false`, dates `YYYY-MM-DD`, datetimes an ISO instant in
UTC, numbers plain decimals. `None` leaves a parameter out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

OPERATORS = ("gte", "gt", "lte", "lt", "exists")

Scalar = str | int | float | Decimal | bool | date | datetime
QueryValue = Scalar | list[Scalar] | tuple[Scalar, ...] | set[Scalar] | frozenset[Scalar] | None


def parameter_name(key: str) -> str:
    """The query parameter a keyword names.

    >>> parameter_name("createdAt__gte"), parameter_name("gclid__exists")
    ('createdAt[gte]', 'gclid[exists]')
    >>> parameter_name("utm_source"), parameter_name("value[lt]")
    ('utm_source', 'value[lt]')
    """
    field, sep, operator = key.rpartition("__")
    if sep and field and operator in OPERATORS:
        return f"{field}[{operator}]"
    return key


def encode_value(value: Scalar) -> str:
    """One value as the API reads it.

    >>> [encode_value(v) for v in (True, 5000, 99.5, Decimal("12.30"), 1e-7)]
    ['true', '5000', '99.5', '12.30', '0.0000001']
    >>> encode_value(date(2026, 3, 1))
    '2026-03-01'
    >>> from datetime import timedelta, timezone
    >>> encode_value(datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))))
    '2026-03-01T10:00:00.000Z'
    >>> encode_value(datetime(2026, 3, 1, 12, 0, 5, 250000))  # naive: the API reads UTC
    '2026-03-01T12:00:05.250Z'
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        instant = value.astimezone(UTC) if value.tzinfo is not None else value
        return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def encode_query(query: Mapping[str, QueryValue]) -> list[tuple[str, str]]:
    """Keyword arguments as query parameters, in the order given.

    >>> encode_query({"status": ["won", "lost"], "value__gte": 100, "fields": ("name",),
    ...               "search": None, "gclid__exists": False})
    [('status', 'won,lost'), ('value[gte]', '100'), ('fields', 'name'), ('gclid[exists]', 'false')]
    """
    params: list[tuple[str, str]] = []
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            items: Iterable[Scalar] = sorted(value, key=str) if isinstance(
                value, set | frozenset
            ) else value
            params.append((parameter_name(key), ",".join(encode_value(v) for v in items)))
        else:
            params.append((parameter_name(key), encode_value(value)))
    return params
