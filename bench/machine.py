"""Facts about the machine, the databases and the code measured, recorded with each result."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

import leads_api.fields

PG_SETTINGS = (
    "shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit",
    "max_parallel_workers_per_gather", "max_connections",
    # The write path's (bench/postgres-tuning.sql sets these, and durability's stay on).
    "wal_buffers", "max_wal_size", "min_wal_size", "checkpoint_timeout",
    "checkpoint_completion_target", "wal_compression", "bgwriter_lru_maxpages",
    "maintenance_work_mem", "synchronous_commit", "fsync", "full_page_writes",
    "commit_delay", "autovacuum",
)


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "missing"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def code() -> dict[str, Any]:
    """The commit of the leads_api being measured, and whether its source differs from it."""
    source = Path(leads_api.fields.__file__).resolve().parent  # a namespace package
    repo = source.parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "source_modified": bool(git("status", "--porcelain", "--", "src")),
        "source": str(source),
    }


def facts(pg_conninfo: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": _memory_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite_version": sqlite3.sqlite_version,
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        # The service's settings the server inherited (the answer cache size, the pool...).
        "service_env": {k: v for k, v in sorted(os.environ.items())
                        if k.startswith("LEADS_") and k != "LEADS_DATABASE_URL"},
    }
    if pg_conninfo:
        with psycopg.connect(pg_conninfo) as pg:
            version = pg.execute("SHOW server_version").fetchone()
            found["postgres_version"] = version[0] if version else "?"
            found["postgres_settings"] = {
                name: row[0]
                for name in PG_SETTINGS
                if (row := pg.execute(f"SHOW {name}").fetchone()) is not None
            }
            # Everything set away from its default (postgresql.conf, ALTER SYSTEM...), so a
            # result says how its server was set up, and which changes wait for a restart.
            found["postgres_configured"] = {
                name: setting + (" (pending restart)" if pending else "")
                for name, setting, pending in pg.execute(
                    "SELECT name, current_setting(name), pending_restart FROM pg_settings "
                    "WHERE source NOT IN ('default', 'override', 'client', 'session') "
                    "ORDER BY name"
                )
            }
        found["pgbench"] = _first_line(["pgbench", "--version"])
    return found
