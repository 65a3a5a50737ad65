"""The list query parser against CONTRACT.md section 4, as tables of query string -> result.

Pure: `parse_list_query(split_query_string(qs))`, no database. Expected instants are computed
here with `datetime`, independently of the parser's own date code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leads_api.errors import ApiError, InvalidDate, InvalidFilter, ValidationError
from leads_api.fields import FIELD_NAMES, FIELDS_BY_NAME, LEAD_FIELDS, SORTABLE, SOURCES
from leads_api.query import (
    Exists,
    IntRanges,
    ListQuery,
    Predicate,
    Search,
    TextIn,
    parse_list_query,
    parse_one_lead_query,
    split_query_string,
)
from leads_api.query.model import DEFAULT_SORT, MAX_FILTER_VALUES, MAX_SEARCH_LENGTH

F = FIELDS_BY_NAME
DAY = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(iso: str) -> int:
    """Epoch milliseconds of an ISO 8601 instant (naive = UTC), by the standard library."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


MAR1 = ms("2026-03-01T00:00:00")
T10 = ms("2026-03-01T10:00:00")  # 2026-03-01T10:00:00Z


def parse(qs: str) -> ListQuery:
    """The parsed query, without the parameters it keeps as given for its next cursor
    (`shape`; tests/test_cursors.py covers those)."""
    return replace(parse_list_query(split_query_string(qs)), shape=())


def rejection(qs: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(qs)
    return caught.value


def predicates(qs: str) -> Counter[Predicate]:
    """The predicates as a multiset: they combine with AND, so their order means nothing."""
    return Counter(parse(qs).predicates)


def table(*rows: tuple[Any, ...]) -> list[Any]:
    """Parametrize rows, each with its query string as the test id."""
    return [pytest.param(*row, id=row[0] or "<empty>") for row in rows]


# --- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "pairs"),
    table(
        ("", []),
        ("a=1&b=2", [("a", "1"), ("b", "2")]),
        ("status=&limit=", [("status", ""), ("limit", "")]),
        ("flag", [("flag", "")]),
        ("a=x+y", [("a", "x y")]),  # '+' is a space ...
        ("a=x%2By", [("a", "x+y")]),  # ... an encoded '+' is a plus
        ("value%5Bgte%5D=5", [("value[gte]", "5")]),
        ("search=Stra%C3%9Fe", [("search", "Straße")]),
        ("search=%FF", [("search", "\ufffd")]),  # not UTF-8: replaced, not an error
        ("a=1&&b=2", [("a", "1"), ("b", "2")]),
    ),
)
def test_split_query_string(qs: str, pairs: list[tuple[str, str]]) -> None:
    assert split_query_string(qs) == pairs


def test_no_parameters_is_the_default_query() -> None:
    query = parse("")
    assert query == ListQuery()
    assert (query.limit, query.page, query.offset, query.search, query.fields) == (
        50, 1, 0, None, None
    )
    assert [(k.field.name, k.descending) for k in query.sort] == [("createdAt", True)]


# --- pagination ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "limit", "page"),
    table(
        ("limit=1", 1, 1),
        ("limit=100", 100, 1),
        ("limit=50&page=3", 50, 3),
        ("limit=%207%20", 7, 1),  # trimmed
        ("limit=007", 7, 1),
        ("page=0000000000000000000000002", 50, 2),
        ("page=999999999999999999", 50, 999_999_999_999_999_999),
        ("limit=&page=", 50, 1),  # empty = absent
        ("limit=&limit=5", 5, 1),  # empty occurrences are dropped before counting repeats
        ("page=&page=4&page=", 50, 4),
    ),
)
def test_pagination(qs: str, limit: int, page: int) -> None:
    query = parse(qs)
    assert (query.limit, query.page) == (limit, page)
    assert query.offset == (page - 1) * limit


