"""Lead values between their stored and their JSON form, and the columns derived on write.

Pure functions shared by the API renderer, export and import, and the store's writers.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from leads_api.fields import (
    FOLDED_COLUMNS,
    LEAD_FIELDS,
    PHONE_DIGITS_COLUMN,
    SEARCH_TEXT_COLUMN,
    Field,
    Kind,
)

_NAIVE_EPOCH = datetime(1970, 1, 1)  # naive: isoformat() then writes no offset
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NON_DIGITS = re.compile(r"[^0-9]")
LEAD_ID_PREFIX = "lead_"
LEAD_ID_LENGTH = 20  # 20 base62 characters: ~119 random bits


def base62(length: int) -> str:
    n = int.from_bytes(secrets.token_bytes(length))  # 8 bits a character > log2(62)
    chars = []
    for _ in range(length):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return "".join(chars)


def new_lead_id() -> str:
    return LEAD_ID_PREFIX + base62(LEAD_ID_LENGTH)


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


DAY_MS = 86_400_000
# Rendering is most of a page's Python time, and timestamps most of that (four a lead):
# the date part is kept per day, the rest is three table lookups (~3x the isoformat's speed).
_HOUR_MINUTE = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND = tuple(f"{s:02d}." for s in range(60))
_MILLI_Z = tuple(f"{ms:03d}Z" for ms in range(1000))


@lru_cache(maxsize=8192)
def _date_t(day: int) -> str:
    return (_NAIVE_EPOCH + timedelta(days=day)).isoformat()[:10] + "T"


def format_timestamp(ms: int) -> str:
    """Epoch milliseconds -> `2026-01-15T10:30:00.000Z` (always a four-digit year).

    >>> format_timestamp(1_768_473_000_123), format_timestamp(-1)
    ('2026-01-15T10:30:00.123Z', '1969-12-31T23:59:59.999Z')
    """
    day, in_day = divmod(ms, DAY_MS)
    seconds, milli = divmod(in_day, 1000)
    minutes, second = divmod(seconds, 60)
    return _date_t(day) + _HOUR_MINUTE[minutes] + _SECOND[second] + _MILLI_Z[milli]


def money_to_json(cents: int) -> int | float:
    """Cents -> a JSON number without a fraction when whole: 500000 -> 5000, 9950 -> 99.5.

    Dividing by 100 gives the double nearest the decimal, whose shortest repr is that
    decimal for any amount the service accepts (below 2**53 cents).
    """
    whole, fraction = divmod(cents, 100)
    return whole if fraction == 0 else cents / 100


def _time_or_none(value: int | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _money_or_none(value: int | None) -> int | float | None:
    return None if value is None else money_to_json(value)


def _consent(value: Any) -> bool | None:
    return None if value is None else bool(value)


# Stored value -> JSON value, for the kinds where they differ (ids, text and choices do not).
_TO_JSON = {
    Kind.MONEY: _money_or_none,
    Kind.TIME: _time_or_none,
    Kind.CONSENT: _consent,
}


def object_builder(fields: Sequence[Field]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """A function from a row whose columns are `fields`, in order, to the lead object (or
    its selection). Build it once per page or export: the per-field work is done here."""
    names = tuple(f.name for f in fields)
    converted = tuple((f.name, _TO_JSON[f.kind]) for f in fields if f.kind in _TO_JSON)

    def build(row: Sequence[Any]) -> dict[str, Any]:
        lead = dict(zip(names, row, strict=True))
        for name, convert in converted:
            lead[name] = convert(lead[name])
        return lead

    return build


_WHOLE = object_builder(LEAD_FIELDS)
_WHOLE_COLUMNS = tuple(f.column for f in LEAD_FIELDS)


def lead_json(row: Mapping[Any, Any]) -> str:
    """The whole lead object of a `leads` row (by column name) as JSON text: what the API
    renders for it, byte for byte, stored with the row (store/schema.py LEAD_JSON_COLUMN).

    >>> lead_json({"id": "lead_1", "value_cents": 1250, "created_at": 0})[:30]
    '{"id":"lead_1","name":null,"em'
    >>> [money in lead_json({"value_cents": 1250}) for money in ('"value":12.5', '"value":12,')]
    [True, False]
    """
    return orjson.dumps(_WHOLE([row.get(c) for c in _WHOLE_COLUMNS])).decode()


def row_to_object(fields: Sequence[Field], row: Sequence[Any]) -> dict[str, Any]:
    """One row whose columns are `fields`, in order, -> the lead object (or its selection)."""
    return object_builder(fields)(row)


def derived_columns(name: str | None, email: str | None, phone: str | None) -> dict[str, Any]:
    """The search and ordering columns: case-folded name/email/phone and the phone's digits."""
    digits = _NON_DIGITS.sub("", phone) if phone else ""
    folded = {
        FOLDED_COLUMNS["name"]: name.casefold() if name is not None else None,
        FOLDED_COLUMNS["email"]: email.casefold() if email is not None else None,
        FOLDED_COLUMNS["phone"]: phone.casefold() if phone is not None else None,
        PHONE_DIGITS_COLUMN: digits or None,
    }
    parts = [part for part in folded.values() if part]
    folded[SEARCH_TEXT_COLUMN] = "\n".join(parts) if parts else None
    return folded


def with_derived_columns(columns: Mapping[str, Any]) -> dict[str, Any]:
    """A complete `leads` row (by column name) with its derived columns filled in."""
    row = dict(columns)
    row.update(derived_columns(row.get("name"), row.get("email"), row.get("phone")))
    return row
