"""Parse the query string of GET /api/leads into a ListQuery (CONTRACT.md section 4).

>>> q = parse_list_query(split_query_string("status=won,lost&sort=value:desc&limit=20"))
>>> [p.values for p in q.predicates], [(k.field.name, k.descending) for k in q.sort], q.limit
([('won', 'lost')], [('value', True)], 20)
>>> parse_list_query([("value[gte]", "abc")])
Traceback (most recent call last):
...
leads_api.errors.InvalidFilter: value[gte] must be a number like 100 or 99.50, not 'abc'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from fractions import Fraction
from urllib.parse import parse_qsl

from leads_api.errors import InvalidDate, InvalidFilter, ValidationError
from leads_api.fields import (
    BRACKET_OPERATORS,
    EQ,
    EXISTS,
    FIELD_NAMES,
    FIELDS_BY_NAME,
    FILTERABLE,
    LEGACY_SORT_NAMES,
    SORTABLE,
    Field,
    Kind,
    describe_operators,
)
from leads_api.query.model import (
    DEFAULT_FEED_LIMIT,
    DEFAULT_LIMIT,
    DEFAULT_SORT,
    FEED_START,
    MAX_FEED_LIMIT,
    MAX_FILTER_VALUES,
    MAX_LIMIT,
    MAX_PAGE,
    MAX_SEARCH_LENGTH,
    ChangesQuery,
    Exists,
    IntRanges,
    Keyset,
    ListQuery,
    Predicate,
    Search,
    SortKey,
    TextIn,
)
from leads_api.query.tokens import decode_cursor, decode_position, malformed
from leads_api.query.values import (
    BadValue,
    Range,
    clamp,
    comparison_range,
    day_or_instant,
    day_range,
    parse_number,
)

# Parameters that shape the answer rather than filter it; each may appear at most once.
SINGLE_PARAMETERS = ("limit", "page", "sort", "search", "fields")
# Of those, the ones that take a comma list: `sort=,` has no items, so it is absent too.
LIST_PARAMETERS = ("sort", "fields")
LEGACY_FILTERS = {"updated_after": ("updatedAt", "gte")}
CURSOR = "cursor"  # GET /api/leads: continue the query a cursor came from
SINCE = "since"  # GET /api/leads/changes: the position to continue from
# Not part of what a cursor carries: the page, its size, and the cursor itself.
NOT_IN_SHAPE = ("limit", "page", CURSOR)
# The change feed's order is the order of changes, and it has no pages.
NOT_IN_FEED = ("sort", "page", CURSOR)

_BRACKETED = re.compile(r"([^\[\]]+)\[([^\[\]]*)\]")
_DIGITS = re.compile(r"[0-9]+")
_ASCII_DIGIT = re.compile(r"[0-9]")


def split_query_string(query_string: str) -> list[tuple[str, str]]:
    """Decode a raw query string into (name, value) pairs, `+` as space, blanks kept."""
    return parse_qsl(query_string, keep_blank_values=True, errors="replace")


def parse_list_query(pairs: Iterable[tuple[str, str]], *, org_id: int | None = None) -> ListQuery:
    """The whole list query: pagination, sort, search, fields and filters, or a `cursor`
    (of organization `org_id`; None: cursors are not accepted) that carries them."""
    pairs = list(pairs)
    token = _single(pairs, CURSOR)
    if token is None:
        query = _parse([p for p in pairs if p[0] != CURSOR], DEFAULT_LIMIT, MAX_LIMIT)
        return replace(query, shape=_shape(pairs))
    if org_id is None:
        raise ValidationError("cursor is accepted by GET /api/leads only", parameter=CURSOR)
    cursor = decode_cursor(token, org_id=org_id)
    if any(name in NOT_IN_SHAPE for name, _ in cursor.pairs):
        raise malformed(CURSOR)
    carried = Counter(cursor.pairs)
    limit: list[tuple[str, str]] = [("limit", str(cursor.limit))]
    for name, value in pairs:
        if name == CURSOR or not value.strip():
            continue
        if name == "limit":
            limit = [(name, value)]
        elif name == "page":
            raise ValidationError(
                "page cannot be combined with cursor: a cursor continues its query after its "
                "last lead (send limit to change the page size)",
                parameter="page",
            )
        elif carried[(name, value)] > 0:
            carried[(name, value)] -= 1  # the same parameter the cursor carries: fine
        else:
            raise ValidationError(
                f"{name} contradicts the cursor: a cursor carries its query's filters, search, "
                "sort and fields; send the cursor alone (and limit)",
                parameter=name,
            )
    query = _parse([*cursor.pairs, *limit], DEFAULT_LIMIT, MAX_LIMIT)
    return replace(query, after=_keyset(query, cursor.after), shape=cursor.pairs)


def parse_changes_query(pairs: Iterable[tuple[str, str]], *, org_id: int) -> ChangesQuery:
    """GET /api/leads/changes: `since`, `limit` (1..1000), `fields`, filters and search."""
    pairs = list(pairs)
    for name, value in pairs:
        if name in NOT_IN_FEED and value.strip():
            raise ValidationError(
                f"{name} is not accepted by the change feed: its leads come in the order they "
                "changed; follow meta.changes.next with since",
                parameter=name,
            )
    token = _single(pairs, SINCE)
    since = FEED_START if token is None else decode_position(token, org_id=org_id)
    rest = [(n, v) for n, v in pairs if n not in (SINCE, *NOT_IN_FEED)]
    return ChangesQuery(_parse(rest, DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT), since)


def _parse(pairs: Iterable[tuple[str, str]], default_limit: int, max_limit: int) -> ListQuery:
    single: dict[str, str] = {}
    plain: dict[str, list[str]] = {}
    operated: list[tuple[str, Field, str, str]] = []
    value_count = 0

    for name, raw in pairs:
        _reject_nul(name, raw)
        value = raw.strip()
        if name in SINGLE_PARAMETERS:
            if value == "" or (name in LIST_PARAMETERS and not _items(value)):
                continue  # absent, so `sort=value&sort=,` is no repeat
            if name in single:
                raise ValidationError(f"{name} may be given only once", parameter=name)
            single[name] = value
            continue
        field, op = _resolve_filter_name(name)  # unknown names are rejected even when empty
        items = _items(value)
        if not items:
            continue  # empty, or a comma list with no items: absent
        value_count += len(items)
        if value_count > MAX_FILTER_VALUES:
            raise InvalidFilter(
                f"Too many filter values at '{name}': a request may carry at most "
                f"{MAX_FILTER_VALUES} in all",
                parameter=name,
            )
        if op == EQ:
            plain.setdefault(field.name, []).extend(items)
        else:
            operated.append((name, field, op, value))

    predicates: list[Predicate] = []
    for field_name, items in plain.items():
        predicates.append(_equality(FIELDS_BY_NAME[field_name], items))
    for parameter, field, op, value in operated:
        predicates.append(_operator(parameter, field, op, value))

    return ListQuery(
        predicates=tuple(predicates),
        search=_search(single.get("search")),
        sort=_sort(single.get("sort")),
        limit=_positive_int("limit", single.get("limit"), default=default_limit, maximum=max_limit),
        page=_positive_int("page", single.get("page"), default=1, maximum=MAX_PAGE),
        fields=_fields(single.get("fields")),
    )


def _single(pairs: Sequence[tuple[str, str]], name: str) -> str | None:
    """The trimmed value of a parameter that may appear once, or None if absent or empty."""
    found: str | None = None
    for given, raw in pairs:
        if given != name:
            continue
        _reject_nul(given, raw)
        value = raw.strip()
        if not value:
            continue
        if found is not None:
            raise ValidationError(f"{name} may be given only once", parameter=name)
        found = value
    return found


def _shape(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((n, v) for n, v in pairs if n not in NOT_IN_SHAPE and v.strip())


def _keyset(query: ListQuery, after: Keyset) -> Keyset:
    """A cursor's keyset, checked against its query's sort: one value per key, of the kind
    the key's column holds."""
    if len(after.values) != len(query.sort):
        raise malformed(CURSOR)
    for key, value in zip(query.sort, after.values, strict=True):
        numeric = key.field.kind in (Kind.MONEY, Kind.TIME)
        fits = (
            (value is None and key.field.nullable)
            or (numeric and isinstance(value, int))
            or (not numeric and isinstance(value, str))
        )
        if not fits:
            raise malformed(CURSOR)
    return after