@pytest.mark.parametrize(
    ("qs", "parameter"),
    table(
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=abc", "limit"),
        ("limit=%EF%BC%95", "limit"),  # U+FF15, a fullwidth digit five
        ("limit=%D9%A5", "limit"),  # U+0665, an Arabic-Indic digit five
        ("limit=1e2", "limit"),
        ("limit=0x10", "limit"),
        ("limit=%2B5", "limit"),  # '+5'
        ("limit=5,6", "limit"),
        ("limit=" + "9" * 30, "limit"),
        ("limit=" + "1" * 5000, "limit"),
        ("page=0", "page"),
        ("page=000", "page"),
        ("page=-1", "page"),
        ("page=1.5", "page"),
        ("page=abc", "page"),
        ("page=%EF%BC%95", "page"),
        ("page=1000000000000000000", "page"),
        ("page=" + "1" * 5000, "page"),
    ),
)
def test_bad_pagination_is_a_validation_error(qs: str, parameter: str) -> None:
    error = rejection(qs)
    assert isinstance(error, ValidationError)
    assert error.details == {"parameter": parameter}
    assert parameter in error.message


# --- empty and repeated parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    "qs",
    [
        "status=&limit=",
        "value=,",
        "value=%20,%20,",
        "value[gte]=,",
        "status=,,",
        "createdAt[gte]=",
        "gclid[exists]=",
        "updated_after=",
        "search=%20%20",
        "sort=",
        "fields=",
        "page=%20",
        "website=&utm_source=&labelId=",
    ],
)
def test_empty_parameters_count_as_absent(qs: str) -> None:
    assert parse(qs) == ListQuery()


@pytest.mark.parametrize(
    ("qs", "parameter"),
    table(
        ("limit=5&limit=5", "limit"),
        ("page=1&page=2", "page"),
        ("sort=value&sort=value", "sort"),
        ("search=a&search=b", "search"),
        ("fields=name&fields=name", "fields"),
        ("limit=5&limit=&limit=6", "limit"),
    ),
)
def test_repeated_single_parameters_are_a_validation_error(qs: str, parameter: str) -> None:
    error = rejection(qs)
    assert isinstance(error, ValidationError)
    assert error.details == {"parameter": parameter}
    assert parameter in error.message


# --- filters -------------------------------------------------------------------------------


def text(name: str, *values: str) -> TextIn:
    return TextIn(F[name], values)


def ranges(name: str, *spans: tuple[int | None, int | None]) -> IntRanges:
    return IntRanges(F[name], spans)


def cents(amount: int) -> tuple[int, int]:
    """The range of a value equal to `amount` cents."""
    return (amount, amount + 1)


