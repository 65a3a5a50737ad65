"""ListQuery -> SQLAlchemy Core clauses over the `leads` table. Pure: builds, never runs.

Dialect differences stay here: NULLS LAST only where a column can be null (so PostgreSQL
can still walk its indexes), LIKE with escaping on the case-folded copies for search, and
the index that narrows a search first (pg_trgm on PostgreSQL, FTS5 trigrams on SQLite).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import HasHints
from sqlalchemy.sql.visitors import InternalTraversal

from leads_api.fields import (
    FIELDS_BY_NAME,
    FOLDED_COLUMNS,
    LEAD_FIELDS,
    PHONE_DIGITS_COLUMN,
    SEARCH_TEXT_COLUMN,
    Field,
    sort_column,
)
from leads_api.query.model import (
    Exists,
    IntRanges,
    Keyset,
    ListQuery,
    Predicate,
    Search,
    TextIn,
)
from leads_api.store.rollups import CLICK_PRESENCE
from leads_api.store.schema import (
    CLICK_MASK_COLUMN,
    LEAD_JSON_COLUMN,
    SEARCH_ROWS,
    SQLITE_SEARCH_INDEX,
    lead_counts_by_clicks,
    leads,
)

TRIGRAM = 3  # a trigram index can only narrow terms of at least three characters


def where_clause(
    query: ListQuery, *, org_id: int | BindParameter[int], dialect: str
) -> ColumnElement[bool]:
    """The organization scope AND every predicate AND the search (not a cursor's keyset:
    see keyset_clause)."""
    clauses: list[ColumnElement[bool]] = [leads.c.org_id == org_id]
    clauses.extend(predicate_clause(p) for p in query.predicates)
    if query.search is not None:
        clauses.append(_search(query.search, org_id=org_id, dialect=dialect))
    return _all_of(clauses)


def only_click_presence(query: ListQuery) -> bool:
    """Whether every filter of the query is a click-ID `[exists]` (and there is one)."""
    return bool(query.predicates) and all(map(CLICK_PRESENCE.answers, query.predicates))


def click_masks(query: ListQuery, *, org_id: int | BindParameter[int]) -> sa.Select[Any]:
    """The click masks the organization's leads have (the click rollup's groups) that meet
    the query's click-ID `[exists]` filters: each an exact `click_mask =` to look up."""
    table = lead_counts_by_clicks
    conditions = CLICK_PRESENCE.conditions(table, list(query.predicates))
    return sa.select(table.c.mask).where(table.c.org_id == org_id, table.c.n > 0, *conditions)


def keyset_clause(query: ListQuery, after: Keyset) -> ColumnElement[bool]:
    """The leads that come after `after` in the query's order (nulls last, ties by id).

    When every key is one direction and never null, one row comparison
    `(k1, ..., id) > (v1, ..., id0)` that both databases answer from an index; otherwise
    the expansion "k1 after v1, or k1 = v1 and k2 after v2, ...".
    """
    keys: list[tuple[sa.Column[Any], bool, bool, Any]] = [
        (leads.c[sort_column(k.field)], k.descending, k.field.nullable, v)
        for k, v in zip(query.sort, after.values, strict=True)
    ]
    keys.append((leads.c.id, query.ties_descending, False, after.lead_id))
    directions = {descending for _, descending, _, _ in keys}
    if len(directions) == 1 and not any(nullable for _, _, nullable, _ in keys):
        row = sa.tuple_(*(column for column, _, _, _ in keys))
        values = sa.tuple_(*(sa.literal(v, column.type) for column, _, _, v in keys))
        return row < values if directions == {True} else row > values
    terms: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for column, descending, nullable, value in keys:
        if value is not None:  # after a null there is nothing but other nulls (ties)
            beyond = column < value if descending else column > value
            if nullable:
                beyond = sa.or_(beyond, column.is_(None))
            terms.append(sa.and_(*equal, beyond))
        equal.append(column.is_(None) if value is None else column == value)
    return sa.or_(*terms) if terms else sa.false()


