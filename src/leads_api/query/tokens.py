"""Opaque tokens that name a position: the change feed's `since`/`next` and the list's cursors.

A token is URL-safe base64 of a small JSON object with a kind, the organization it belongs
to, and the position. Tokens are not secret and not signed: a key reads only its own
organization whatever a token says, so a made-up token gains nothing; but every token is
checked whole (kind, organization, types) and a bad or foreign one is a 400 naming its
parameter. Tokens never expire: a position stays meaningful for as long as the leads exist.

>>> token = encode_position(FeedPosition(seq=42, ordinal=3), org_id=7)
>>> decode_position(token, org_id=7)
FeedPosition(seq=42, ordinal=3)
>>> decode_position(token, org_id=8)
Traceback (most recent call last):
...
leads_api.errors.ValidationError: since belongs to another organization's feed

A feed token made before ordinals named the last lead by its id; it is still read:

>>> decode_position(_encode({"k": "feed", "o": 7, "s": 42, "i": "lead_abc"}), org_id=7)
LegacyFeedPosition(seq=42, lead_id='lead_abc')
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from leads_api.errors import ValidationError
from leads_api.query.model import FeedPosition, Keyset, KeysetValue, LegacyFeedPosition

_FEED = "feed"
_CURSOR = "list"
MAX_TOKEN_LENGTH = 16_384  # a cursor carries its query: up to about 1,000 filter values
_INT_RANGE = 2**63  # positions and keyset numbers are 64-bit integers in both databases



@dataclass(frozen=True)
class Cursor:
    """A place in a list: the parameters that define it (filters, search, sort, fields, as
    given), the page size it was made with, and where the next page starts."""

    pairs: tuple[tuple[str, str], ...]
    limit: int
    after: Keyset


def encode_position(position: FeedPosition, *, org_id: int) -> str:
    return _encode({"k": _FEED, "o": org_id, "s": position.seq, "n": position.ordinal})


def decode_position(
    token: str, *, org_id: int, parameter: str = "since"
) -> FeedPosition | LegacyFeedPosition:
    """A position: (sequence, ordinal), or (sequence, lead id) from a token made before
    ordinals (tokens never expire)."""
    body = _decode(token, kind=_FEED, org_id=org_id, parameter=parameter, what="feed")
    seq, ordinal, lead_id = body.get("s"), body.get("n"), body.get("i")
    if not _is_int(seq):
        raise malformed(parameter)
    if _is_int(ordinal) and lead_id is None:
        return FeedPosition(seq, ordinal)
    if isinstance(lead_id, str) and ordinal is None:
        return LegacyFeedPosition(seq, lead_id)
    raise malformed(parameter)


def encode_cursor(cursor: Cursor, *, org_id: int) -> str:
    return _encode(
        {
            "k": _CURSOR,
            "o": org_id,
            "q": [list(pair) for pair in cursor.pairs],
            "l": cursor.limit,
            "v": list(cursor.after.values),
            "i": cursor.after.lead_id,
        }
    )


def decode_cursor(token: str, *, org_id: int, parameter: str = "cursor") -> Cursor:
    """The cursor's parts, checked for shape; the parser checks them against the query."""
    body = _decode(token, kind=_CURSOR, org_id=org_id, parameter=parameter, what="list")
    pairs, limit, values, lead_id = body.get("q"), body.get("l"), body.get("v"), body.get("i")
    if not (
        isinstance(pairs, list)
        and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in pairs
        )
        and _is_int(limit)
        and isinstance(values, list)
        and all(v is None or isinstance(v, str) or _is_int(v) for v in values)
        and isinstance(lead_id, str)
    ):
        raise malformed(parameter)
    checked: list[KeysetValue] = list(values)
    return Cursor(tuple((p[0], p[1]) for p in pairs), limit, Keyset(tuple(checked), lead_id))


def _encode(body: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")


def _decode(token: str, *, kind: str, org_id: int, parameter: str, what: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_LENGTH:
        raise malformed(parameter)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise malformed(parameter) from None
    if not isinstance(body, dict) or body.get("k") != kind or not _is_int(body.get("o")):
        raise malformed(parameter)
    if body["o"] != org_id:
        raise ValidationError(
            f"{parameter} belongs to another organization's {what}", parameter=parameter
        )
    return body


def _is_int(value: Any) -> TypeGuard[int]:
    return (
        isinstance(value, int) and not isinstance(value, bool) and -_INT_RANGE <= value < _INT_RANGE
    )


def malformed(parameter: str) -> ValidationError:
    return ValidationError(
        f"{parameter} is not a token this service gave: pass the value of an earlier answer "
        "unchanged",
        parameter=parameter,
    )