@pytest.mark.parametrize(
    ("qs", "expected"),
    table(
        # choices, comma lists, repeats (OR), trimming, empty items, duplicates
        ("status=won", [text("status", "won")]),
        ("status=won,lost", [text("status", "won", "lost")]),
        ("status=won&status=lost", [text("status", "won", "lost")]),
        ("status=%20won%20,,lost,won,", [text("status", "won", "lost")]),
        ("source=gtm,import", [text("source", "gtm", "import")]),
        (
            "status=won&source=api",
            [text("status", "won"), text("source", "api")],
        ),
        # text equality keeps the value exactly (case included)
        ("utm_source=Google", [text("utm_source", "Google")]),
        ("utm_source=Google,google", [text("utm_source", "Google", "google")]),
        ("website=https://a.io/x?y", [text("website", "https://a.io/x?y")]),
        ("labelId=L1&gclid=G1", [text("labelId", "L1"), text("gclid", "G1")]),
        ("li_fat_id=x&rdt_cid=y", [text("li_fat_id", "x"), text("rdt_cid", "y")]),
        ("utm_medium=cpc&utm_campaign=Spring%20Sale", [
            text("utm_medium", "cpc"), text("utm_campaign", "Spring Sale"),
        ]),
        ("ga4cid=1&ga4sid=2&fbc=3&fbp=4&msclkid=5&ttclid=6&twclid=7&sccid=8", [
            text(name, str(i + 1)) for i, name in enumerate(
                ["ga4cid", "ga4sid", "fbc", "fbp", "msclkid", "ttclid", "twclid", "sccid"]
            )
        ]),
        # value: numeric equality in cents, comparisons exact to the cent
        ("value=5000", [ranges("value", cents(500_000))]),
        ("value=5000.00", [ranges("value", cents(500_000))]),
        ("value=99.5", [ranges("value", cents(9_950))]),
        ("value=0", [ranges("value", cents(0))]),
        ("value=-0", [ranges("value", cents(0))]),
        ("value=12.25,5000", [ranges("value", cents(1_225), cents(500_000))]),
        ("value=12.25&value=5000", [ranges("value", cents(1_225), cents(500_000))]),
        ("value=99.999", [ranges("value")]),  # no whole cent equals it: matches nothing
        ("value=007.10", [ranges("value", cents(710))]),
        ("value[gte]=100.5", [ranges("value", (10_050, None))]),
        ("value[gt]=100.5", [ranges("value", (10_051, None))]),
        ("value[lte]=100.5", [ranges("value", (None, 10_051))]),
        ("value[lt]=100.5", [ranges("value", (None, 10_050))]),
        ("value[gt]=99.999", [ranges("value", (10_000, None))]),
        ("value[gte]=99.991", [ranges("value", (10_000, None))]),
        ("value[lte]=99.999", [ranges("value", (None, 10_000))]),
        ("value[lt]=-0.5", [ranges("value", (None, -50))]),
        # repeated operator filters each apply (AND)
        ("value[gte]=10&value[gte]=20", [
            ranges("value", (1_000, None)), ranges("value", (2_000, None)),
        ]),
        ("value[gte]=10&value[lte]=20", [
            ranges("value", (1_000, None)), ranges("value", (None, 2_001)),
        ]),
        ("value=5&value[gt]=1", [ranges("value", cents(500)), ranges("value", (101, None))]),
        # exists, any case
        ("value[exists]=true", [Exists(F["value"], True)]),
        ("value[exists]=FALSE", [Exists(F["value"], False)]),
        ("gclid[exists]=True", [Exists(F["gclid"], True)]),
        ("website[exists]=fAlSe", [Exists(F["website"], False)]),
        ("labelId[exists]=%20true%20", [Exists(F["labelId"], True)]),
        ("qualifiedAt[exists]=true&utm_source[exists]=false", [
            Exists(F["qualifiedAt"], True), Exists(F["utm_source"], False),
        ]),
        # legacy
        ("updated_after=2026-03-01", [ranges("updatedAt", (MAR1, None))]),
        ("updated_after=2026-03-01T10:00Z", [ranges("updatedAt", (T10, None))]),
        ("updated_after=2026-03-01&updatedAt[lt]=2026-03-02", [
            ranges("updatedAt", (MAR1, None)), ranges("updatedAt", (None, MAR1 + DAY)),
        ]),
        # values too large for the store's integers
        ("value=" + "1" * 5000, [ranges("value")]),
        ("value[lte]=" + "9" * 5000, [ranges("value", (None, None))]),
        ("value[gte]=-" + "9" * 5000, [ranges("value", (None, None))]),
        ("value[gt]=" + "9" * 5000, [ranges("value")]),
        ("value[gte]=0." + "0" * 5000 + "1", [ranges("value", (1, None))]),
        ("value[lte]=1." + "0" * 5000, [ranges("value", (None, 101))]),
    ),
)
def test_filters(qs: str, expected: list[Predicate]) -> None:
    assert predicates(qs) == Counter(expected)


# --- dates ---------------------------------------------------------------------------------


def day(name: str, op: str, iso_day: str) -> IntRanges:
    """What the contract says a date without a time means for each operator."""
    start = ms(iso_day + "T00:00:00")
    end = start + DAY
    span = {
        "eq": (start, end),  # within D
        "gte": (start, None),  # from the start of D
        "gt": (end, None),  # after the end of D
        "lte": (None, end),  # through the end of D
        "lt": (None, start),  # before the start of D
    }[op]
    return ranges(name, span)


