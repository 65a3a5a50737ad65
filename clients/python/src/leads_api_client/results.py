"""What the client's methods return: plain lead dicts and small frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

Lead = dict[str, Any]
"""A lead object exactly as the API sends it: camelCase keys in the contract's order,
timestamps as `2026-01-15T10:30:00.000Z` strings, `value` a number or None."""


class Change(NamedTuple):
    """One lead of the change feed and the token to resume from once it is handled.

    Passing `token` as `since` continues the feed so that no lead after this one is
    skipped; at most its page up to and including it (fewer than the page's limit)
    comes again. It is None only on the first page of a feed started from the beginning, where
    resuming means starting over (`since=None`).
    """

    lead: Lead
    token: str | None


@dataclass(frozen=True, slots=True)
class LeadPage:
    """One answer of `GET /api/leads`."""

    leads: list[Lead]
    total: int
    next_cursor: str | None
    pagination: dict[str, Any]
    request_id: str | None


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """One answer of `GET /api/leads/changes`: `next` is the position after its last lead
    (equal to the `since` asked for when it is empty)."""

    leads: list[Lead]
    next: str
    has_more: bool
    request_id: str | None


@dataclass(frozen=True, slots=True)
class CreatedLead:
    """A 201 of `POST /api/leads`. `replayed` is true when the server answered a repeat of
    an `Idempotency-Key` it had seen (so nothing new was created)."""

    id: str
    message: str
    replayed: bool
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class UpdatedLeads:
    """A 200 of `PATCH /api/leads`: the matched leads, oldest first."""

    lead_id: str
    lead_ids: list[str]
    leads_updated: int
    message: str
