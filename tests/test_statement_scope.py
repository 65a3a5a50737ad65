"""Every SQL statement the service runs names one organization for each organization-scoped
table it touches (tests/sql_scope.py says what that means): the rule a deployment sharded by
organization (Citus, ARCHITECTURE.md "Past one machine") needs, checked on the statements
themselves rather than trusted from the store's signatures (tests/test_store_contracts.py
checks those).

The service's whole surface runs once on each database (the API's reads and writes, the
answer cache and conditional GETs, the change feed, webhooks and their delivery, an import
and an export by the CLI) while every statement is captured where it reaches the driver,
whoever sends it (SQLAlchemy or code on the raw connection): on PostgreSQL psycopg's
cursors (execute, executemany, stream, server-side cursors, and COPY with its rows); on
SQLite the driver's trace of every statement SQLite runs, with its parameters inlined.
Each statement is attributed to the innermost function of the service that ran it, and
the only statements allowed to leave a table unpinned are the EXCEPTIONS below, each with
its reason.

Not captured, whole-database by nature: the Alembic migrations (`leads-api migrate`, run
before the service starts; on Citus they are run through the coordinator), and maintenance
(the service runs no VACUUM or ANALYZE of its own; PostgreSQL's autovacuum is per shard).
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import sqlglot.errors
from sqlalchemy import event
from sqlalchemy.pool import Pool
from starlette.testclient import TestClient

from cli_support import Cli
from leads_api.store import Store
from leads_api.store.schema import leads
from leads_api.store.tenants import Organization
from sql_scope import scope_columns, scope_of
from webhook_receiver import Receiver
from webhook_support import delivering, eventually, subscribe

# (the function that runs the statement, or a module for all its functions; table) ->
# why that statement may touch the table without naming one organization. Each is a
# statement a Citus deployment must route specially: by reference table, on the
# coordinator, or to every shard.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("leads_api.store.tenants.authenticate", "api_keys"):
        "authentication finds the organization from the key: the key's hash is all a "
        "request brings (api_keys: a reference table, or the coordinator's own)",
    ("leads_api.store.tenants.authenticate", "organizations"):
        "joined to the key found by its hash, for the key's organization and its data "
        "version (organizations: a reference table)",
    ("leads_api.store.tenants.find_organization", "organizations"):
        "an operator's command (import, export) names the organization by its name",
    ("leads_api.store.upserts.find_leads", "leads"):
        "lead ids are unique across organizations (the primary key is the id alone), so "
        "an import finds which of its ids another organization owns, and refuses them; on "
        "Citus a query to every shard, once per import chunk",
    ("leads_api.store.delivery_queue", "webhooks"):
        "the deliverer works across organizations: it finds the subscriptions with "
        "messages due, then each by its id (which belongs to one organization)",
    ("leads_api.store.delivery_queue", "webhook_outbox"):
        "the deliverer's claims and settlements, across organizations (see webhooks)",
    ("leads_api.store.delivery_queue", "webhook_events"):
        "the deliverer's prune of stored changes no message needs, across organizations",
    ("leads_api.store.outbox.record_events", "webhook_events"):
        "the newest change seq of the whole table, below which this write's changes "
        "start (MAX(seq), one index probe); on Citus this write's changes would be found "
        "by its change position instead (ARCHITECTURE.md, \"Past one machine\")",
}

# sqlite3's trace shows the statements a trigger or a virtual table (the FTS5 search index)
# runs inside the service's statement as comments, "-- <sql>": the traced statement that
# ran them is what is checked.
_CONTROL = re.compile(
    r"\s*((BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|SET|SHOW)\b|--)", re.IGNORECASE
)
_PG_MARKER = re.compile(r"%\(([^)]+)\)s|%s|%%")


@dataclass
class Executed:
    sql: str  # parameters inlined
    dialect: str
    caller: str  # module.function of the innermost service frame
    copy_rows: list[Sequence[Any]] | None = None  # a COPY's rows, as sent


@dataclass
class Capture:
    """Every statement the service's code sends to a database while `running()`."""

    seen: list[Executed] = field(default_factory=list)
    _copies: list[tuple[str, list[Sequence[Any]], str]] = field(default_factory=list)
    _traced: list[Any] = field(default_factory=list)
    _on: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def running(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
        event.listen(Pool, "checkout", self._on_checkout)
        for cursor_class, method in (
            (psycopg.Cursor, "execute"), (psycopg.Cursor, "stream"),
            (psycopg.ServerCursor, "execute"),
        ):
            monkeypatch.setattr(cursor_class, method,
                                self._execute(getattr(cursor_class, method)))
        monkeypatch.setattr(psycopg.Cursor, "executemany",
                            self._executemany(psycopg.Cursor.executemany))
        monkeypatch.setattr(psycopg.Cursor, "copy", self._copy(psycopg.Cursor.copy))
        self._on = True
        try:
            yield self
        finally:
            self._on = False
            event.remove(Pool, "checkout", self._on_checkout)
            for sqlite in self._traced:
                with suppress(Exception):  # closed meanwhile
                    sqlite.set_trace_callback(None)
        for statement, rows, caller in self._copies:
            self.seen.append(Executed(statement, "postgres", caller, rows))

    def _add(self, sql: str, dialect: str) -> None:
        if self._on and not _CONTROL.match(sql):
            with self._lock:
                self.seen.append(Executed(sql, dialect, _caller()))

    def _execute(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def execute(cursor: Any, query: Any, params: Any = None, *args: Any, **kw: Any) -> Any:
            self._add(inline(_text(cursor, query), params), "postgres")
            return original(cursor, query, params, *args, **kw)

        return execute

    def _executemany(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def executemany(cursor: Any, query: Any, params_seq: Any, *args: Any, **kw: Any) -> Any:
            params_seq = list(params_seq)
            text = _text(cursor, query)
            for params in params_seq:
                self._add(inline(text, params), "postgres")
            return original(cursor, query, params_seq, *args, **kw)

        return executemany

    def _on_checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if hasattr(dbapi_connection, "set_trace_callback"):  # sqlite3
            dbapi_connection.set_trace_callback(lambda sql: self._add(sql, "sqlite"))
            self._traced.append(dbapi_connection)

    def _copy(self, original: Callable[..., Any]) -> Callable[..., Any]:
        capture = self

        @contextmanager
        def copy(cursor: psycopg.Cursor[Any], statement: Any, *args: Any, **kw: Any) -> Any:
            text = _text(cursor, statement)
            rows: list[Sequence[Any]] = []
            with original(cursor, statement, *args, **kw) as raw:
                write_row = raw.write_row

                def recorded(row: Sequence[Any]) -> None:
                    rows.append(row)
                    write_row(row)

                raw.write_row = recorded
                yield raw
            if capture._on:
                capture._copies.append((text, rows, _caller()))

        return copy


def _text(cursor: Any, query: Any) -> str:
    if isinstance(query, bytes):
        return query.decode()
    return str(query.as_string(cursor.connection)) if hasattr(query, "as_string") else str(query)


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("leads_api.") and module != "leads_api.store.engine":
            return f"{module}.{frame.f_code.co_qualname}"
        frame = frame.f_back  # type: ignore[assignment]
    return "(not the service's code)"


def inline(statement: str, params: Any) -> str:
    """A psycopg statement with its parameters as literals (`%(name)s`, `%s`, `%%`)."""
    if params is None:
        return statement  # nothing to inline, and a literal `%` stays as written
    position = iter(params) if isinstance(params, (list, tuple)) else iter(())

    def literal(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        value = params[match.group(1)] if match.group(1) else next(position)
        return _literal(value)

    return _PG_MARKER.sub(literal, statement)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "ARRAY[" + ", ".join(map(_literal, value)) + "]"
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    # The values' content does not decide scope: keep it readable for the parser.
    return "'" + text.replace("\\", "/").replace("\x00", "").replace("'", "''") + "'"


# --- what each statement did ---------------------------------------------------------------


def _excused(caller: str, table: str) -> str | None:
    for owner, excused_table in EXCEPTIONS:
        if table == excused_table and (caller == owner or caller.startswith(owner + ".")):
            return f"{owner}:{table}"
    return None


_COPY = re.compile(r'COPY\s+"?(\w+)"?\s*\(([^)]*)\)\s+FROM\s+STDIN', re.IGNORECASE)


def problems_of(executed: Executed, used: set[str]) -> list[str]:
    """What is wrong with one executed statement (nothing, for a scoped one); notes the
    exceptions it needed in `used`."""
    if executed.copy_rows is not None:
        return _copy_problems(executed)
    try:
        scope = scope_of(executed.sql, executed.dialect)
    except sqlglot.errors.SqlglotError as error:
        return [f"cannot read {executed.sql[:300]!r}: {error}"]
    found = [
        f"touches {t}, which tests/sql_scope.py cannot place (a table the schema does not "
        "declare: give it a scope column there, or list it in NOT_SCOPED with the reason)"
        for t in scope.unknown
    ]
    for table in sorted(scope.unscoped):
        exception = _excused(executed.caller, table)
        if exception is None:
            found.append(f"does not name one organization for {table}")
        else:
            used.add(exception)
    for table, values in scope.inserted.items():
        if len(values) > 1 and _excused(executed.caller, table) is None:
            found.append(f"inserts rows of several organizations into {table}: {values}")
    return found


def _copy_problems(executed: Executed) -> list[str]:
    match = _COPY.search(executed.sql)
    if match is None:
        return [f"a COPY this test cannot read: {executed.sql!r}"]
    table = match.group(1)
    columns = [c.strip().strip('"') for c in match.group(2).split(",")]
    column = scope_columns().get(table)
    if column is None:
        return [f"COPY into {table}, which tests/sql_scope.py cannot place"]
    if column not in columns:
        return [f"COPY into {table} without its {column}"]
    values = {row[columns.index(column)] for row in executed.copy_rows or ()}
    return [] if len(values) <= 1 else [f"COPY of several organizations into {table}: {values}"]


def assert_all_scoped(executed: Sequence[Executed]) -> set[str]:
    """Fails listing every statement that does not name one organization; returns the
    exceptions that were needed."""
    used: set[str] = set()
    wrong = []
    for e in executed:
        for problem in problems_of(e, used):
            wrong.append(f"{e.caller}: {problem}\n    {e.sql[:400]}")
    assert not wrong, "statements that do not name one organization:\n" + "\n".join(
        dict.fromkeys(wrong)
    )
    return used


# --- the service's surface, exercised ------------------------------------------------------


@pytest.fixture(autouse=True)
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADS_WEBHOOK_ALLOW_PRIVATE", "1")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def exercise_reads(client: TestClient, lead_id: str) -> None:
    for query in (
        "", "status=open", "source=api&sort=value:desc", "search=ada", "search=555 01",
        "createdAt[gte]=2020-01-01&createdAt[lte]=2040-01-01", "value[gte]=1&value[lte]=500",
        "fields=name,email&sort=name", "utm_source=news&page=2&limit=1", "updated_after="
        "2020-01-01T00:00:00Z", "gclid[exists]=false&labelId=x", "limit=2",
    ):
        body = ok(client.get(f"/api/leads?{query}"))
        cursor = body["meta"]["pagination"]["nextCursor"]
        if cursor is not None:
            ok(client.get("/api/leads", params={"cursor": cursor}))
    again = client.get("/api/leads?status=open")  # the answer cache: its version check
    tag = ok(client.get("/api/leads?status=open")) and again.headers.get("ETag")
    if tag:
        assert client.get("/api/leads?status=open", headers={"If-None-Match": tag}).status_code \
            == 304
    one = client.get(f"/api/leads/{lead_id}?fields=name")
    ok(one)
    if one.headers.get("ETag"):
        client.get(f"/api/leads/{lead_id}?fields=name",
                   headers={"If-None-Match": one.headers["ETag"]})
    ok(client.get("/api/leads/ld_nosuchlead"), 404)
    since = None
    for _ in range(3):
        params = {"limit": "2", **({"since": since} if since else {})}
        since = ok(client.get("/api/leads/changes", params=params))["meta"]["changes"]["next"]
    ok(client.get("/api/leads/changes?limit=5&status=qualified&search=ada"))
    ok(client.post("/api/stats", json={}))
    ok(client.post("/api/stats", json={"period": "custom", "startDate": "2026-01-01",
                                       "endDate": "2026-03-01"}))
    ok(client.get("/api/check"))
    ok(client.post("/api/check"))


def exercise_writes(client: TestClient, bulk: TestClient) -> str:
    first = ok(client.post("/api/leads", json={"name": "Ada", "email": "ada@example.com",
                                               "phone": "+1 555 0100",
                                               "utm_source": "news"}), 201)["data"]["id"]
    for n in range(3):
        ok(client.post("/api/leads", json={"name": f"Bob {n}", "phone": "+1 555 0101"}), 201)
    retried = {"Idempotency-Key": "order-1"}
    for _ in range(2):
        client.post("/api/leads", json={"name": "Cy"}, headers=retried)
    ok(client.patch("/api/leads", json={"id": first, "status": "qualified", "value": 99}))
    ok(client.patch("/api/leads", json={"id": first, "note": "called"}))
    for n in range(3):
        ok(bulk.post("/api/leads", json={"name": f"Dee {n}", "phone": "+1 555 0199"}), 201)
    ok(bulk.patch("/api/leads", json={"phone": "+1 555 0199", "status": "qualified"}))
    return str(first)


def exercise_webhooks(client: TestClient, receiver: Receiver) -> None:
    spare = ok(client.post("/api/webhooks", json={"url": receiver.url, "events": [
        "lead.created"]}), 201)["data"]
    hooks = ok(client.get("/api/webhooks"))["data"]
    assert spare["id"] in {h["id"] for h in hooks}
    path = f"/api/webhooks/{spare['id']}"
    ok(client.get(path))
    ok(client.patch(path, json={"description": "spare", "enabled": False}))
    ok(client.patch(path, json={"enabled": True}))
    ok(client.post(path + "/rotate-secret"))
    client.post(path + "/test")
    ok(client.get(path + "/deliveries?limit=10"))
    assert client.delete(path).status_code in (200, 204)
    ok(client.get("/api/webhooks/wh_nosuchhook"), 404)


def exercise_transfer(cli: Cli, org: Organization, lead_id: str, tmp_path: Path) -> None:
    path = tmp_path / "leads.jsonl"
    lines = [{"id": lead_id, "status": "won"}, *({"name": f"n{i}", "email": f"n{i}@x.org"}
                                                 for i in range(150))]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    cli.ok("import", "--org", org.name, path)
    cli.ok("export", "--org", org.name, "-o", tmp_path / "out.jsonl")
    cli.ok("export", "--org", org.name, "--query", "status=won", "--format", "csv",
           "-o", tmp_path / "out.csv")


# Parsing every statement the exercise ran (parameters inlined, an import's 256-row inserts
# among them) is most of this test's time on SQLite: 275 s on stop 25's slower machine,
# against the suite's default of 300 s a test.
@pytest.mark.timeout(900)
def test_every_statement_names_one_organization(
    store: Store, app: Any, make_org: Callable[..., Organization],
    make_key: Callable[..., str], cli: Cli, receiver: Receiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org, bulk_org = make_org(), make_org(allow_bulk_updates=True)
    capture = Capture()
    with TestClient(app, headers={"X-API-KEY": make_key(org)}) as client, TestClient(
        app, headers={"X-API-KEY": make_key(bulk_org)}
    ) as bulk, capture.running(monkeypatch):
        hook = subscribe(client, receiver, events=[
            "lead.created", "lead.updated", "lead.status_changed"])
        with delivering(store):
            lead_id = exercise_writes(client, bulk)
            exercise_reads(client, lead_id)
            exercise_webhooks(client, receiver)
            exercise_transfer(cli, org, lead_id, tmp_path)
            eventually(lambda: len(receiver.distinct()) >= 160, timeout=90,
                       what="the main subscription's 160 messages")
            deliveries = f"/api/webhooks/{hook['id']}/deliveries?limit=5"
            eventually(lambda: bool(client.get(deliveries).json()["data"]),
                       what="the delivery log")

    if store.dialect == "postgresql":  # the import's leads and changes, past COPY_FROM_ROWS
        assert any(e.copy_rows for e in capture.seen), "no COPY was seen"
    touched = {t for e in capture.seen if e.copy_rows is None
               for t in scope_of(e.sql, e.dialect).tables}
    # The exercise reaches every table but the migrations' own; a new table is either
    # exercised here or this says so.
    untouched = set(scope_columns()) - touched
    assert not untouched, f"tables no statement touched (exercise them here): {untouched}"

    used = assert_all_scoped(capture.seen)
    listed = {f"{owner}:{table}" for owner, table in EXCEPTIONS}
    assert used == listed, f"exceptions no statement needed (stale?): {listed - used}"


# --- the check can fail ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "unscoped"),
    [
        ("SELECT leads.id FROM leads WHERE leads.org_id = 3 AND leads.status = 'open'", set()),
        ("SELECT id FROM leads WHERE status = 'open'", {"leads"}),
        ("SELECT id FROM leads WHERE org_id = 3 OR org_id = 4", {"leads"}),
        ("SELECT id FROM leads WHERE org_id IN (3, 4)", {"leads"}),
        ("SELECT id FROM leads WHERE org_id IN (3)", set()),
        ("SELECT id FROM leads WHERE org_id > 3", {"leads"}),
        ("SELECT max(seq) FROM webhook_events", {"webhook_events"}),
        ("SELECT w.id FROM webhook_events AS e JOIN webhooks AS w ON w.org_id = e.org_id "
         "WHERE e.org_id = 3", set()),
        ("SELECT w.id FROM webhook_events AS e JOIN webhooks AS w ON w.id = e.lead_id "
         "WHERE e.org_id = 3", {"webhooks"}),
        ("SELECT id FROM leads WHERE org_id = 3 AND id IN (SELECT lead_id FROM webhook_events)",
         {"webhook_events"}),
        ("SELECT webhooks.id FROM webhooks WHERE webhooks.org_id = 3 AND EXISTS (SELECT 1 "
         "FROM webhook_outbox WHERE webhook_outbox.webhook_id = webhooks.id)", set()),
        ("SELECT webhooks.id FROM webhooks WHERE EXISTS (SELECT 1 FROM webhook_outbox "
         "WHERE webhook_outbox.webhook_id = webhooks.id)", {"webhooks", "webhook_outbox"}),
        ("UPDATE leads SET status = 'won' WHERE leads.id = 'ld_1'", {"leads"}),
        ("UPDATE leads SET status = 'won' WHERE leads.org_id = 3 AND leads.id = 'ld_1'", set()),
        ("DELETE FROM webhooks WHERE id = 'wh_1'", {"webhooks"}),
        ("UPDATE organizations SET data_version = data_version + 1 WHERE id = 3", set()),
        ("INSERT INTO lead_counts (org_id, status, source, n) VALUES (3, 'open', 'api', 1) "
         "ON CONFLICT (org_id, status, source) DO UPDATE SET n = lead_counts.n + excluded.n",
         set()),
        ("INSERT INTO lead_counts (status, source, n) VALUES ('open', 'api', 1)",
         {"lead_counts"}),
        ("INSERT INTO webhook_outbox (webhook_id, position) SELECT w.id, e.seq FROM "
         "webhook_events AS e JOIN webhooks AS w ON w.org_id = e.org_id WHERE e.org_id = 3",
         set()),
        ("INSERT INTO webhook_outbox (webhook_id, position) SELECT w.id, e.seq FROM "
         "webhook_events AS e JOIN webhooks AS w ON w.org_id = e.org_id", {"webhook_outbox",
                                                                          "webhook_events",
                                                                          "webhooks"}),
        ("SELECT a.id FROM api_keys AS a WHERE a.key_hash = 'abc'", {"api_keys"}),
    ],
)
def test_the_rule_on_statements(sql: str, unscoped: set[str]) -> None:
    for dialect in ("sqlite", "postgres"):
        assert scope_of(sql, dialect).unscoped == unscoped, (dialect, sql)


def test_the_rule_on_one_insert_of_two_organizations() -> None:
    scope = scope_of(
        "INSERT INTO leads (org_id, id) VALUES (3, 'ld_1'), (4, 'ld_2')", "postgres"
    )
    assert scope.inserted == {"leads": {"3", "4"}}
    executed = Executed("INSERT INTO leads (org_id, id) VALUES (3, 'a'), (4, 'b')", "postgres",
                        "leads_api.store.unit_of_work.LeadWrites.insert")
    [problem] = problems_of(executed, set())
    assert problem.startswith("inserts rows of several organizations into leads")


def test_an_unscoped_statement_the_service_runs_is_caught(
    store: Store, make_org: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real capture on the real database: a deliberately unscoped statement is
    caught, and the same statement scoped passes."""
    org = make_org()
    capture = Capture()
    with capture.running(monkeypatch), store.read() as conn:
        conn.execute(leads.select().where(leads.c.status == "open")).all()
        conn.execute(
            leads.select().where(leads.c.org_id == org.id, leads.c.status == "x")
        ).all()
    assert [e.caller for e in capture.seen] == ["(not the service's code)"] * 2
    with pytest.raises(AssertionError, match="does not name one organization for leads"):
        assert_all_scoped(capture.seen)
    assert_all_scoped(capture.seen[1:])


def test_a_copy_of_two_organizations_is_caught() -> None:
    columns = "org_id, id"
    two = Executed(f"COPY leads ({columns}) FROM STDIN", "postgres", "x", [(1, "a"), (2, "b")])
    one = Executed(f"COPY leads ({columns}) FROM STDIN", "postgres", "x", [(1, "a"), (1, "b")])
    assert problems_of(one, set()) == []
    assert problems_of(two, set()) == ["COPY of several organizations into leads: {1, 2}"]