def instant(name: str, op: str, at: int) -> IntRanges:
    """The whole milliseconds `n` with `n <op> at`, for an instant on a whole millisecond."""
    span = {
        "eq": (at, at + 1),
        "gte": (at, None),
        "gt": (at + 1, None),
        "lte": (None, at + 1),
        "lt": (None, at),
    }[op]
    return ranges(name, span)


OPERATORS = ("eq", "gte", "gt", "lte", "lt")
DATE_FIELDS = ("createdAt", "updatedAt", "qualifiedAt", "expiresAt")


def parameter(name: str, op: str) -> str:
    return name if op == "eq" else f"{name}[{op}]"


@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("name", DATE_FIELDS)
@pytest.mark.parametrize("iso_day", ["2026-03-01", "2024-02-29", "1969-12-31", "9999-12-31"])
def test_a_date_without_time_means_the_whole_utc_day(name: str, op: str, iso_day: str) -> None:
    assert predicates(f"{parameter(name, op)}={iso_day}") == Counter([day(name, op, iso_day)])


def test_a_date_range_includes_all_of_its_last_day() -> None:
    query = "createdAt[gte]=2026-01-01&createdAt[lte]=2026-03-01"
    assert predicates(query) == Counter([
        ranges("createdAt", (ms("2026-01-01T00:00:00"), None)),
        ranges("createdAt", (None, ms("2026-03-02T00:00:00"))),  # through 23:59:59.999
    ])


@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize(
    ("value", "iso"),
    table(
        ("2026-03-01T10:00", "2026-03-01T10:00:00"),  # no zone = UTC
        ("2026-03-01T10:00Z", "2026-03-01T10:00:00"),
        ("2026-03-01T10:00:30Z", "2026-03-01T10:00:30"),
        ("2026-03-01T10:00:30.5Z", "2026-03-01T10:00:30.500"),
        ("2026-03-01T10:00:30.123Z", "2026-03-01T10:00:30.123"),
        ("2026-03-01T10:00:30.123000000Z", "2026-03-01T10:00:30.123"),
        ("2026-03-01T10:00:30.123", "2026-03-01T10:00:30.123"),
        ("2026-03-01T12:00%2B02:00", "2026-03-01T10:00:00"),
        ("2026-03-01T12:00+02:00", "2026-03-01T10:00:00"),  # '+' decoded to a space
        ("2026-03-01T12:00%2002:00", "2026-03-01T10:00:00"),
        ("2026-03-01T07:30-02:30", "2026-03-01T10:00:00"),
        ("2026-03-01T10:00:00.000%2B00:00", "2026-03-01T10:00:00"),
        ("2026-03-01T10:00-00:00", "2026-03-01T10:00:00"),
        ("2026-03-02T09:59%2B23:59", "2026-03-01T10:00:00"),
        ("2026-03-01T00:00:00.000-23:59", "2026-03-01T23:59:00"),
        ("1970-01-01T00:00Z", "1970-01-01T00:00:00"),
        ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999"),
    ),
)
def test_a_date_with_a_time_is_that_instant(op: str, value: str, iso: str) -> None:
    query = f"{parameter('createdAt', op)}={value}"
    assert predicates(query) == Counter([instant("createdAt", op, ms(iso))])


