"""Loading the database: fresh schema, organizations, keys, the import and its floor, export.

Leads go in through `leads-api import`, one organization at a time, timed as a user would
time it. Beside it, the floor of the same database: the same rows (derived columns
included) into a bare table with the same columns and no index, by PostgreSQL `COPY` or
SQLite `executemany` in one transaction. Export is timed the same way, with its peak RSS.
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.generate import Dataset, OrgData, org_rows
from leads_api.lead import lead_json, with_derived_columns
from leads_api.store.engine import BULK_LOAD_CACHE_KIB
from leads_api.store.schema import leads

FLOOR_TABLE = "leads_floor"
SEARCH_TABLE = "leads_search"  # SQLite's FTS5 search index (migration 0010)
# The narrow rows search decides on (migration 0014), with PostgreSQL's trigram index.
SEARCH_ROWS_TABLE = "search_rows"
_SEARCHED = "org_id, id, created_at, name_fold, email_fold, phone_fold, phone_digits"
SQLITE_SEARCH_ROWS = f"lead_row, {_SEARCHED}"
POSTGRES_SEARCH_ROWS = f"{_SEARCHED}, search_text"


@dataclass(frozen=True)
class Target:
    """The database under test and how each tool reaches it."""

    backend: str  # "sqlite" or "postgres"
    url: str  # LEADS_DATABASE_URL for the service and its CLI
    sqlite_path: Path | None = None
    pg_conninfo: str = ""  # libpq URI of the benchmark database
    pg_admin_conninfo: str = ""  # libpq URI of a database to CREATE DATABASE from
    pg_dbname: str = ""

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"


@dataclass(frozen=True)
class Measured:
    seconds: float
    max_rss_mb: float
    stdout: str
    stderr: str


def measured(command: Sequence[str], env: dict[str, str]) -> Measured:
    """Run a command; its wall time and its peak RSS, by GNU time (`/usr/bin/time -f %M`).

    Not by this process's own wait4: Linux carries a process's peak RSS across fork and
    exec, so a child of this (large) process would report at least our own peak. time's
    child is forked from the small time process instead.
    """
    with tempfile.TemporaryDirectory(prefix="bench-time-") as tmp:
        rss_file = Path(tmp) / "rss"
        timed = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command]
        start = time.perf_counter()
        done = subprocess.run(timed, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}"
            )
        max_rss_kb = int(rss_file.read_text().split()[-1])
    return Measured(seconds, max_rss_kb / 1024, done.stdout, done.stderr)


def cli(command: Sequence[str], env: dict[str, str]) -> str:
    done = subprocess.run(list(command), env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def reset(target: Target) -> None:
    """An empty database: the SQLite file removed; on PostgreSQL the benchmark database
    created if missing and its `public` schema dropped and recreated (nothing else)."""
    if target.is_sqlite:
        assert target.sqlite_path is not None
        for suffix in ("", "-wal", "-shm", ".migrate-lock"):
            Path(f"{target.sqlite_path}{suffix}").unlink(missing_ok=True)
        target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return
    with psycopg.connect(target.pg_admin_conninfo, autocommit=True) as admin:
        found = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.pg_dbname,)
        ).fetchone()
        if found is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.pg_dbname)))
    with psycopg.connect(target.pg_conninfo, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


def _rows(target: Target, query: str) -> list[tuple[Any, ...]]:
    """The rows of `query` on the target database, on a connection of its own."""
    if target.is_sqlite:
        assert target.sqlite_path is not None
        with sqlite3.connect(target.sqlite_path) as conn:
            return conn.execute(query).fetchall()
    with psycopg.connect(target.pg_conninfo) as pg:
        return pg.execute(query).fetchall()


def org_ids(target: Target) -> dict[str, int]:
    return {name: int(i) for name, i in _rows(target, "SELECT name, id FROM organizations")}


def lead_counts(target: Target) -> dict[str, int]:
    """Leads per organization name, as the database holds them."""
    query = (
        "SELECT o.name, count(l.id) FROM organizations o LEFT JOIN leads l ON l.org_id = o.id "
        "GROUP BY o.name"
    )
    return {name: int(n) for name, n in _rows(target, query)}


def lead_columns(target: Target) -> list[str]:
    """The `leads` table's columns, in table order, as the migrated database has them, but
    those the database computes (SQLite's table_info leaves them out)."""
    if target.is_sqlite:
        return [row[1] for row in _rows(target, "PRAGMA table_info(leads)")]
    return [row[0] for row in _rows(
        target,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = 'leads' AND is_generated = 'NEVER' "
        "ORDER BY ordinal_position",
    )]


def floor(
    target: Target, data: Dataset, ids: dict[str, int], workdir: Path, *, indexed: bool = False
) -> dict[str, Any]:
    """The same rows into a bare table, timed per organization (building the rows is not).
    With `indexed`, the table has the service's indexes: what the database itself needs to
    store these leads the way the service does, without any of the service's work."""
    columns = lead_columns(target)
    table = f"{FLOOR_TABLE}_indexed" if indexed else FLOOR_TABLE
    seconds = 0.0
    for org in data.orgs:
        rows = _floor_rows(org, ids[org.name], columns)
        first = org is data.orgs[0]
        if target.is_sqlite:
            path = workdir / f"{table}.db"
            seconds += _sqlite_floor(target, path, table, columns, rows, first=first)
        else:
            seconds += _postgres_floor(target, table, columns, rows, first=first)
        del rows
    if target.is_sqlite:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{workdir / f'{table}.db'}{suffix}").unlink(missing_ok=True)
    else:
        with psycopg.connect(target.pg_conninfo, autocommit=True) as pg:
            pg.execute(f"DROP TABLE {table}")
            pg.execute(f"DROP TABLE IF EXISTS {table}_{SEARCH_ROWS_TABLE}")
    method = "executemany, one transaction" if target.is_sqlite else "COPY FROM STDIN"
    if indexed:
        method += ", the service's indexes" + (
            ", FTS5 search index and search rows" if target.is_sqlite
            else " and search rows (with their trigram index)"
        )
    return {
        "method": method, "leads": data.rows, "seconds": round(seconds, 3),
        "leads_per_s": round(data.rows / seconds),
    }


def _floor_rows(org: OrgData, org_id: int, columns: list[str]) -> list[tuple[Any, ...]]:
    ordinals = itertools.count()

    def to_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
        full = with_derived_columns(row)
        full["org_id"] = org_id
        full["change_seq"] = 1  # the position an organization's first import stamps
        full["change_ord"] = next(ordinals)  # and each lead's place in it
        full["lead_json"] = lead_json(full)  # the object the service stores with each lead
        return tuple(full.get(c) for c in columns)

    return org_rows(org, to_tuple)


def _sqlite_floor(
    target: Target,
    path: Path,
    table: str,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    *,
    first: bool,
) -> float:
    """A separate file beside the database, with the service's pragmas (WAL, FULL sync, and
    an import's page cache)."""
    assert target.sqlite_path is not None
    if first:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA cache_size=-{BULK_LOAD_CACHE_KIB}")
        if first:
            with sqlite3.connect(target.sqlite_path) as main:
                declared = {r[1]: r[2] for r in main.execute("PRAGMA table_info(leads)")}
                indexes = [r[0] for r in main.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads' "
                    "AND sql IS NOT NULL"
                )]
                search = main.execute(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (SEARCH_TABLE,)
                ).fetchone()[0]
                search_rows = main.execute(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (SEARCH_ROWS_TABLE,)
                ).fetchone()[0]
            definition = ", ".join([
                *(f'"{c}" {declared[c]}' for c in columns),
                *(f'"{c.name}" INTEGER GENERATED ALWAYS AS ({c.computed.sqltext}) VIRTUAL'
                  for c in leads.columns if c.computed is not None),
            ])
            conn.execute(f"CREATE TABLE {table} ({definition})")
            if table != FLOOR_TABLE:
                conn.execute(f"CREATE UNIQUE INDEX {table}_pkey ON {table} (id)")
                for ddl in indexes:
                    conn.execute(ddl.replace(" ix_", f" {table}_ix_").replace(
                        " ON leads ", f" ON {table} "))
                conn.execute(search.replace(SEARCH_TABLE, f"{table}_search", 1).replace(
                    "content='leads'", f"content='{table}'"))
                conn.execute(search_rows.replace(
                    SEARCH_ROWS_TABLE, f"{table}_{SEARCH_ROWS_TABLE}", 1))
        marks = ", ".join("?" * len(columns))
        indexed = table != FLOOR_TABLE
        start = time.perf_counter()
        conn.execute("BEGIN")
        (before,) = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        if indexed:
            # The search index (FTS5, a table of its own) as SQLite builds it fastest: from
            # the stored rows in one statement, not a trigger's statement per row.
            conn.execute(
                f"INSERT INTO {table}_search (rowid, search_text) SELECT rowid, search_text "
                f"FROM {table} WHERE rowid > ? AND search_text IS NOT NULL", (before,)
            )
            conn.execute(
                f"INSERT INTO {table}_{SEARCH_ROWS_TABLE} ({SQLITE_SEARCH_ROWS}) "
                f"SELECT rowid, {_SEARCHED} FROM {table} "
                "WHERE rowid > ?", (before,)
            )
        conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def _postgres_floor(
    target: Target, table: str, columns: list[str], rows: list[tuple[Any, ...]], *, first: bool
) -> float:
    indexed = table != FLOOR_TABLE
    search_rows = f"{table}_{SEARCH_ROWS_TABLE}"
    with psycopg.connect(target.pg_conninfo) as pg:
        if first:
            pg.execute(f"DROP TABLE IF EXISTS {table}")
            pg.execute(f"DROP TABLE IF EXISTS {search_rows}")
            # Columns, types, NOT NULL; and for the indexed floor every index of `leads`, and
            # the search rows with theirs.
            like = "leads INCLUDING GENERATED" + (" INCLUDING INDEXES" if indexed else "")
            pg.execute(f"CREATE TABLE {table} (LIKE {like})")
            if indexed:
                pg.execute(
                    f"CREATE TABLE {search_rows} (LIKE {SEARCH_ROWS_TABLE} INCLUDING ALL)"
                )
            pg.commit()
        names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
        start = time.perf_counter()
        with pg.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        if indexed:  # as PostgreSQL builds them fastest: one statement, not a row trigger each
            org_id = rows[0][columns.index("org_id")] if rows else None
            pg.execute(
                f"INSERT INTO {search_rows} ({POSTGRES_SEARCH_ROWS}) "
                f"SELECT {POSTGRES_SEARCH_ROWS} FROM {table} WHERE org_id = %s", (org_id,)
            )
        pg.commit()
        return time.perf_counter() - start


