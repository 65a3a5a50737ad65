"""The query mix: each query as an API URL and as the straightforward SQL it stands for.

The SQL is written by hand, per dialect, as someone would write it against the service's
own `leads` table: the page (ORDER BY ... LIMIT 50 OFFSET ...) and `COUNT(*)` with the same
WHERE. Before a run, the harness checks that the API's total and page ids equal what this
SQL returns, so the two sides measure the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from leads_api.fields import LEAD_FIELDS

PAGE_SIZE = 50
FULL_COLUMNS = ", ".join(f.column for f in LEAD_FIELDS)
DEFAULT_ORDER = "created_at DESC, id DESC"


def _day_ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


# Q3's window: two months inside the data's two years (bench.generate.NOW_MS - 730 days).
# `createdAt[lte]=2026-03-01` includes all of 1 March, so the SQL bound is 2 March.
WINDOW_FROM, WINDOW_TO = "2026-01-01", "2026-03-01"
_WINDOW_SQL = (
    f"created_at >= {_day_ms(WINDOW_FROM)} AND created_at < {_day_ms('2026-03-02')}"
)


# Q9's instant: a poller that last looked a month before the data's "now".
POLL_SINCE = "2026-10-26T12:00:00.000Z"


def _instant_ms(instant: str) -> int:
    return int(datetime.fromisoformat(instant).timestamp() * 1000)


@dataclass(frozen=True)
class BenchQuery:
    name: str
    title: str
    params: str  # the API query string
    where: str  # SQL condition ANDed to `org_id = <org>`; empty for none
    order_sqlite: str = DEFAULT_ORDER
    order_postgres: str = DEFAULT_ORDER
    columns: str = FULL_COLUMNS
    page: int = 1
    limit: int = PAGE_SIZE
    smallest_org: bool = False  # against the 1 % organization instead of the largest

    @property
    def path(self) -> str:
        return "/api/leads" + (f"?{self.params}" if self.params else "")

    def _where(self, org_id: int) -> str:
        return f"org_id = {org_id}" + (f" AND ({self.where})" if self.where else "")

    def page_sql(self, dialect: str, org_id: int) -> str:
        order = self.order_postgres if dialect == "postgresql" else self.order_sqlite
        offset = (self.page - 1) * self.limit
        return (
            f"SELECT {self.columns} FROM leads WHERE {self._where(org_id)} "
            f"ORDER BY {order} LIMIT {self.limit} OFFSET {offset}"
        )

    def count_sql(self, org_id: int) -> str:
        return f"SELECT count(*) FROM leads WHERE {self._where(org_id)}"


QUERIES: tuple[BenchQuery, ...] = (
    BenchQuery("Q1", "default order", "", ""),
    BenchQuery(
        "Q2", "won or lost, by value desc", "status=won,lost&sort=value:desc",
        "status IN ('won', 'lost')",
        # SQLite already puts NULLs last when descending; PostgreSQL puts them first.
        order_sqlite="value_cents DESC, id DESC",
        order_postgres="value_cents DESC NULLS LAST, id DESC",
    ),
    BenchQuery(
        "Q3", "two months of createdAt",
        f"createdAt[gte]={WINDOW_FROM}&createdAt[lte]={WINDOW_TO}", _WINDOW_SQL,
    ),
    BenchQuery(
        "Q4", "value range, by value", "value[gte]=100&value[lt]=1000&sort=value",
        "value_cents >= 10000 AND value_cents < 100000",
        # The filter excludes NULLs, so neither dialect needs NULLS LAST here.
        order_sqlite="value_cents ASC, id ASC", order_postgres="value_cents ASC, id ASC",
    ),
    BenchQuery(
        "Q5", "click-ID presence", "gclid[exists]=true&fbc[exists]=false",
        "gclid IS NOT NULL AND fbc IS NULL",
    ),
    BenchQuery(
        "Q6", "search smith", "search=smith",
        "name_fold LIKE '%smith%' OR email_fold LIKE '%smith%' OR phone_fold LIKE '%smith%'",
    ),
    BenchQuery(
        "Q7", "utm_source + source, 5 fields",
        "utm_source=google&source=gtm&fields=id,name,email,status,value",
        "utm_source = 'google' AND source = 'gtm'",
        columns="id, name, email, status, value_cents",
    ),
    BenchQuery("Q8", "default order, page 200", "page=200", "", page=200),
    BenchQuery(
        "Q9", "poller: updated_after, by updatedAt",
        f"updated_after={POLL_SINCE}&sort=updatedAt:asc&limit=100",
        f"updated_at >= {_instant_ms(POLL_SINCE)}",
        order_sqlite="updated_at ASC, id ASC", order_postgres="updated_at ASC, id ASC", limit=100,
    ),
    BenchQuery("Q1-small", "default order, 1 % organization", "", "", smallest_org=True),
)
