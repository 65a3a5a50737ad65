"""Reading lead values that clients send (POST/PATCH bodies, import files) into stored form.

One function per kind of value, each raising ValidationError that names the field. Shared by
the HTTP writes and by import so both accept exactly the same values.

>>> text_value(FIELDS_BY_NAME["name"], "  Ada  ")
'Ada'
>>> money_value("value", "99.50"), money_value("value", 5000)
(9950, 500000)
>>> consent_value("ad_storage", "granted")
True
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from leads_api.errors import ValidationError
from leads_api.fields import FIELDS_BY_NAME, Field
from leads_api.query.values import BadValue, day_or_instant

# Values up to a trillion: cents then stay far below 2**53, so they render exactly.
MAX_VALUE_CENTS = 100_000_000_000_000
_MONEY_TEXT = re.compile(r"\s*[0-9]+(?:\.[0-9]+)?\s*")
_CONSENT = {
    True: True, False: False, "granted": True, "denied": False, "true": True, "false": False,
}

__all__ = [
    "FIELDS_BY_NAME",
    "consent_value",
    "custom_value",
    "money_value",
    "text_value",
    "timestamp_value",
]


def text_value(field: Field, value: Any) -> str | None:
    """A string field: trimmed, empty as null, within its length limit.

    Numbers are accepted and kept as written (forms often send a phone as a number); a lead
    is never rejected for the format of an email, phone or URL.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError(f"{field.name} must be a string", field=field.name)
    text = value.strip() if isinstance(value, str) else _number_text(value)
    _check_text(field.name, text, field.max_length)
    return text or None


def custom_value(value: Any) -> str | None:
    """`custom`: a string as given (trimmed), any other JSON value as compact JSON text."""
    field = FIELDS_BY_NAME["custom"]
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else orjson.dumps(value).decode()
    _check_text(field.name, text, field.max_length, measure_bytes=True)
    return text or None


def consent_value(name: str, value: Any) -> bool | None:
    """true/false, "granted"/"denied", "true"/"false" (any case), or null."""
    if value is None:
        return None
    key = value.strip().lower() if isinstance(value, str) else value
    if isinstance(key, str) and key == "":
        return None
    if isinstance(key, bool | str) and key in _CONSENT:
        return _CONSENT[key]
    raise ValidationError(
        f"{name} must be true, false, \"granted\", \"denied\" or null", field=name
    )


def money_value(name: str, value: Any) -> int | None:
    """A value as a JSON number or numeric string -> integer cents (>= 0, <= 2 decimals)."""
    if value is None:
        return None
    problem = f"{name} must be a non-negative number with at most 2 decimals, like 5000 or 99.50"
    if isinstance(value, bool):
        raise ValidationError(problem, field=name)
    if isinstance(value, str):
        if value.strip() == "":
            return None
        if not _MONEY_TEXT.fullmatch(value):
            raise ValidationError(problem, field=name)
        amount = Decimal(value.strip())
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(problem, field=name)
        amount = Decimal(repr(value))  # the shortest decimal that reads back as this float
    else:
        raise ValidationError(problem, field=name)
    try:
        cents = amount * 100
        if cents < 0 or cents != cents.to_integral_value():
            raise ValidationError(problem, field=name)
    except InvalidOperation:
        raise ValidationError(problem, field=name) from None
    if cents > MAX_VALUE_CENTS:
        raise ValidationError(f"{name} must be at most {MAX_VALUE_CENTS // 100}", field=name)
    return int(cents)


def timestamp_value(name: str, value: Any) -> int | None:
    """An instant as GET writes it (`2026-01-15T10:30:00.000Z`, or any filter date form)
    -> epoch milliseconds; a bare date means its start."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be an ISO 8601 date-time string", field=name)
    try:
        parsed = day_or_instant(value.strip())
    except BadValue:
        raise ValidationError(
            f"{name} must be an ISO 8601 date-time like 2026-01-15T10:30:00.000Z", field=name
        ) from None
    return parsed[0] if isinstance(parsed, tuple) else math.floor(parsed)


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _check_text(name: str, text: str, limit: int, *, measure_bytes: bool = False) -> None:
    if "\x00" in text:
        raise ValidationError(f"{name} contains a NUL character", field=name)
    size = len(text.encode("utf-8", "surrogatepass")) if measure_bytes else len(text)
    if size > limit:
        unit = "bytes" if measure_bytes else "characters"
        raise ValidationError(f"{name} is longer than {limit} {unit}", field=name)