def create_orgs(cli_path: str, env: dict[str, str], data: Dataset) -> dict[str, str]:
    """Each organization and one key for it; returns name -> key."""
    keys = {}
    for org in data.orgs:
        cli([cli_path, "orgs", "create", org.name], env)
        keys[org.name] = new_key(cli_path, env, org.name)
    return keys


def new_key(cli_path: str, env: dict[str, str], org: str) -> str:
    out = cli([cli_path, "keys", "create", "--org", org, "--name", "bench"], env)
    return out.strip().splitlines()[-1]


def import_all(cli_path: str, env: dict[str, str], data: Dataset) -> dict[str, Any]:
    per_org: list[dict[str, Any]] = []
    for org in data.orgs:
        run = measured([cli_path, "import", "--org", org.name, str(data.path(org))], env)
        per_org.append({
            "org": org.name, "leads": org.leads, "seconds": round(run.seconds, 3),
            "leads_per_s": round(org.leads / run.seconds), "max_rss_mb": round(run.max_rss_mb),
        })
    seconds = sum(o["seconds"] for o in per_org)
    return {
        "command": "leads-api import --org NAME FILE.jsonl",
        "leads": data.rows, "seconds": round(seconds, 3), "leads_per_s": round(data.rows / seconds),
        "max_rss_mb": max(o["max_rss_mb"] for o in per_org), "per_org": per_org,
    }