def sort_values(query: ListQuery, row: Sequence[Any]) -> tuple[Any, ...]:
    """The values of `sort_columns(query)` in `row` (as selected), minus the id, in the order
    of the sort keys: a cursor's keyset values."""
    names = [c.name for c in sort_columns(query)]
    return tuple(row[names.index(sort_column(k.field))] for k in query.sort)


def order_by(query: ListQuery, source: sa.FromClause = leads) -> list[ColumnElement[object]]:
    """The query's order, over `leads` or over any `source` holding sort_columns(query)."""
    keys: list[ColumnElement[object]] = []
    for key in query.sort:
        column = source.c[sort_column(key.field)]
        ordered = column.desc() if key.descending else column.asc()
        keys.append(ordered.nulls_last() if key.field.nullable else ordered)
    keys.append(source.c.id.desc() if query.ties_descending else source.c.id.asc())
    return keys


def sort_columns(query: ListQuery) -> list[sa.Column[object]]:
    """The `leads` columns order_by(query) reads, id first, each once."""
    names = dict.fromkeys(["id", *(sort_column(key.field) for key in query.sort)])
    return [leads.c[name] for name in names]


def columns_for(fields: Sequence[Field]) -> list[sa.Column[object]]:
    return [leads.c[f.column] for f in fields]


def whole_leads(fields: Sequence[Field]) -> bool:
    """Whether `fields` is the whole lead object, which is read as stored (lead_columns)."""
    return tuple(fields) == LEAD_FIELDS


def lead_columns(fields: Sequence[Field]) -> list[sa.Column[object]]:
    """What a page of leads reads: the stored object when it shows every field (one text
    to pass on, nothing to convert or encode again) and the lead's id (to render an object
    that is missing, lead_objects.completed), else every field's column, whatever the
    selection (`selected_values` keeps the selection's).

    A selection's own columns made a statement of its own for every selection and order
    of fields, each compiled anew: at a million leads, fresh Q7 (1-8 fields in any order)
    spent 38 % of its server's CPU compiling SQL."""
    if whole_leads(fields):
        return [leads.c[LEAD_JSON_COLUMN], leads.c.id]
    return list(_EVERY_COLUMN)


_EVERY_COLUMN = tuple(columns_for(LEAD_FIELDS))
_POSITION = {f: i for i, f in enumerate(LEAD_FIELDS)}
_STORED_AND_ID = itemgetter(slice(0, 2))