def parse_one_lead_query(pairs: Iterable[tuple[str, str]]) -> tuple[Field, ...] | None:
    """GET /api/leads/{id} takes only `fields`."""
    chosen: str | None = None
    for name, raw in pairs:
        _reject_nul(name, raw)
        if name != "fields":
            raise InvalidFilter(
                f"Unknown query parameter '{name}': one lead accepts only 'fields'",
                parameter=name,
            )
        if not _items(raw):
            continue  # empty, or a comma list with no items: absent
        if chosen is not None:
            raise ValidationError("fields may be given only once", parameter="fields")
        chosen = raw.strip()
    return _fields(chosen)


# --- filters -------------------------------------------------------------------------------


def _resolve_filter_name(name: str) -> tuple[Field, str]:
    """`status` -> (status, eq); `value[gte]` -> (value, gte); legacy names mapped."""
    if name in LEGACY_FILTERS:
        field_name, op = LEGACY_FILTERS[name]
        return FIELDS_BY_NAME[field_name], op
    m = _BRACKETED.fullmatch(name)
    base, op = (m[1], m[2]) if m else (name, EQ)
    if not m and ("[" in name or "]" in name):
        raise InvalidFilter(
            f"Malformed filter '{name}': use field=value or field[op]=value "
            f"with op one of {', '.join(BRACKET_OPERATORS)}",
            parameter=name,
        )
    field = FILTERABLE.get(base)
    if field is None:
        raise InvalidFilter(
            f"Unknown query parameter '{name}'. Filterable fields: {', '.join(FILTERABLE)}; "
            f"other parameters: {', '.join(SINGLE_PARAMETERS)}, cursor, updated_after",
            parameter=name,
        )
    if m and op not in BRACKET_OPERATORS:  # `[eq]` too: equality is written `field=v`
        raise InvalidFilter(
            f"Unknown operator '{op}' in '{name}': allowed operators are "
            f"{', '.join(BRACKET_OPERATORS)}",
            parameter=name,
        )
    if op not in field.operators:
        raise InvalidFilter(
            f"'{name}' is not allowed: {field.name} supports {describe_operators(field)}",
            parameter=name,
        )
    return field, op


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _equality(field: Field, items: Sequence[str]) -> Predicate:
    if field.kind is Kind.CHOICE:
        for item in items:
            if item not in field.choices:
                raise InvalidFilter(
                    f"Invalid {field.name} '{item}': allowed values are "
                    f"{', '.join(field.choices)}",
                    parameter=field.name,
                )
        return TextIn(field, tuple(dict.fromkeys(items)))
    if field.kind in (Kind.MONEY, Kind.TIME):
        ranges = [_range(field.name, field, EQ, item) for item in items]
        return IntRanges(field, tuple(r for r in ranges if r is not None))
    return TextIn(field, tuple(dict.fromkeys(items)))


