"""ListQuery -> SQLAlchemy Core clauses over the `leads` table. Pure: builds, never runs.

Dialect differences stay here: NULLS LAST only where a column can be null (so PostgreSQL
can still walk its indexes), LIKE with escaping on the case-folded copies for search.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from leads_api.fields import (
    FOLDED_COLUMNS,
    PHONE_DIGITS_COLUMN,
    SEARCH_TEXT_COLUMN,
    Field,
    sort_column,
)
from leads_api.query.model import Exists, IntRanges, ListQuery, Predicate, Search, TextIn
from leads_api.store.schema import leads, sqlite_search

TRIGRAM = 3  # a trigram index can only narrow terms of at least three characters


def where_clause(query: ListQuery, *, org_id: int, dialect: str) -> ColumnElement[bool]:
    """The organization scope AND every predicate AND the search."""
    clauses: list[ColumnElement[bool]] = [leads.c.org_id == org_id]
    clauses.extend(_predicate(p) for p in query.predicates)
    if query.search is not None:
        clauses.append(_search(query.search, org_id=org_id, dialect=dialect))
    return sa.and_(*clauses)


def order_by(query: ListQuery) -> list[ColumnElement[object]]:
    keys: list[ColumnElement[object]] = []
    for key in query.sort:
        column = leads.c[sort_column(key.field)]
        ordered = column.desc() if key.descending else column.asc()
        keys.append(ordered.nulls_last() if key.field.nullable else ordered)
    keys.append(leads.c.id.desc() if query.ties_descending else leads.c.id.asc())
    return keys


def columns_for(fields: Sequence[Field]) -> list[sa.Column[object]]:
    return [leads.c[f.column] for f in fields]


def _predicate(p: Predicate) -> ColumnElement[bool]:
    column = leads.c[p.field.column]
    if isinstance(p, TextIn):
        return column == p.values[0] if len(p.values) == 1 else column.in_(p.values)
    if isinstance(p, Exists):
        return column.is_not(None) if p.present else column.is_(None)
    if isinstance(p, IntRanges):
        if not p.ranges:
            return sa.false()
        return sa.or_(*(_range(column, lo, hi) for lo, hi in p.ranges))
    raise TypeError(p)


def _range(column: sa.Column[object], lo: int | None, hi: int | None) -> ColumnElement[bool]:
    if lo is not None and hi is not None:
        return column == lo if hi == lo + 1 else sa.and_(column >= lo, column < hi)
    if lo is not None:
        return column >= lo
    if hi is not None:
        return column < hi
    return column.is_not(None)


def _search(search: Search, *, org_id: int, dialect: str) -> ColumnElement[bool]:
    # Both sides are str.casefold()ed in Python, so a plain case-sensitive containment test
    # is a case-insensitive search; SQLite's ASCII-only LIKE folding cannot change it because
    # folded ASCII is already lower case. `autoescape` makes % _ and / literal.
    matches = [
        leads.c[column].contains(search.folded, autoescape=True)
        for column in FOLDED_COLUMNS.values()
    ]
    if search.digits is not None:
        matches.append(leads.c[PHONE_DIGITS_COLUMN].contains(search.digits, autoescape=True))
    exact = sa.or_(*matches)
    prefilter = _search_prefilter(search, org_id=org_id, dialect=dialect)
    return exact if prefilter is None else sa.and_(prefilter, exact)


def _search_prefilter(
    search: Search, *, org_id: int, dialect: str
) -> ColumnElement[bool] | None:
    """A condition the trigram index can answer that every match also meets, or None.

    `search_text` holds every folded column and the phone digits, so any lead the exact
    match accepts contains the term (or its digits) there too.
    """
    terms = [search.folded] if search.digits is None else [search.folded, search.digits]
    if any(len(term) < TRIGRAM for term in terms):
        return None
    if dialect == "postgresql":
        column = leads.c[SEARCH_TEXT_COLUMN]
        return sa.or_(*(column.contains(term, autoescape=True) for term in terms))
    if dialect == "sqlite":
        # FTS5 passes LIKE to its trigram index only without an ESCAPE clause.
        if any(char in term for term in terms for char in "%_"):
            return None
        fts = sqlite_search
        candidates = sa.union_all(
            *(
                sa.select(fts.c.lead_id).where(
                    fts.c.search_text.like(f"%{term}%"), fts.c.org_id == org_id
                )
                for term in terms
            )
        )
        return leads.c.id.in_(candidates)
    return None