def selected_values(fields: tuple[Field, ...]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """From a row as lead_columns(fields) reads it (and whatever follows), what is kept of
    it: the stored object and id of a whole lead, else the fields' own values in order."""
    return _STORED_AND_ID if whole_leads(fields) else field_values(fields)


@lru_cache(maxsize=1024)  # bounded: clients choose selections, in any order
def field_values(fields: tuple[Field, ...]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """From a row of every field's column (columns_for(LEAD_FIELDS), and whatever follows),
    the `fields`' values in order."""
    pick = itemgetter(*(_POSITION[f] for f in fields))
    if len(fields) == 1:
        return lambda row: (pick(row),)
    return pick


def predicate_clause(p: Predicate) -> ColumnElement[bool]:
    """One predicate of a query as a condition on `leads` (its values are values, or
    parameters in a predicate bound_predicate made)."""
    column = leads.c[p.field.column]
    if isinstance(p, TextIn):
        return column == p.values[0] if len(p.values) == 1 else column.in_(p.values)
    if CLICK_PRESENCE.answers(p):  # the same test on the mask, which the created index holds
        return CLICK_PRESENCE.test(leads.c[CLICK_MASK_COLUMN], p)
    if isinstance(p, Exists):
        return column.is_not(None) if p.present else column.is_(None)
    if isinstance(p, IntRanges):
        if not p.ranges:
            return sa.false()
        return _any_of([_range(leads.c[p.field.column], lo, hi) for lo, hi in p.ranges])
    raise TypeError(p)


# --- statements built once per shape -------------------------------------------------------
# A statement whose structure depends only on a query's shape (its fields, operators, the
# number of values, which bounds are open) is built once per shape, with a named parameter
# for each value, and run with each request's values (reads._page_and_values): building it
# and its cache key per request cost 330-710 us of a fresh filtered page's server CPU.


class Binder:
    """Names each value a shape's statement takes, in the order asked: `_v0`, `_v1`, ... The
    names stand in a shape where its values would be, so the shapes of two queries that
    differ only in their values are equal; `values` is what to run the statement with."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def name(self, value: Any) -> str | None:
        """A parameter's name for `value`; None for None (an open bound)."""
        if value is None:
            return None
        name = f"_v{len(self.values)}"
        self.values[name] = value
        return name


# The upper bound of a range of one value, in a bound predicate: its test is `column = lo`,
# as predicate_clause makes it for a range [v, v + 1) of values.
POINT: BindParameter[int] = sa.bindparam("_point")  # a marker, compared by identity


def predicate_shape(p: Predicate, bind: Binder) -> Hashable:
    """The predicate apart from its values, which `bind` names (bound_predicate undoes it)."""
    if isinstance(p, TextIn):
        return (TextIn, p.field.name, tuple(bind.name(v) for v in p.values))
    if isinstance(p, IntRanges):
        bounds = []
        for lo, hi in p.ranges:
            point = lo is not None and hi is not None and hi == lo + 1
            bounds.append((bind.name(lo), None if point else bind.name(hi), point))
        return (IntRanges, p.field.name, tuple(bounds))
    return p  # an [exists] has no value


def bound_predicate(shape: Hashable) -> Predicate:
    """The predicate of a predicate_shape, with a parameter of its column's type for each
    value (what predicate_clause and the rollups' conditions take like values)."""
    if isinstance(shape, Exists):
        return shape
    assert isinstance(shape, tuple)
    kind, name, bounds = shape
    field = FIELDS_BY_NAME[name]
    if kind is TextIn:
        # Plain text, not the leads column's type: on PostgreSQL that carries COLLATE "C",
        # which the count tables' conditions (rollups.Equal, Category) would take on too,
        # and their indexes, of the default collation, could then not answer them.
        text: Any = tuple(sa.bindparam(n, type_=sa.Text()) for n in bounds)
        return TextIn(field, text)
    column_type = leads.c[field.column].type

    def param(name: str | None) -> Any:
        return None if name is None else sa.bindparam(name, type_=column_type)

    ranges: Any = tuple((param(lo), POINT if point else param(hi)) for lo, hi, point in bounds)
    return IntRanges(field, ranges)


# --- long AND / OR lists ------------------------------------------------------------------
# SQLite parses `a OR b OR c ...` into a tree as deep as the list and refuses one deeper than
# 1,000 ("Expression tree is too large"), which `value=1,2,...` or a repeated operator filter
# can reach. Long lists are therefore split into halves in parentheses, depth log2(n).
# SQLAlchemy flattens nested and_/or_ (and plain groupings of them), hence the small
# construct below that always keeps its parentheses.

_FLAT_TERMS = 32


class _Parenthesised(ColumnElement[bool]):
    inherit_cache = True
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]
    type = sa.Boolean()

    def __init__(self, inner: ColumnElement[bool]) -> None:
        self.inner = inner

    def self_group(self, against: Any = None) -> ColumnElement[bool]:
        return self


@compiles(_Parenthesised)
def _compile_parenthesised(element: _Parenthesised, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.inner, **kw)})"


def _joined(
    join: Callable[..., ColumnElement[bool]], terms: Sequence[ColumnElement[bool]]
) -> ColumnElement[bool]:
    if len(terms) <= _FLAT_TERMS:
        return join(*terms)
    half = len(terms) // 2
    return join(
        _Parenthesised(_joined(join, terms[:half])), _Parenthesised(_joined(join, terms[half:]))
    )