def _operator(parameter: str, field: Field, op: str, value: str) -> Predicate:
    items = _items(value)
    if len(items) != 1:
        raise InvalidFilter(f"{parameter} takes a single value, not a list", parameter=parameter)
    item = items[0]
    if op == EXISTS:
        lowered = item.lower()
        if lowered not in ("true", "false"):
            raise InvalidFilter(
                f"{parameter} must be true or false, not '{item}'", parameter=parameter
            )
        return Exists(field, lowered == "true")
    r = _range(parameter, field, op, item)
    return IntRanges(field, () if r is None else (r,))


def _range(parameter: str, field: Field, op: str, item: str) -> Range | None:
    if field.kind is Kind.MONEY:
        try:
            number = parse_number(item)
        except BadValue:
            raise InvalidFilter(
                f"{parameter} must be a number like 100 or 99.50, not '{_clip(item)}'",
                parameter=parameter,
            ) from None
        return clamp(comparison_range(op, number * 100))
    try:
        parsed = day_or_instant(item)
    except BadValue:
        raise InvalidDate(
            f"{parameter} has an invalid date '{_clip(item)}': use YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM[:SS[.fff]] with Z or an offset like +02:00",
            parameter=parameter,
        ) from None
    if isinstance(parsed, Fraction):
        return clamp(comparison_range(op, parsed))
    return clamp(day_range(op, *parsed))