@pytest.mark.parametrize(
    ("qs", "expected"),
    table(
        # instants between two milliseconds
        ("createdAt[gte]=2026-03-01T10:00:00.0004Z", [ranges("createdAt", (T10 + 1, None))]),
        ("createdAt[gt]=2026-03-01T10:00:00.0004Z", [ranges("createdAt", (T10 + 1, None))]),
        ("createdAt[lte]=2026-03-01T10:00:00.0004Z", [ranges("createdAt", (None, T10 + 1))]),
        ("createdAt[lt]=2026-03-01T10:00:00.0004Z", [ranges("createdAt", (None, T10 + 1))]),
        ("createdAt=2026-03-01T10:00:00.0004Z", [ranges("createdAt")]),  # no ms equals it
        (
            "createdAt[gte]=2026-03-01T10:00:00." + "0" * 5000 + "1Z",
            [ranges("createdAt", (T10 + 1, None))],
        ),
        (
            "createdAt[lte]=2026-03-01T10:00:00." + "9" * 5000 + "Z",
            [ranges("createdAt", (None, T10 + 1000))],
        ),
        # a comma list of dates: any of the days
        ("createdAt=2026-03-01,2026-03-03", [
            ranges("createdAt", (MAR1, MAR1 + DAY), (MAR1 + 2 * DAY, MAR1 + 3 * DAY)),
        ]),
        ("createdAt=2026-03-01&createdAt=2026-03-01T10:00Z", [
            ranges("createdAt", (MAR1, MAR1 + DAY), (T10, T10 + 1)),
        ]),
    ),
)
def test_date_filters_between_and_around_instants(qs: str, expected: list[Predicate]) -> None:
    assert predicates(qs) == Counter(expected)


@pytest.mark.parametrize(
    ("qs", "parameter"),
    table(
        ("createdAt=2026-02-30", "createdAt"),
        ("createdAt=2026-02-29", "createdAt"),  # 2026 is not a leap year
        ("createdAt=2026-13-01", "createdAt"),
        ("createdAt=2026-00-10", "createdAt"),
        ("createdAt=2026-01-32", "createdAt"),
        ("createdAt=0000-01-01", "createdAt"),
        ("createdAt=2026-1-1", "createdAt"),
        ("createdAt=26-01-01", "createdAt"),
        ("createdAt=20260101", "createdAt"),
        ("createdAt=garbage", "createdAt"),
        ("createdAt=today", "createdAt"),
        ("createdAt=%EF%BC%92026-01-01", "createdAt"),  # fullwidth digit
        ("createdAt[gte]=2026-01-01T25:00", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T24:00", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:60", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00:60", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00:00.Z", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00.5Z", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00%2B2:00", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00%2B0200", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00%2B24:00", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00%2B02:60", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00ZZ", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01T10:00Z%2B02:00", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01t10:00z", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01%2010:00", "createdAt[gte]"),
        ("createdAt[gte]=2026-01-01Z", "createdAt[gte]"),
        ("createdAt[lt]=2026-02-30T10:00Z", "createdAt[lt]"),
        ("updatedAt[lte]=2026-13-01", "updatedAt[lte]"),
        ("qualifiedAt[gt]=nope", "qualifiedAt[gt]"),
        ("expiresAt=2026-01-01,2026-02-30", "expiresAt"),
        ("updated_after=2026-02-30", "updated_after"),
        ("updated_after=yesterday", "updated_after"),
    ),
)
def test_invalid_dates(qs: str, parameter: str) -> None:
    error = rejection(qs)
    assert isinstance(error, InvalidDate)
    assert error.details == {"parameter": parameter}
    assert parameter in error.message


# --- rejected filters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "parameter"),
    table(
        # unknown parameters, even when empty
        ("foo=1", "foo"),
        ("foo=", "foo"),
        ("api_key=secret", "api_key"),
        ("Status=won", "Status"),
        ("status%20=won", "status "),
        ("name=Bob", "name"),
        ("email=a@b.c", "email"),
        ("phone=1", "phone"),
        ("note=x", "note"),
        ("id=lead_x", "id"),
        ("offset=10", "offset"),
        ("updated_after[gte]=2026-01-01", "updated_after[gte]"),
        ("created_at=2026-01-01", "created_at"),
        # operators a field does not take
        ("status[gte]=won", "status[gte]"),
        ("status[exists]=true", "status[exists]"),
        ("source[lt]=api", "source[lt]"),
        ("source[exists]=true", "source[exists]"),
        ("website[gte]=a", "website[gte]"),
        ("gclid[lt]=x", "gclid[lt]"),
        ("labelId[gt]=x", "labelId[gt]"),
        ("value[eq]=5", "value[eq]"),
        ("status[eq]=won", "status[eq]"),
        ("createdAt[like]=x", "createdAt[like]"),
        ("value[GTE]=5", "value[GTE]"),
        ("value[]=5", "value[]"),
        ("value[ne]=", "value[ne]"),
        # malformed brackets
        ("value[gte=5", "value[gte"),
        ("value]gte[=5", "value]gte["),
        ("value[gte]]=5", "value[gte]]"),
        ("[gte]=5", "[gte]"),
        ("value[gte][lt]=5", "value[gte][lt]"),
        ("value[[gte]]=5", "value[[gte]]"),
        ("value[gte]x=5", "value[gte]x"),
        # values checked against the field
        ("source=foo", "source"),
        ("status=won,maybe", "status"),
        ("status=Won", "status"),
        ("status=won&status=WON", "status"),
        ("value=abc", "value"),
        ("value[gte]=abc", "value[gte]"),
        ("value=1e5", "value"),
        ("value=1,x", "value"),
        ("value=%2B5", "value"),
        ("value=.5", "value"),
        ("value=5.", "value"),
        ("value=--1", "value"),
        ("value=0x10", "value"),
        ("value=1_000", "value"),
        ("value=NaN", "value"),
        ("value=%EF%BC%95", "value"),
        ("value[lt]=1%202", "value[lt]"),
        ("gclid[exists]=maybe", "gclid[exists]"),
        ("gclid[exists]=yes", "gclid[exists]"),
        ("gclid[exists]=1", "gclid[exists]"),
        ("value[exists]=fal%C5%BFe", "value[exists]"),  # long s: casefolds to 'false'
        # operator filters take one value
        ("value[gte]=1,2", "value[gte]"),
        ("createdAt[lt]=2026-01-01,2026-02-01", "createdAt[lt]"),
        ("gclid[exists]=true,false", "gclid[exists]"),
        ("value[gte]=5&value[gte]=x", "value[gte]"),
        # NUL in a filter or a parameter's name (in limit, search... see test_nul_in_shaping)
        ("status=won%00", "status"),
        ("utm_source=a%00b", "utm_source"),
        ("%00=1", "\\0"),
        ("st%00atus=won", "st\\0atus"),
    ),
)
def test_invalid_filters(qs: str, parameter: str) -> None:
    error = rejection(qs)
    assert isinstance(error, InvalidFilter)
    assert error.details == {"parameter": parameter}
    assert parameter in error.message


