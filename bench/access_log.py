"""What the access log costs: the same server with LEADS_ACCESS_LOG=1 and =0.

    .venv/bin/python -m bench.access_log [--duration 10] [--rounds 3] [--out FILE]

Two measurements:

1. In process: the AccessLog middleware around a trivial ASGI app, called directly (no
   HTTP), logging JSON to a file: the microseconds one line adds to a request.
2. Over HTTP: `leads-api serve --workers 2` on an SQLite store of 2,000 leads, its stderr
   to a file (as a service manager would keep it), wrk -c32 against the cheapest answers
   there are (a list answer from the answer cache, and /api/check), log on and off in
   alternating rounds so that drift on the shared machine falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.http import run_wrk, serving
from leads_api.api.access_log import AccessLog, configure_access_log
from leads_api.lead import now_ms
from leads_api.sample import LeadSampler
from leads_api.store import open_store
from leads_api.store.tenants import create_key, create_organization
from leads_api.store.unit_of_work import insert_leads

PATHS = {"cached list": "/api/leads?limit=10&sort=value:desc", "check": "/api/check"}


def in_process(calls: int, log_file: Path) -> dict[str, float]:
    """Microseconds per request of a trivial app, bare and inside AccessLog."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def ignore(message: Any) -> None:
        return None

    async def nothing() -> Any:
        return {"type": "http.request", "body": b""}

    with log_file.open("w") as stream:
        logged = AccessLog(app, logger=configure_access_log("json", stream))

        async def loop(target: Any) -> float:
            started = time.perf_counter()
            for _ in range(calls):
                scope = {"type": "http", "method": "GET", "path": "/api/leads",
                         "query_string": b"", "headers": []}
                await target(scope, nothing, ignore)
            return (time.perf_counter() - started) / calls * 1e6

        bare = [asyncio.run(loop(app)) for _ in range(3)]
        with_log = [asyncio.run(loop(logged)) for _ in range(3)]
    return {"bare_us": round(min(bare), 2), "logged_us": round(min(with_log), 2),
            "line_us": round(min(with_log) - min(bare), 2)}


def seed(database: Path) -> str:
    store = open_store(f"sqlite:///{database}")
    with store.write() as conn:
        org = create_organization(conn, "logbench")
        rows = LeadSampler(seed=3).leads(2_000, now_ms=now_ms(), attribution_days=90)
        insert_leads(conn, org_id=org.id, rows=list(rows))
        key = create_key(conn, org)[1]
    store.dispose()
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/access-log/run.json"))
    options = parser.parse_args()
    cli = str(Path(sys.executable).with_name("leads-api"))
    work = Path(tempfile.mkdtemp(prefix="leads-logbench-"))
    result: dict[str, Any] = {"in_process": in_process(200_000, work / "inproc.log")}
    print(json.dumps(result["in_process"]), file=sys.stderr)
    key = seed(work / "leads.db")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"on": [], "off": []} for name in PATHS}
    for round_number in range(options.rounds):
        for state in ("off", "on") if round_number % 2 == 0 else ("on", "off"):
            env = {**os.environ, "LEADS_DATABASE_URL": f"sqlite:///{work / 'leads.db'}",
                   "LEADS_ACCESS_LOG": "1" if state == "on" else "0",
                   "LEADS_LOG_FORMAT": "json"}
            log = work / f"server-{state}.log"
            with serving(cli, env, 2, log) as server:
                for name, path in PATHS.items():
                    run_wrk(server.base + path, key, duration=2, connections=32)  # warm-up
                    measured = run_wrk(server.base + path, key, duration=options.duration,
                                       connections=32)
                    runs[name][state].append(measured)
                    print(f"round {round_number} log {state} {name}: "
                          f"{measured['req_s']} req/s p99 {measured['p99_ms']} ms",
                          file=sys.stderr)
    summary = {}
    for name, states in runs.items():
        summary[name] = {
            state: {"req_s_median": statistics.median(r["req_s"] for r in rs),
                    "p50_ms_median": statistics.median(r["p50_ms"] for r in rs),
                    "p99_ms_median": statistics.median(r["p99_ms"] for r in rs)}
            for state, rs in states.items()}
        on, off = summary[name]["on"]["req_s_median"], summary[name]["off"]["req_s_median"]
        summary[name]["cost_percent"] = round((off - on) / off * 100, 1)
    result.update({"summary": summary, "runs": runs, "duration_s": options.duration,
                   "rounds": options.rounds, "log_bytes_per_line": _bytes_per_line(work)})
    options.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def _bytes_per_line(work: Path) -> float:
    lines = [ln for ln in (work / "server-on.log").read_text().splitlines()
             if ln.startswith('{"ts"')]
    return round(sum(len(ln) + 1 for ln in lines) / max(1, len(lines)), 1)


if __name__ == "__main__":
    main()
