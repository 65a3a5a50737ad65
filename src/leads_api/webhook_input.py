"""Webhook event types, and reading the subscription bodies clients send (API and CLI).

Pure: no I/O. Whether a URL's host may be called is the address guard's question
(`leads_api.delivery.address`), asked by the callers after this.

>>> subscription_input({"url": "https://example.com/hook"})["events"]
('lead.created', 'lead.updated', 'lead.status_changed')
>>> subscription_input({"url": "ftp://example.com"})
Traceback (most recent call last):
...
leads_api.errors.ValidationError: url must be an http:// or https:// URL
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from leads_api.errors import ValidationError


@dataclass(frozen=True)
class EventType:
    """A lead event type: which changes it reports (a column of the stored change and the
    value it must have), and its rank among the messages of one change (their order)."""

    name: str
    rank: int
    when_column: str
    when_value: bool
    description: str


EVENT_TYPES: tuple[EventType, ...] = (
    EventType("lead.created", 0, "created", True, "a new lead (POST /api/leads or an import)"),
    EventType("lead.updated", 1, "created", False, "any change by PATCH or import"),
    EventType(
        "lead.status_changed", 2, "status_changed", True,
        "the status moved (sent beside lead.updated)",
    ),
)
EVENT_TYPES_BY_NAME = {t.name: t for t in EVENT_TYPES}
# Positions are event seq * POSITION_STRIDE + rank: the messages of one change in rank order.
POSITION_STRIDE = 4
TEST_EVENT_TYPE = "webhook.test"

MAX_URL_LENGTH = 2_000
MAX_DESCRIPTION_LENGTH = 500
_KEYS = ("url", "events", "description", "enabled")
_CREATE_KEYS = ("url", "events", "description")


def subscription_input(body: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """A create body (`partial=False`: url required, events default to all) or a PATCH body
    (only the keys given) -> checked values by name: url, events (tuple), description,
    enabled."""
    allowed = _KEYS if partial else _CREATE_KEYS
    for key in body:
        if key not in allowed:
            raise ValidationError(
                f"Unknown field {key!r}: allowed are {', '.join(allowed)}", field=key
            )
    values: dict[str, Any] = {}
    if "url" in body or not partial:
        values["url"] = url_value(body.get("url"))
    if "events" in body:
        values["events"] = events_value(body["events"])
    elif not partial:
        values["events"] = tuple(t.name for t in EVENT_TYPES)
    if "description" in body:
        values["description"] = description_value(body["description"])
    elif not partial:
        values["description"] = None
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ValidationError("enabled must be true or false", field="enabled")
        values["enabled"] = body["enabled"]
    return values


def url_value(value: Any) -> str:
    """An absolute http(s) URL with a host, up to 2,000 characters, without spaces."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("url is required: the address to send events to", field="url")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"url is over {MAX_URL_LENGTH} characters", field="url")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValidationError("url must not contain spaces or control characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number in range
    except ValueError:
        raise ValidationError("url is not a valid URL", field="url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError("url must be an http:// or https:// URL", field="url")
    if not parts.hostname:
        raise ValidationError("url must name a host", field="url")
    if port == 0:
        raise ValidationError("url has port 0", field="url")
    return url


def events_value(value: Any) -> tuple[str, ...]:
    """A non-empty list of known event types, in the registry's order, without repeats."""
    names = ", ".join(t.name for t in EVENT_TYPES)
    if not isinstance(value, list) or not value:
        raise ValidationError(f"events must be a non-empty list of: {names}", field="events")
    for item in value:
        if not isinstance(item, str) or item not in EVENT_TYPES_BY_NAME:
            raise ValidationError(
                f"Unknown event type {item!r}: allowed are {names}", field="events"
            )
    return tuple(t.name for t in EVENT_TYPES if t.name in value)


def description_value(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("description must be a string or null", field="description")
    text = value.strip()
    if "\x00" in text:
        raise ValidationError("description must not contain NUL characters", field="description")
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise ValidationError(
            f"description is over {MAX_DESCRIPTION_LENGTH} characters", field="description"
        )
    return text or None