@pytest.mark.parametrize("parameter", ["search", "limit", "page", "sort", "fields"])
def test_nul_in_shaping_parameters_is_a_validation_error(parameter: str) -> None:
    error = rejection(f"{parameter}=5%00")
    assert isinstance(error, ValidationError)
    assert error.details == {"parameter": parameter}
    assert "NUL" in error.message


@pytest.mark.parametrize(
    ("qs", "allowed"),
    table(
        ("source=foo", SOURCES),
        ("status=maybe", ("open", "qualified", "won", "lost")),
        ("gclid[exists]=maybe", ("true", "false")),
    ),
)
def test_messages_list_a_small_set_of_allowed_values(qs: str, allowed: tuple[str, ...]) -> None:
    message = rejection(qs).message
    assert all(value in message for value in allowed), message


def test_an_unknown_parameter_message_lists_the_filterable_fields() -> None:
    message = rejection("colour=red").message
    assert "colour" in message
    assert all(name in message for name in ("status", "value", "createdAt", "gclid"))


def test_at_most_max_filter_values_per_request() -> None:
    at_limit = "value=" + ",".join(["1"] * (MAX_FILTER_VALUES - 1)) + "&status=won"
    assert len(parse(at_limit).predicates) == 2
    error = rejection(at_limit + "&gclid=a")
    assert isinstance(error, InvalidFilter)
    assert error.details == {"parameter": "gclid"}


