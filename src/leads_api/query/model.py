"""The typed query: what the parser produces and the store turns into SQL.

Every filter is normalised here into one of three predicate shapes, so the store needs no
knowledge of dates, days, decimals or legacy names:

- `TextIn`: the column equals one of some strings (comma lists and repeats are ORed).
- `IntRanges`: the integer column (cents, epoch milliseconds) lies in one of some half-open
  ranges `[lo, hi)`; `None` is unbounded. Equality, comparisons and whole-day dates all
  become ranges; an empty tuple of ranges matches nothing.
- `Exists`: the column is (not) null.

All predicates of a ListQuery combine with AND.
"""

from __future__ import annotations

from dataclasses import dataclass

from leads_api.fields import FIELDS_BY_NAME, Field

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_FEED_LIMIT = 100
MAX_FEED_LIMIT = 1_000
MAX_PAGE = 10**18 - 1  # far past any real last page, and within a 64-bit JSON integer
MAX_SEARCH_LENGTH = 200
# Filter values in one request, all parameters together: each becomes one or two bound SQL
# parameters, and SQLite takes at most 32,766 of them in a statement.
MAX_FILTER_VALUES = 1_000  # bounds the SQL a request can build (and its planning time)


@dataclass(frozen=True)
class TextIn:
    field: Field
    values: tuple[str, ...]


@dataclass(frozen=True)
class IntRanges:
    field: Field
    ranges: tuple[tuple[int | None, int | None], ...]


@dataclass(frozen=True)
class Exists:
    field: Field
    present: bool


Predicate = TextIn | IntRanges | Exists


@dataclass(frozen=True)
class Search:
    folded: str  # the term, trimmed and str.casefold()ed
    digits: str | None  # the term's ASCII digits when there are at least 3, else None


@dataclass(frozen=True)
class SortKey:
    field: Field
    descending: bool


DEFAULT_SORT: tuple[SortKey, ...] = (SortKey(FIELDS_BY_NAME["createdAt"], descending=True),)

KeysetValue = int | str | None


@dataclass(frozen=True)
class Keyset:
    """Where a cursor's page starts: after the lead with these sort-column values (one per
    sort key, as stored: epoch ms, cents, case-folded text) and this id."""

    values: tuple[KeysetValue, ...]
    lead_id: str


@dataclass(frozen=True)
class ListQuery:
    predicates: tuple[Predicate, ...] = ()
    search: Search | None = None
    sort: tuple[SortKey, ...] = DEFAULT_SORT
    limit: int = DEFAULT_LIMIT
    page: int = 1
    fields: tuple[Field, ...] | None = None  # None = every field; else in lead-object order
    after: Keyset | None = None  # a cursor's page: the leads after this one (page is 1)
    # The parameters that define the list (filters, search, sort, fields) as the client gave
    # them: what the answer's next cursor carries, so that it continues this very query.
    shape: tuple[tuple[str, str], ...] = ()

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    @property
    def by_cursor(self) -> bool:
        return self.after is not None

    @property
    def ties_descending(self) -> bool:
        """Ties are broken by id in the direction of the last sort key."""
        return self.sort[-1].descending


@dataclass(frozen=True)
class FeedPosition:
    """A place in an organization's change feed: after the lead written `ordinal`-th by the
    write that took position `seq` (the beginning is (0, -1))."""

    seq: int
    ordinal: int


@dataclass(frozen=True)
class LegacyFeedPosition:
    """A place named the way tokens did before ordinals (schema revision 0009): after lead
    `lead_id` at position `seq`, in (seq, id) order. The store translates it into the
    FeedPosition of the same place."""

    seq: int
    lead_id: str


FEED_START = FeedPosition(0, -1)


@dataclass(frozen=True)
class ChangesQuery:
    """GET /api/leads/changes: the leads changed after `since` that match `filters` (its
    predicates, search, fields and limit; its sort and page are not used)."""

    filters: ListQuery
    since: FeedPosition | LegacyFeedPosition