def _all_of(terms: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return _joined(sa.and_, terms)


def _any_of(terms: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return _joined(sa.or_, terms)


Bound = int | BindParameter[int] | None


def _range(column: sa.Column[int], lo: Bound, hi: Bound) -> ColumnElement[bool]:
    """[lo, hi) of `column`, each bound a value, a parameter or None (open); a range of
    one value is `column = lo` (a bound predicate's says so with POINT: its bounds, as
    parameters, would compare as SQL)."""
    if hi is POINT:
        return column == lo
    if lo is not None and hi is not None:
        if isinstance(lo, int) and isinstance(hi, int) and hi == lo + 1:
            return column == lo
        return sa.and_(column >= lo, column < hi)
    if lo is not None:
        return column >= lo
    if hi is not None:
        return column < hi
    return column.is_not(None)


def _search(
    search: Search, *, org_id: int | BindParameter[int], dialect: str
) -> ColumnElement[bool]:
    """The leads whose folded columns contain the term: those `search_rows` finds (below), or
    on SQLite, for a term too short for a trigram, those the exact match finds in `leads`
    among the entries of the (org_id, search_text) index that contain it (search_hint)."""
    matched = search_matches(search, org_id=org_id, dialect=dialect)
    if matched is not None:
        return (_ROWID if dialect == "sqlite" else leads.c.id).in_(matched)
    text = leads.c[SEARCH_TEXT_COLUMN]
    return sa.and_(
        sa.or_(*(text.contains(term, autoescape=True) for term in _terms(search))),
        _exact(search, leads),
    )


def _exact(search: Search, source: sa.TableClause) -> ColumnElement[bool]:
    # Both sides are str.casefold()ed in Python, so a plain case-sensitive containment test
    # is a case-insensitive search; SQLite's ASCII-only LIKE folding cannot change it because
    # folded ASCII is already lower case. `autoescape` makes % _ and / literal.
    matches = [
        source.c[column].contains(search.folded, autoescape=True)
        for column in FOLDED_COLUMNS.values()
    ]
    if search.digits is not None:
        matches.append(source.c[PHONE_DIGITS_COLUMN].contains(search.digits, autoescape=True))
    return sa.or_(*matches)


# The narrow rows a search decides on (migration 0014, schema.SEARCH_ROWS): on SQLite keyed
# by the lead row's rowid (`lead_row`, what the FTS5 index gives), on PostgreSQL by the lead's
# id, with `search_text` under the trigram index.
_SEARCH_ROWS_COLUMNS = ("org_id", "id", "created_at", *FOLDED_COLUMNS.values(),
                        PHONE_DIGITS_COLUMN)
SEARCH_ROWS_TABLES: dict[str, sa.TableClause] = {
    "sqlite": sa.table(SEARCH_ROWS, sa.column("lead_row"),
                       *map(sa.column, _SEARCH_ROWS_COLUMNS)),
    "postgresql": sa.table(SEARCH_ROWS, *map(sa.column, _SEARCH_ROWS_COLUMNS),
                           sa.column(SEARCH_TEXT_COLUMN)),
}
_SEARCH_ROWS_KEYS = {"sqlite": "lead_row", "postgresql": "id"}


def search_matches(
    search: Search, *, org_id: int | BindParameter[int], dialect: str,
    columns: Sequence[str] = (),
) -> sa.Select[Any] | None:
    """The organization's matches of `search` as rows of `search_rows`: its key (the lead
    row's on SQLite, the id on PostgreSQL), then `columns`; None on SQLite for a term too
    short for a trigram (its leads are found by scanning an index of `leads`).

    The trigram index narrows to a superset of the matches, and the exact containment test
    on the folded columns decides; both read only these narrow rows. Measured at a million
    leads, 150 benchmark terms in a row: PostgreSQL 11.4 s on the lead rows, 2.2 s here."""
    rows = SEARCH_ROWS_TABLES[dialect]
    prefilter = _search_prefilter(search, rows, dialect=dialect)
    if dialect == "sqlite" and prefilter is None:
        return None
    selected = [rows.c[c] for c in dict.fromkeys([_SEARCH_ROWS_KEYS[dialect], *columns])]
    decides = dialect == "postgresql" and text_decides(search)
    conditions = [rows.c.org_id == org_id,
                  _text_contains(search, rows) if decides else _exact(search, rows)]
    if prefilter is not None:
        conditions.insert(1, prefilter)
    return sa.select(*selected).select_from(rows).where(*conditions)


def search_rows_answer(query: ListQuery) -> list[str] | None:
    """The columns of `search_rows` a searched page sorts on, when those rows alone answer it
    (no filter but the search, an order of columns they hold); else None, and the matches
    are read from `leads` (a filter or a sort key is there)."""
    if query.search is None or query.predicates:
        return None
    names = [c.name for c in sort_columns(query)]
    return names if set(names) <= set(_SEARCH_ROWS_COLUMNS) else None


def _search_prefilter(
    search: Search, rows: sa.TableClause, *, dialect: str
) -> ColumnElement[bool] | None:
    """A condition that every match also meets (a superset of the matches), or None.

    `search_text` holds every folded column and the phone digits, so any lead the exact
    match accepts contains the term (or its digits) there. A term of three characters or
    more is looked up by its trigrams: on PostgreSQL through pg_trgm's GIN index over
    `search_rows`, on SQLite in the FTS5 trigram index `leads_search` (migration 0010), whose
    rowids are `search_rows`' keys. Shorter terms have no trigram: PostgreSQL then tests
    every row of the organization in `search_rows`, SQLite scans the organization's entries
    of the (org_id, search_text) index of `leads` (see search_hint).
    """
    terms = _terms(search)
    if dialect == "sqlite":
        expression = fts_expression(terms)
        if expression is None:
            return None
        return rows.c.lead_row.in_(
            sa.select(_SEARCH_INDEX.c.rowid).where(_SEARCH_INDEX_NAME.match(expression))
        )
    if any(len(term) < TRIGRAM for term in terms):
        return None
    column = rows.c[SEARCH_TEXT_COLUMN]
    return sa.or_(*(column.like(trigram_pattern(term), escape="/") for term in terms))


def text_decides(search: Search) -> bool:
    """Whether `search_text` containing the term is the exact match itself (PostgreSQL's
    search rows hold it), so the folded columns need not be tested one by one.

    `search_text` is the lead's non-empty folded name, email and phone and its phone digits,
    joined by newlines (lead.derived_columns). A term without a newline is inside it exactly
    when it is inside one of those parts; inside the digits only if it is all digits, and
    then, with three digits or more, it is its own digits, which the exact match looks for
    there too. The others are tested column by column: a term whose digits are not the term
    itself (`room 101`: its digits could be in the name), and one or two digits alone (the
    exact match does not look for them among the phone's digits).

    >>> [text_decides(Search(t, d)) for t, d in [("smith", None), ("5551", "5551"),
    ...      ("a5551", "5551"), ("12", None), ("a1", None), ("a\\nb", None)]]
    [True, True, False, False, True, False]
    """
    if "\n" in search.folded:
        return False
    if search.digits is None:
        return not _ASCII_DIGITS.fullmatch(search.folded)
    return search.digits == search.folded


_ASCII_DIGITS = re.compile(r"[0-9]+")


def _text_contains(search: Search, rows: sa.TableClause) -> ColumnElement[bool]:
    # strpos, not LIKE: no pattern to escape and match, and pg_trgm does not take it for an
    # index condition (the index is asked through trigram_pattern alone).
    return sa.func.strpos(rows.c[SEARCH_TEXT_COLUMN], search.folded) > 0


# ASCII characters other than digits and (folded, so lower-case) letters: pg_trgm takes
# trigrams from words of letters and digits only, and pads each word's ends.
_NOT_IN_WORDS = re.compile(r"[\x00-\x2f\x3a-\x60\x7b-\x7f]+")


def trigram_pattern(term: str) -> str:
    """A LIKE pattern (escaped with `/`) that every text containing `term` matches: the
    term's words in order with anything between them, so that pg_trgm looks up only the
    trigrams inside its words, not those of their padded ends (`john.smith`: not ` sm` and
    `  s`, which every word beginning with s has).

    >>> trigram_pattern("john.smith@gmail"), trigram_pattern("davis"), trigram_pattern("a.b-c")
    ('%john%smith%gmail%', '%davis%', '%a.b-c%')
    >>> trigram_pattern("50%_off/x"), trigram_pattern("o'neil")
    ('%50%off%x%', '%o%neil%')

    A term with no word of three characters keeps its own pattern: with only short words,
    pg_trgm would have no trigram to look up. Measured at a million leads, the benchmark's
    fresh search terms on one connection, three rounds alternated: e-mail handles 1.49-1.68
    -> 1.07-1.22 s, all terms 5.1-6.0 -> 4.6-5.3 s (with text_decides' test)."""
    words = [word for word in _NOT_IN_WORDS.split(term) if word]
    if not any(len(word) >= TRIGRAM for word in words):
        words = [term]
    return "%" + "%".join(_like_escaped(word) for word in words) + "%"


def _like_escaped(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _terms(search: Search) -> list[str]:
    return [search.folded] if search.digits is None else [search.folded, search.digits]


# SQLite's FTS5 trigram index over `search_text` (an external-content table whose rowids are
# the rows' of `leads`; kept by triggers, migration 0010).
_SEARCH_INDEX = sa.table(SQLITE_SEARCH_INDEX, sa.column("rowid"))
_SEARCH_INDEX_NAME: ColumnElement[str] = sa.literal_column(SQLITE_SEARCH_INDEX)
_ROWID: ColumnElement[int] = sa.literal_column(f"{leads.name}.rowid")


def fts_expression(terms: Sequence[str]) -> str | None:
    """An FTS5 query for the rows whose text contains the trigrams that cover each of
    `terms` (covering_trigrams), for any of them, or None when one of them has no trigram
    to look up (shorter than three characters).

    >>> fts_expression(["smith"])
    '"smi" "ith"'
    >>> fts_expression(["a 123", "123"])
    '("a 1" "123") OR ("123")'
    >>> fts_expression(['x"y']), fts_expression(["5%_"]), fts_expression(["ab"])
    ('"x""y"', '"5%_"', None)

    Each trigram is an FTS5 string (double quotes doubled), so nothing in a term is FTS5
    syntax (a NUL, which would end one, never gets here: the parser refuses it).
    """
    groups: list[str] = []
    for term in dict.fromkeys(terms):
        if len(term) < TRIGRAM:
            return None
        trigrams = covering_trigrams(term)
        groups.append(" ".join('"' + t.replace('"', '""') + '"' for t in trigrams))
    if len(groups) == 1:
        return groups[0]
    return " OR ".join(f"({group})" for group in groups)


def covering_trigrams(term: str) -> list[str]:
    """Trigrams of `term` that together cover every character of it: one every three
    characters and the last. A text containing the term contains them all, so the index
    still narrows to a superset of the matches, which the exact test then decides; each
    trigram left out is a list of rows FTS5 need not read and intersect.

    >>> covering_trigrams("john.smith@gmail")
    ['joh', 'n.s', 'mit', 'h@g', 'mai', 'ail']
    >>> covering_trigrams("davis"), covering_trigrams("abc"), covering_trigrams("aaaa")
    (['dav', 'vis'], ['abc'], ['aaa'])

    Measured at a million leads, the benchmark's fresh search terms (three or more
    characters) counted on one connection, three rounds alternated, every trigram against
    these: e-mail handles 1.06-1.17 -> 0.53-0.74 s, all terms 5.2-6.4 -> 3.9-5.2 s, the same
    matches."""
    starts = [*range(0, len(term) - TRIGRAM + 1, TRIGRAM), len(term) - TRIGRAM]
    return list(dict.fromkeys(term[i : i + TRIGRAM] for i in starts))


def search_hint(search: Search) -> str:
    """How SQLite should read `leads` for this search: by the rowids the trigram index
    gives, or (a term too short for trigrams) by scanning the search index's entries."""
    if fts_expression(_terms(search)) is not None:
        return "NOT INDEXED"  # not an index walk in the requested order: the rowids
    return SEARCH_INDEX_HINT


# SQLite's planner, not knowing how rare a term is, would rather walk an index in the
# requested order and read every row; the search index's entries are far cheaper to scan.
SEARCH_INDEX_HINT = "INDEXED BY ix_leads_search"


SelectT = TypeVar("SelectT", bound=HasHints)


def with_search_hint(statement: SelectT, query: ListQuery) -> SelectT:
    """Point SQLite at the search index when the query searches (a no-op elsewhere)."""
    if query.search is None:
        return statement
    return statement.with_hint(leads, search_hint(query.search), dialect_name="sqlite")