# --- sort ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "keys"),
    table(
        ("", [("createdAt", True)]),
        ("sort=", [("createdAt", True)]),
        ("sort=,", [("createdAt", True)]),
        ("sort=value", [("value", False)]),
        ("sort=value:asc", [("value", False)]),
        ("sort=value:desc", [("value", True)]),
        ("sort=value:DESC", [("value", True)]),
        ("sort=value:Asc", [("value", False)]),
        ("sort=value:", [("value", False)]),
        ("sort=%20name%20:%20desc%20,%20email", [("name", True), ("email", False)]),
        ("sort=status,value:desc,createdAt", [
            ("status", False), ("value", True), ("createdAt", False),
        ]),
        ("sort=created_at", [("createdAt", False)]),
        ("sort=updated_at:desc", [("updatedAt", True)]),
        ("sort=qualified_at:asc,expiresAt:desc", [("qualifiedAt", False), ("expiresAt", True)]),
        ("sort=value,", [("value", False)]),
        *[(f"sort={name}:desc", [(name, True)]) for name in SORTABLE],
    ),
)
def test_sort(qs: str, keys: list[tuple[str, bool]]) -> None:
    query = parse(qs)
    assert [(k.field.name, k.descending) for k in query.sort] == keys
    assert query.ties_descending is keys[-1][1]  # ties follow the last key's direction


def test_default_sort_is_created_at_descending() -> None:
    assert parse("").sort == DEFAULT_SORT
    assert [(k.field.name, k.descending) for k in DEFAULT_SORT] == [("createdAt", True)]


def test_every_sortable_field_of_the_contract_is_sortable() -> None:
    assert set(SORTABLE) == {
        "createdAt", "updatedAt", "qualifiedAt", "value", "name", "email", "status",
        "expiresAt",
    }


@pytest.mark.parametrize(
    "qs",
    [
        "sort=foo",
        "sort=phone",
        "sort=id",
        "sort=source",
        "sort=CreatedAt",
        "sort=value_cents",
        "sort=value:up",
        "sort=value:descending",
        "sort=value:desc:asc",
        "sort=value%20desc",
        "sort=value,value",
        "sort=value:asc,value:desc",
        "sort=created_at,createdAt",
        "sort=createdAt:desc,created_at:asc",
        "sort=updated_at,updatedAt",
        "sort=:desc",
        "sort=name,:asc",
    ],
)
def test_bad_sorts_are_a_validation_error(qs: str) -> None:
    error = rejection(qs)
    assert isinstance(error, ValidationError)
    assert error.details == {"parameter": "sort"}
    assert "sort" in error.message


# --- fields --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "names"),
    table(
        ("fields=name", ["id", "name"]),
        ("fields=email,name", ["id", "name", "email"]),
        ("fields=%20email%20,%20name", ["id", "name", "email"]),
        ("fields=id", ["id"]),
        ("fields=createdAt,id,value", ["id", "value", "createdAt"]),
        ("fields=name,name", ["id", "name"]),
        ("fields=name,,", ["id", "name"]),
        ("fields=expiresAt,rdt_cid,lossReason", ["id", "lossReason", "rdt_cid", "expiresAt"]),
        ("fields=" + ",".join(reversed(FIELD_NAMES)), list(FIELD_NAMES)),
    ),
)
def test_fields(qs: str, names: list[str]) -> None:
    fields = parse(qs).fields
    assert fields is not None
    assert [f.name for f in fields] == names


def test_all_fields_is_the_lead_object() -> None:
    assert parse("fields=,").fields is None
    assert [f.name for f in LEAD_FIELDS] == list(FIELD_NAMES)


@pytest.mark.parametrize(
    "qs",
    ["fields=nope", "fields=name,nope", "fields=Name", "fields=value_cents", "fields=name_fold",
     "fields=org_id", "fields=name%20email"],
)
def test_unknown_fields_are_a_validation_error(qs: str) -> None:
    error = rejection(qs)
    assert isinstance(error, ValidationError)
    assert error.details == {"parameter": "fields"}
    assert "fields" in error.message