def analyze(target: Target) -> dict[str, Any]:
    """Fresh statistics (and, on PostgreSQL, the visibility map index-only scans need, and
    a CHECKPOINT: the load's deferred writes would otherwise land on whatever is measured
    next, the export, at 15-20 % of its speed). SQLite's import checkpoints as it commits."""
    start = time.perf_counter()
    if target.is_sqlite:
        assert target.sqlite_path is not None
        conn = sqlite3.connect(target.sqlite_path, isolation_level=None)
        try:
            conn.execute("ANALYZE")
        finally:
            conn.close()
        command = "ANALYZE"
    else:
        with psycopg.connect(target.pg_conninfo, autocommit=True) as pg:
            pg.execute("VACUUM ANALYZE")
            pg.execute("CHECKPOINT")
        command = "VACUUM ANALYZE, CHECKPOINT"
    return {"command": command, "seconds": round(time.perf_counter() - start, 3)}


def export(cli_path: str, env: dict[str, str], org: OrgData, out: Path) -> dict[str, Any]:
    run = measured([cli_path, "export", "--org", org.name, "-o", str(out)], env)
    with out.open("rb") as exported:
        lines = sum(1 for _ in exported)
    if lines != org.leads:
        raise RuntimeError(f"export wrote {lines} leads, {org.name} has {org.leads}")
    size = out.stat().st_size
    out.unlink()
    return {
        "command": f"leads-api export --org {org.name} -o FILE.jsonl",
        "leads": lines, "seconds": round(run.seconds, 3),
        "leads_per_s": round(lines / run.seconds), "max_rss_mb": round(run.max_rss_mb),
        "megabytes": round(size / 1e6, 1),
    }


def export_floor(target: Target, org_id: int) -> dict[str, Any]:
    """What the database itself takes to hand over what export reads: each lead's stored
    object (the `lead_json` column; before stop 18, every column of the lead object), the
    organization's leads in export's order (createdAt desc, id desc). PostgreSQL:
    `COPY (SELECT ...) TO STDOUT`, read in full by psycopg; SQLite: the same SELECT read row
    by row in Python (sqlite3, as the service reads it)."""
    from leads_api.store.schema import LEAD_JSON_COLUMN

    select = (f"SELECT {LEAD_JSON_COLUMN} FROM leads WHERE org_id = {int(org_id)} "
              "ORDER BY created_at DESC, id DESC")
    start = time.perf_counter()
    rows = 0
    if target.is_sqlite:
        assert target.sqlite_path is not None
        conn = sqlite3.connect(target.sqlite_path)
        try:
            for _ in conn.execute(select):
                rows += 1
        finally:
            conn.close()
        method = "sqlite3 SELECT, every row read in Python"
    else:
        with (psycopg.connect(target.pg_conninfo) as pg, pg.cursor() as cursor,
              cursor.copy(f"COPY ({select}) TO STDOUT") as copy):
            for block in copy:
                rows += bytes(block).count(b"\n")
        method = "COPY (SELECT ...) TO STDOUT"
    seconds = time.perf_counter() - start
    return {"method": method, "leads": rows, "seconds": round(seconds, 3),
            "leads_per_s": round(rows / seconds) if seconds else 0}
