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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from leads_api.errors import ValidationError
from leads_api.fields import FIELDS_BY_NAME, WRITABLE, Field, Kind
from leads_api.query.values import BadValue, day_or_instant

# Values up to a trillion: cents then stay far below 2**53, so they render exactly.
MAX_VALUE_CENTS = 100_000_000_000_000
# Stored instants render as `YYYY-MM-DDTHH:MM:SS.mmmZ`: four-digit years, none before the epoch.
MIN_TIMESTAMP_MS = 0  # 1970-01-01T00:00:00.000Z
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_GET_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_NAIVE_EPOCH = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)
_MONEY_TEXT = re.compile(r"\s*[0-9]+(?:\.[0-9]+)?\s*")
_CONSENT = {
    True: True, False: False, "granted": True, "denied": False, "true": True, "false": False,
}

__all__ = [
    "choice_value",
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


def choice_value(field: Field, value: Any) -> str | None:
    """A `status` or `source` as GET writes it: one of the field's choices (trimmed), or null."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or text not in field.choices:
        raise ValidationError(
            f"{field.name} must be one of {', '.join(field.choices)}", field=field.name
        )
    return text


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
    text = value.strip()
    ms = _get_instant(text) if _GET_INSTANT.fullmatch(text) else None
    if ms is None:
        try:
            parsed = day_or_instant(text)
        except BadValue:
            raise ValidationError(
                f"{name} must be an ISO 8601 date-time like 2026-01-15T10:30:00.000Z",
                field=name,
            ) from None
        ms = parsed[0] if isinstance(parsed, tuple) else math.floor(parsed)
    if not MIN_TIMESTAMP_MS <= ms <= MAX_TIMESTAMP_MS:
        raise ValidationError(f"{name} must be between 1970-01-01 and 9999-12-31", field=name)
    return ms


def _get_instant(text: str) -> int | None:
    """`2026-01-15T10:30:00.000Z`, the form GET writes, read the quick way (an import file
    holds four per lead); None when it names no real instant (`2026-02-30T...`)."""
    try:
        return (datetime.fromisoformat(text[:-1]) - _NAIVE_EPOCH) // _ONE_MS
    except ValueError:
        return None


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


# --- whole bodies: POST /api/leads and PATCH /api/leads --------------------------------------

# A new lead needs at least one of these (CONTRACT.md section 5).
CONTACT_FIELDS = ("name", "email", "phone", "custom")
# PATCH: how a lead is found, in order of preference, and the statuses a client may set.
IDENTIFIERS = ("id", "email", "phone")
UPDATE_STATUSES = ("qualified", "won", "lost")
UPDATE_KEYS = (*IDENTIFIERS, "status", "changedTo", "value", "note", "lossReason", "alsoQualified")


def new_lead_columns(body: Mapping[str, Any]) -> dict[str, Any]:
    """A POST /api/leads body -> the client-given columns of a new lead, by column name.

    >>> new_lead_columns({"name": " Ada ", "ad_storage": "granted", "custom": {"a": 1}})
    {'name': 'Ada', 'ad_storage': True, 'custom': '{"a":1}'}
    """
    columns: dict[str, Any] = {}
    for name, value in body.items():
        target = WRITABLE.get(name)
        if target is None:
            raise ValidationError(
                f"Unknown field {_shown(name)}: a new lead accepts {', '.join(WRITABLE)}",
                field=name,
            )
        columns[target.column] = _written_value(target, value)
    if all(columns.get(FIELDS_BY_NAME[n].column) is None for n in CONTACT_FIELDS):
        raise ValidationError(
            "A lead needs at least one of name, email, phone or custom (non-empty)",
            field=CONTACT_FIELDS[0],
            oneOf=list(CONTACT_FIELDS),
        )
    return columns


@dataclass(frozen=True)
class LeadChange:
    """A PATCH /api/leads body, checked: which leads, and what to change on them.

    `columns` holds `value_cents` / `note` when the body names them (null clears them);
    `loss_reason` applies only to leads whose resulting status is `lost`.
    """

    match_field: str  # "id", "email" or "phone"
    match_value: str
    status: str | None
    also_qualified: bool
    columns: dict[str, Any]
    loss_reason_given: bool
    loss_reason: str | None


def lead_change(body: Mapping[str, Any]) -> LeadChange:
    """A PATCH /api/leads body -> LeadChange, or ValidationError naming the field.

    >>> change = lead_change({"email": "A@x.io", "changedTo": "won", "value": "99.50"})
    >>> change.match_field, change.match_value, change.status, change.columns
    ('email', 'A@x.io', 'won', {'value_cents': 9950})
    """
    for name in body:
        if name not in UPDATE_KEYS:
            raise ValidationError(
                f"Unknown field {_shown(name)}: an update accepts {', '.join(UPDATE_KEYS)}",
                field=name,
            )
    match = next(
        ((n, v) for n in IDENTIFIERS if (v := text_value(FIELDS_BY_NAME[n], body.get(n)))),
        None,
    )
    if match is None:
        raise ValidationError(
            "Say which lead to update: send id, email or phone", field="id", oneOf=list(IDENTIFIERS)
        )
    status = _update_status(body)
    also = body.get("alsoQualified")
    if also is not None and not isinstance(also, bool):
        raise ValidationError("alsoQualified must be true or false", field="alsoQualified")
    columns: dict[str, Any] = {}
    if "value" in body:
        columns["value_cents"] = money_value("value", body["value"])
    if "note" in body:
        columns["note"] = text_value(FIELDS_BY_NAME["note"], body["note"])
    loss_reason = text_value(FIELDS_BY_NAME["lossReason"], body.get("lossReason"))
    if status is None and not columns and "lossReason" not in body:
        raise ValidationError(
            "Nothing to change: send status, value, note or lossReason", field="status"
        )
    return LeadChange(
        match_field=match[0],
        match_value=match[1],
        status=status,
        also_qualified=bool(also),
        columns=columns,
        loss_reason_given="lossReason" in body,
        loss_reason=loss_reason,
    )


def _update_status(body: Mapping[str, Any]) -> str | None:
    """`status`, or its legacy alias `changedTo` when `status` is absent or null."""
    name = "status" if body.get("status") is not None else "changedTo"
    value = body.get(name)
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else value
    if text not in UPDATE_STATUSES:
        raise ValidationError(
            f"{name} must be one of {', '.join(UPDATE_STATUSES)}", field=name,
            allowed=list(UPDATE_STATUSES),
        )
    return str(text)


def _written_value(target: Field, value: Any) -> Any:
    if target.kind is Kind.CONSENT:
        return consent_value(target.name, value)
    if target.name == "custom":
        return custom_value(value)
    return text_value(target, value)


def _shown(name: str) -> str:
    """A client-sent key for an error message: quoted, and cut short if it is huge."""
    return repr(name if len(name) <= 100 else name[:100] + "...")