# --- search --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "folded", "digits"),
    table(
        ("search=Bob", "bob", None),
        ("search=%20%20Bob%20Smith%20", "bob smith", None),
        ("search=STRASSE", "strasse", None),
        ("search=Stra%C3%9Fe", "strasse", None),
        ("search=%C3%89MILE", "émile", None),
        ("search=234%20567", "234 567", "234567"),
        ("search=234+567", "234 567", "234567"),
        ("search=%2B1%20(234)", "+1 (234)", "1234"),
        ("search=12", "12", None),  # fewer than 3 digits: text only
        ("search=a1b2c3", "a1b2c3", "123"),
        ("search=%EF%BC%91%EF%BC%92%EF%BC%93", "\uff11\uff12\uff13", None),  # fullwidth
        ("search=%D9%A1%D9%A2%D9%A3", "\u0661\u0662\u0663", None),  # Arabic-Indic
        ("search=100%25", "100%", "100"),
        ("search=a_b%5C", "a_b\\", None),
        ("search=" + "a" * MAX_SEARCH_LENGTH, "a" * MAX_SEARCH_LENGTH, None),
        ("search=%20" + "A" * MAX_SEARCH_LENGTH + "%20", "a" * MAX_SEARCH_LENGTH, None),
        ("search=" + "ß" * MAX_SEARCH_LENGTH, "ss" * MAX_SEARCH_LENGTH, None),
    ),
)
def test_search(qs: str, folded: str, digits: str | None) -> None:
    assert parse(qs).search == Search(folded=folded, digits=digits)


@pytest.mark.parametrize(
    "qs", ["search=" + "a" * (MAX_SEARCH_LENGTH + 1), "search=" + "é" * (MAX_SEARCH_LENGTH + 1)]
)
def test_a_search_over_200_characters_is_a_validation_error(qs: str) -> None:
    error = rejection(qs)
    assert isinstance(error, ValidationError)
    assert error.details == {"parameter": "search"}
    assert "search" in error.message


# --- a whole query -------------------------------------------------------------------------


def test_everything_together() -> None:
    query = parse(
        "status=won,lost&value[gte]=100&createdAt[lte]=2026-03-01&gclid[exists]=true"
        "&search=%20Smith%20&sort=value:desc,name&limit=20&page=3&fields=name,value"
    )
    assert Counter(query.predicates) == Counter([
        text("status", "won", "lost"),
        ranges("value", (10_000, None)),
        ranges("createdAt", (None, MAR1 + DAY)),
        Exists(F["gclid"], True),
    ])
    assert query.search == Search("smith", None)
    assert [(k.field.name, k.descending) for k in query.sort] == [("value", True), ("name", False)]
    assert (query.limit, query.page, query.offset) == (20, 3, 40)
    assert query.fields is not None
    assert [f.name for f in query.fields] == ["id", "name", "value"]


# --- GET /api/leads/{id} -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "names"),
    table(
        ("", None),
        ("fields=", None),
        ("fields=name", ["id", "name"]),
        ("fields=value,%20email", ["id", "email", "value"]),
        ("fields=&fields=name", ["id", "name"]),
    ),
)
def test_one_lead_takes_fields(qs: str, names: list[str] | None) -> None:
    fields = parse_one_lead_query(split_query_string(qs))
    assert (None if fields is None else [f.name for f in fields]) == names


@pytest.mark.parametrize(
    ("qs", "error_type", "parameter"),
    table(
        ("status=won", InvalidFilter, "status"),
        ("foo=", InvalidFilter, "foo"),
        ("limit=1", InvalidFilter, "limit"),
        ("fields=nope", ValidationError, "fields"),
        ("fields=name&fields=email", ValidationError, "fields"),
        ("fields=name%00", ValidationError, "fields"),
    ),
)
def test_one_lead_rejects_everything_else(
    qs: str, error_type: type[ApiError], parameter: str
) -> None:
    with pytest.raises(error_type) as caught:
        parse_one_lead_query(split_query_string(qs))
    assert caught.value.details == {"parameter": parameter}
    assert parameter in caught.value.message
