"""Fresh questions: per query shape, a seeded list of distinct URLs a real client could send.

The repeated-URL run (queries.py) measures the answer cache after the first request. Here
each shape of the mix gets thousands of distinct URLs, each a `BenchQuery` with its own
straightforward SQL, so a sample can be checked against it like the repeated URLs are:
pages 1-200 with any limit, createdAt windows of 1-90 days anywhere in the data's two
years, value ranges, status sets, click-ID presence pairs, `updated_after` instants (a
poller's, sorted by updatedAt ascending), search terms drawn from the generator's name,
email and phone words and fragments, and field selections. A list is a pure function of
(shape, seed, the organization's size): the same seed gives the same URLs in every run.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import quote

from bench.generate import NOW_MS, SPAN_DAYS
from bench.queries import QUERIES, BenchQuery
from leads_api.fields import LEAD_FIELDS, SOURCES, STATUSES
from leads_api.sample import CLICK_ID_ODDS, FIRST_NAMES, LAST_NAMES, UTM_SOURCES

DAY_MS = 86_400_000
START_MS = NOW_MS - SPAN_DAYS * DAY_MS
CLICK_IDS = tuple(CLICK_ID_ODDS)
# Fields a client might select (id always comes back); the lead object's order is kept.
SELECTABLE = tuple(f for f in LEAD_FIELDS if f.name != "id")
Maker = Callable[[random.Random, int], BenchQuery]


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _instant(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _midnight(ms: int) -> int:
    return ms - ms % DAY_MS


def _last_page(leads: int, limit: int) -> int:
    return max(1, -(-leads // limit))


def _q1(rng: random.Random, leads: int, name: str = "Q1", smallest: bool = False) -> BenchQuery:
    limit = rng.randint(1, 100)
    page = rng.randint(1, min(200, _last_page(leads, limit)))
    return BenchQuery(name, "default order, any page and limit", f"page={page}&limit={limit}",
                      "", page=page, limit=limit, smallest_org=smallest)


def _q1_small(rng: random.Random, leads: int) -> BenchQuery:
    return _q1(rng, leads, "Q1-small", smallest=True)


def _q2(rng: random.Random, leads: int) -> BenchQuery:
    chosen = sorted(rng.sample(STATUSES, rng.randint(1, len(STATUSES))), key=STATUSES.index)
    desc = rng.random() < 0.7
    limit = rng.choice((10, 20, 25, 50, 50, 50, 100))
    page = rng.randint(1, 200)
    where = "status IN (" + ", ".join(f"'{s}'" for s in chosen) + ")"
    direction = "desc" if desc else "asc"
    # Nulls last in both directions: SQLite puts them first when ascending, PostgreSQL
    # when descending.
    order_sqlite = ("value_cents DESC, id DESC" if desc
                    else "value_cents IS NULL, value_cents ASC, id ASC")
    order_postgres = f"value_cents {direction.upper()} NULLS LAST, id {direction.upper()}"
    return BenchQuery("Q2", "status set, by value", f"status={','.join(chosen)}&sort=value:"
                      f"{direction}&page={page}&limit={limit}", where, order_sqlite=order_sqlite,
                      order_postgres=order_postgres, page=page, limit=limit)


def _q3(rng: random.Random, leads: int) -> BenchQuery:
    days = rng.randint(1, 90)
    first = _midnight(START_MS + rng.randrange((SPAN_DAYS - days + 1) * DAY_MS))
    last = first + (days - 1) * DAY_MS
    page = rng.choice((1, 1, 1, 2, 3, rng.randint(1, 20)))
    return BenchQuery(
        "Q3", "createdAt window of 1-90 days",
        f"createdAt[gte]={_day(first)}&createdAt[lte]={_day(last)}&page={page}",
        f"created_at >= {first} AND created_at < {last + DAY_MS}", page=page,
    )


def _q4(rng: random.Random, leads: int) -> BenchQuery:
    low = rng.randint(50, 49_000)
    high = low + rng.randint(10, 5_000)
    page = rng.choice((1, 1, 2, rng.randint(1, 50)))
    return BenchQuery(
        "Q4", "value range, by value", f"value[gte]={low}&value[lt]={high}&sort=value&page={page}",
        f"value_cents >= {low * 100} AND value_cents < {high * 100}",
        order_sqlite="value_cents ASC, id ASC", order_postgres="value_cents ASC, id ASC",
        page=page,
    )


def _q5(rng: random.Random, leads: int) -> BenchQuery:
    one, two = rng.sample(CLICK_IDS, 2)
    has_one, has_two = rng.random() < 0.6, rng.random() < 0.4
    page = rng.randint(1, 50)

    def sql(name: str, present: bool) -> str:
        return f"{name} IS {'NOT ' if present else ''}NULL"

    return BenchQuery(
        "Q5", "click-ID presence pair",
        f"{one}[exists]={str(has_one).lower()}&{two}[exists]={str(has_two).lower()}&page={page}",
        f"{sql(one, has_one)} AND {sql(two, has_two)}", page=page,
    )


def _handle(first: str, last: str) -> str:
    """The email handle generate.py's sampler builds from a name."""
    return f"{first}.{last}".lower().replace(" ", "")


