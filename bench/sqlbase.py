"""The straightforward SQL of each query, run straight at the database: the yardstick.

PostgreSQL: pgbench with one script per query (the page and its COUNT(*)), as many clients
as wrk has connections. SQLite: one connection in a timed loop, as Python's sqlite3 is what
the service uses. Both report transactions per second and latency percentiles.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.queries import BenchQuery


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _summary(latencies_ms: list[float], seconds: float) -> dict[str, Any]:
    latencies_ms.sort()
    return {
        "transactions": len(latencies_ms),
        "seconds": round(seconds, 3),
        "req_s": round(len(latencies_ms) / seconds, 2) if seconds else 0.0,
        "p50_ms": round(percentile(latencies_ms, 50), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
    }


def expected_sqlite(path: Path, query: BenchQuery, org_id: int) -> tuple[int, list[str]]:
    """(total, page ids) by the hand-written SQL: what the API must answer."""
    with sqlite3.connect(path) as conn:
        total = conn.execute(query.count_sql(org_id)).fetchone()[0]
        ids = [row[0] for row in conn.execute(query.page_sql("sqlite", org_id))]
    return int(total), ids


def expected_postgres(conninfo: str, query: BenchQuery, org_id: int) -> tuple[int, list[str]]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(query.count_sql(org_id)).fetchone()
        ids = [r[0] for r in conn.execute(query.page_sql("postgresql", org_id))]
    assert row is not None
    return int(row[0]), ids


def run_sqlite(path: Path, query: BenchQuery, org_id: int, duration: float) -> dict[str, Any]:
    """Page + count, back to back on one connection, for `duration` seconds."""
    page, count = query.page_sql("sqlite", org_id), query.count_sql(org_id)
    conn = sqlite3.connect(path, isolation_level=None)
    latencies: list[float] = []
    try:
        start = time.perf_counter()
        deadline = start + duration
        now = start
        while now < deadline:
            conn.execute(page).fetchall()
            conn.execute(count).fetchone()
            after = time.perf_counter()
            latencies.append((after - now) * 1000)
            now = after
        elapsed = now - start
    finally:
        conn.close()
    return {"tool": "sqlite3 loop, 1 connection", **_summary(latencies, elapsed)}


_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)


def run_pgbench(
    conninfo: dict[str, str], query: BenchQuery, org_id: int, duration: int, clients: int
) -> dict[str, Any]:
    """pgbench -n -c CLIENTS -j 1 -T DURATION -f script.sql, with per-transaction logging
    (-l) for the latency percentiles pgbench does not print itself."""
    script = f"{query.page_sql('postgresql', org_id)};\n{query.count_sql(org_id)};\n"
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
        script_path = Path(tmp) / f"{query.name}.sql"
        script_path.write_text(script)
        command = [
            "pgbench", "-n", "-c", str(clients), "-j", "1", "-T", str(duration), "-l",
            "-f", str(script_path),
            "-h", conninfo["host"], "-p", conninfo["port"], "-U", conninfo["user"],
            conninfo["dbname"],
        ]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed for {query.name}: {done.stderr.strip()}")
        tps = _TPS.search(done.stdout)
        latencies: list[float] = []
        for log in Path(tmp).glob("pgbench_log.*"):
            for line in log.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000)  # third column: latency in µs
    summary = _summary(latencies, float(duration))
    if tps is not None:
        summary["req_s"] = round(float(tps.group(1)), 2)
    return {"tool": f"pgbench -c {clients} -j 1", **summary}
