"""Lead objects from an import file -> `leads` rows: each value checked, defaults filled in.

An object may hold any of the lead object's keys (as GET writes them); a value is read by
the same validators as POST (`leads_api.lead_input`). A new lead gets `status=open`,
`source=import`, `createdAt=now`, `updatedAt=createdAt`, `expiresAt=createdAt +
attributionDays`. A lead already stored keeps whatever the object does not mention.

>>> incoming = read_object({"email": " ada@example.com ", "value": 99.5, "status": "won"})
>>> incoming.id, incoming.columns
(None, {'email': 'ada@example.com', 'value_cents': 9950, 'status': 'won'})
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

from leads_api.errors import ValidationError
from leads_api.fields import FIELD_NAMES, LEAD_FIELDS, Field, Kind
from leads_api.json_shape import check_depth
from leads_api.lead import new_lead_id
from leads_api.lead_input import (
    MAX_TIMESTAMP_MS,
    choice_value,
    consent_value,
    custom_value,
    money_value,
    text_value,
    timestamp_value,
)

DAY_MS = 86_400_000
DEFAULT_STATUS = "open"
DEFAULT_SOURCE = "import"
# The id rule: what `new_lead_id` makes (`lead_` + 20 base62), with room for ids other
# leads-api versions or deployments made, and nothing a URL path would need to escape.
LEAD_ID = re.compile(r"lead_[0-9A-Za-z]{16,64}")
CONTACT_COLUMNS = ("name", "email", "phone", "custom")

# Columns that cannot be null: a null in the file means "not given" (default or unchanged).
_NOT_NULL = frozenset(f.column for f in LEAD_FIELDS if not f.nullable)


def _reader(field: Field) -> Callable[[Any], Any]:
    if field.name == "custom":
        return custom_value
    by_kind: dict[Kind, Callable[[Any], Any]] = {
        Kind.TEXT: partial(text_value, field),
        Kind.CHOICE: partial(choice_value, field),
        Kind.MONEY: partial(money_value, field.name),
        Kind.TIME: partial(timestamp_value, field.name),
        Kind.CONSENT: partial(consent_value, field.name),
    }
    return by_kind[field.kind]


# Every key but `id`: its column and the function that reads its value.
_READERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    f.name: (f.column, _reader(f)) for f in LEAD_FIELDS if f.kind is not Kind.ID
}


class Incoming(NamedTuple):
    """What one object says: its id (None: a new lead) and the columns it sets. (A named
    tuple: an import checks objects in another process and sends these back.)"""

    id: str | None
    columns: dict[str, Any]


def unknown_field(name: str) -> str:
    close = difflib.get_close_matches(name, FIELD_NAMES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {name!r}{hint}"


def read_object(obj: Any) -> Incoming:
    """Check every key and value of one lead object; ValidationError names the first bad one."""
    if not isinstance(obj, dict):
        raise ValidationError("a lead must be a JSON object")
    check_depth(obj)  # before custom_value encodes anything
    lead_id: str | None = None
    columns: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "id":
            lead_id = _lead_id(value)
            continue
        entry = _READERS.get(key)
        if entry is None:
            raise ValidationError(unknown_field(key), field=key)
        column, read = entry
        stored = None if value is None else read(value)
        if stored is not None or column not in _NOT_NULL:
            columns[column] = stored
    return Incoming(lead_id, columns)


def _lead_id(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if not isinstance(value, str) or not LEAD_ID.fullmatch(value.strip()):
        raise ValidationError(
            "id must be 'lead_' followed by 16 to 64 letters and digits", field="id"
        )
    return value.strip()


def new_row(incoming: Incoming, *, now: int, attribution_days: int) -> dict[str, Any]:
    """The row of a lead not stored yet: the object's columns plus the defaults."""
    row = dict(incoming.columns)
    row["id"] = incoming.id or new_lead_id()
    row.setdefault("status", DEFAULT_STATUS)
    row.setdefault("source", DEFAULT_SOURCE)
    created = row.setdefault("created_at", now)
    row.setdefault("updated_at", created)
    if "expires_at" not in row:
        row["expires_at"] = _expiry(created, attribution_days)
    _require_contact(row)
    return row


def merged_row(
    incoming: Incoming, stored: Mapping[str, Any], *, now: int, attribution_days: int
) -> dict[str, Any] | None:
    """A stored lead with the object's columns over it, or None when nothing would change.

    A changed lead gets `updatedAt=now` unless the object gives `updatedAt`; a new
    `createdAt` without an `expiresAt` moves `expiresAt` with it.
    """
    given = incoming.columns
    row = {**stored, **given}
    if "created_at" in given and "expires_at" not in given:
        row["expires_at"] = _expiry(row["created_at"], attribution_days)
    _require_contact(row)
    if row == stored:
        return None
    if "updated_at" not in given:
        row["updated_at"] = now
    return row


def _expiry(created: int, attribution_days: int) -> int:
    expires = created + attribution_days * DAY_MS
    if expires > MAX_TIMESTAMP_MS:
        raise ValidationError(
            f"createdAt + {attribution_days} attribution days is after 9999-12-31",
            field="createdAt",
        )
    return expires


def _require_contact(row: Mapping[str, Any]) -> None:
    if all(row.get(column) is None for column in CONTACT_COLUMNS):
        raise ValidationError(
            "a lead needs at least one of name, email, phone, custom", field="name"
        )