def search_term(rng: random.Random) -> str:
    """A term a person would type: a full handle, a name with a number, a name, a fragment
    of one, or phone digits. At a million leads most match tens to thousands of leads."""
    kind = rng.random()
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if kind < 0.35:
        return _handle(first, last)
    if kind < 0.5:
        return f"{last.lower().replace(' ', '')}{rng.randrange(100)}"
    if kind < 0.6:
        return rng.choice((first, last))
    if kind < 0.75:
        word = rng.choice((first, last))
        if len(word) < 4:
            return word
        size = rng.randint(3, min(6, len(word)))
        start = rng.randrange(len(word) - size + 1)
        return word[start:start + size]
    return str(rng.randrange(1_000, 10_000))  # four digits of a phone number


def search_sql(term: str) -> str:
    """The contract's search as plain SQL (the terms here have no LIKE wildcards)."""
    folded = term.casefold().replace("'", "''")
    like = [f"{c} LIKE '%{folded}%'" for c in ("name_fold", "email_fold", "phone_fold")]
    digits = "".join(ch for ch in term if ch.isdigit())
    if len(digits) >= 3:
        like.append(f"phone_digits LIKE '%{digits}%'")
    return " OR ".join(like)


def _q6(rng: random.Random, leads: int) -> BenchQuery:
    term = search_term(rng)
    page = 1 if rng.random() < 0.8 else rng.randint(2, 5)
    return BenchQuery("Q6", "search, a person's term", f"search={quote(term)}&page={page}",
                      search_sql(term), page=page)


def _q7(rng: random.Random, leads: int) -> BenchQuery:
    utm, source = rng.choice(UTM_SOURCES), rng.choice(SOURCES)
    chosen = sorted(rng.sample(range(len(SELECTABLE)), rng.randint(1, 8)))
    fields = [SELECTABLE[i] for i in chosen]
    page = rng.randint(1, 20)
    names = ",".join(f.name for f in rng.sample(fields, len(fields)))  # any order in the URL
    return BenchQuery(
        "Q7", "utm_source + source, a field selection",
        f"utm_source={utm}&source={source}&fields={names}&page={page}",
        f"utm_source = '{utm}' AND source = '{source}'",
        columns="id, " + ", ".join(f.column for f in fields), page=page,
    )


def _q8(rng: random.Random, leads: int) -> BenchQuery:
    limit = rng.randint(20, 100)
    page = rng.randint(100, max(100, min(300, _last_page(leads, limit))))
    return BenchQuery("Q8", "default order, a deep page", f"page={page}&limit={limit}", "",
                      page=page, limit=limit)


def _q9(rng: random.Random, leads: int) -> BenchQuery:
    since = START_MS + rng.randrange(SPAN_DAYS * DAY_MS)
    return BenchQuery(
        "Q9", "poller: updated_after, by updatedAt", f"updated_after={_instant(since)}"
        "&sort=updatedAt:asc&limit=100", f"updated_at >= {since}",
        order_sqlite="updated_at ASC, id ASC", order_postgres="updated_at ASC, id ASC", limit=100,
    )


MAKERS: dict[str, Maker] = {
    "Q1": _q1, "Q2": _q2, "Q3": _q3, "Q4": _q4, "Q5": _q5, "Q6": _q6, "Q7": _q7, "Q8": _q8,
    "Q9": _q9, "Q1-small": _q1_small,
}
assert set(MAKERS) == {q.name for q in QUERIES}


def fresh_urls(shape: str, seed: int, count: int, org_leads: int) -> list[BenchQuery]:
    """Up to `count` distinct URLs of `shape`, always the same for (shape, seed, org_leads);
    fewer when the shape has fewer (a small organization's pages)."""
    rng = random.Random(f"{shape}:{seed}")
    make = MAKERS[shape]
    seen: dict[str, BenchQuery] = {}
    misses = 0
    while len(seen) < count and misses < 20 * count:
        query = make(rng, org_leads)
        if query.params in seen:
            misses += 1
            continue
        seen[query.params] = query
    return list(seen.values())


def interleave(lists: list[list[BenchQuery]]) -> list[BenchQuery]:
    """All shapes at once: one of each in turn, until every list is used up."""
    out: list[BenchQuery] = []
    for group in itertools.zip_longest(*lists):
        out.extend(q for q in group if q is not None)
    return out


def sample(queries: list[BenchQuery], seed: int, size: int) -> Iterator[BenchQuery]:
    """A seeded sample of the list, to check against the SQL before a run."""
    yield from random.Random(seed).sample(queries, min(size, len(queries)))