# --- the single parameters -----------------------------------------------------------------


def _positive_int(name: str, raw: str | None, *, default: int, maximum: int) -> int:
    if raw is None:
        return default
    digits = raw.lstrip("0")
    # Leading zeros are harmless; checking the length first keeps int() off absurd input.
    valid = _DIGITS.fullmatch(raw) is not None and 0 < len(digits) <= len(str(maximum))
    if not valid or int(digits) > maximum:
        raise ValidationError(
            f"{name} must be a whole number between 1 and {maximum}, not '{_clip(raw)}'",
            parameter=name,
        )
    return int(digits)


def _sort(raw: str | None) -> tuple[SortKey, ...]:
    if raw is None:
        return DEFAULT_SORT
    keys: list[SortKey] = []
    seen: set[str] = set()
    for item in _items(raw):
        name, _, direction = item.partition(":")
        name = LEGACY_SORT_NAMES.get(name.strip(), name.strip())
        direction = direction.strip().lower() or "asc"
        field = SORTABLE.get(name)
        if field is None:
            raise ValidationError(
                f"Cannot sort by '{_clip(name)}': sortable fields are {', '.join(SORTABLE)}",
                parameter="sort",
            )
        if direction not in ("asc", "desc"):
            raise ValidationError(
                f"Invalid sort direction for {name}: use asc or desc, not '{_clip(direction)}'",
                parameter="sort",
            )
        if name in seen:
            raise ValidationError(f"sort names {name} twice", parameter="sort")
        seen.add(name)
        keys.append(SortKey(field, descending=direction == "desc"))
    return tuple(keys) or DEFAULT_SORT


def _search(raw: str | None) -> Search | None:
    if raw is None:
        return None
    if len(raw) > MAX_SEARCH_LENGTH:
        raise ValidationError(
            f"search must be at most {MAX_SEARCH_LENGTH} characters", parameter="search"
        )
    digits = "".join(_ASCII_DIGIT.findall(raw))
    return Search(folded=raw.casefold(), digits=digits if len(digits) >= 3 else None)


def _fields(raw: str | None) -> tuple[Field, ...] | None:
    if raw is None:
        return None
    names = _items(raw)
    if not names:
        return None
    for name in names:
        if name not in FIELDS_BY_NAME:
            raise ValidationError(
                f"Unknown field '{_clip(name)}' in fields: choose from {', '.join(FIELD_NAMES)}",
                parameter="fields",
            )
    wanted = {"id", *names}
    return tuple(FIELDS_BY_NAME[n] for n in FIELD_NAMES if n in wanted)


# --- helpers ----------------------------------------------------------------------------------


def _reject_nul(name: str, value: str) -> None:
    # PostgreSQL text cannot hold NUL, so no stored lead can match it; say so instead, with
    # the code the parameter's other bad values get (section 2's table).
    if "\x00" in name or "\x00" in value:
        shown = name.replace("\x00", "\\0")
        error = ValidationError if name in (*SINGLE_PARAMETERS, CURSOR, SINCE) else InvalidFilter
        raise error(f"'{shown}' contains a NUL character", parameter=shown)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
