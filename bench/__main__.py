"""`python -m bench run ...` measures one backend; `python -m bench report` renders results;
`python -m bench soak ...` runs the mixed read/write soak on one backend; `python -m bench
protocol` measures what the HTTP limits cost.

    python -m bench run --backend sqlite --rows 1000000 --out bench/results/sqlite.json
    python -m bench run --backend postgres --quick --out /tmp/pg-quick.json
    python -m bench report
    python -m bench soak --backend sqlite --out bench/results/soak/sqlite.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import follow, http, load, machine, protocol, report, soak, sqlbase
from bench.generate import Dataset, dataset
from bench.queries import QUERIES, BenchQuery

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/leads_bench"
SOAK_PG_URL = "postgresql://postgres@127.0.0.1:5432/leads_bench_soak"
QUICK_ROWS, QUICK_DURATION = 20_000, 3


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _target(backend: str, workdir: Path, pg_url: str) -> load.Target:
    if backend == "sqlite":
        path = workdir / "sqlite" / "leads.db"
        return load.Target("sqlite", f"sqlite:///{path}", sqlite_path=path)
    parts = urlsplit(pg_url)
    if "bench" not in parts.path:
        # The run drops the database's public schema: never aim it at a shared database.
        raise SystemExit("--pg-url must name a benchmark database (with 'bench' in its name)")
    admin = urlunsplit(parts._replace(path="/postgres"))
    return load.Target(
        "postgres", pg_url, pg_conninfo=pg_url, pg_admin_conninfo=admin,
        pg_dbname=parts.path.lstrip("/"),
    )


def _pgbench_conninfo(pg_url: str) -> dict[str, str]:
    parts = urlsplit(pg_url)
    return {
        "host": parts.hostname or "127.0.0.1", "port": str(parts.port or 5432),
        "user": parts.username or "postgres", "dbname": parts.path.lstrip("/"),
    }


def _load(args: argparse.Namespace, target: load.Target, data: Dataset, cli: str,
          env: dict[str, str]) -> dict[str, Any]:
    say(f"resetting the {target.backend} database and migrating")
    load.reset(target)
    load.cli([cli, "migrate"], env)
    load.create_orgs(cli, env, data)
    ids = load.org_ids(target)
    say("floor: the same rows into a bare table")
    floor = load.floor(target, data, ids, args.workdir)
    say(f"floor: {floor['leads_per_s']:,} leads/s; the same with the service's indexes")
    indexed = load.floor(target, data, ids, args.workdir, indexed=True)
    say(f"indexed floor: {indexed['leads_per_s']:,} leads/s; importing through leads-api import")
    imported = load.import_all(cli, env, data)
    say(f"import: {imported['leads_per_s']:,} leads/s")
    analyzed = load.analyze(target)
    say(f"{analyzed['command']}: {analyzed['seconds']} s; exporting {data.largest.name}")
    exported = load.export(cli, env, data.largest, args.workdir / "export.jsonl")
    say(f"export: {exported['leads_per_s']:,} leads/s, peak RSS {exported['max_rss_mb']} MB")
    return {"import": imported, "floor": floor, "floor_indexed": indexed, "analyze": analyzed,
            "export": exported}


def _expected(target: load.Target, query: BenchQuery, org_id: int) -> tuple[int, list[str]]:
    if target.is_sqlite:
        assert target.sqlite_path is not None
        return sqlbase.expected_sqlite(target.sqlite_path, query, org_id)
    return sqlbase.expected_postgres(target.pg_conninfo, query, org_id)


def _check(server: http.Server, key: str, query: BenchQuery, total: int,
           ids: list[str]) -> tuple[str | None, float]:
    """Why the API's answer differs from the straightforward SQL's (or None), and how long
    the request took on an idle server."""
    status, body, seconds = http.get(server.base, query.path, key)
    if status != 200:
        return f"HTTP {status}: {body.get('error')}", seconds
    got = body["meta"]["pagination"]["total"]
    if got != total:
        return f"total {got}, SQL says {total}", seconds
    if [lead["id"] for lead in body["data"]] != ids:
        return "page ids differ from the SQL's", seconds
    return None, seconds


def _measure(args: argparse.Namespace, target: load.Target, data: Dataset, cli: str,
             env: dict[str, str], keys: dict[str, str]) -> list[dict[str, Any]]:
    ids = load.org_ids(target)
    chosen = [q for q in QUERIES if not args.only or q.name in args.only]
    results: list[dict[str, Any]] = []
    log = args.workdir / f"serve-{target.backend}.log"
    say(f"serving with {args.workers} workers (log {log})")
    pg = None if target.is_sqlite else target.pg_conninfo
    with http.serving(cli, env, args.workers, log) as server:
        http.settle(server, pg)
        for query in chosen:
            org = data.smallest if query.smallest_org else data.largest
            total, page_ids = _expected(target, query, ids[org.name])
            entry: dict[str, Any] = {
                "name": query.name, "title": query.title, "org": org.name,
                "org_leads": org.leads, "url": query.path, "total": total,
                "loadavg_before": round(os.getloadavg()[0], 2),
            }
            problem, seconds = _check(server, keys[org.name], query, total, page_ids)
            entry["single_request_ms"] = round(seconds * 1000, 1)
            if problem:
                say(f"{query.name}: API answer is wrong ({problem}); not measured")
                entry["error"] = problem
            else:
                duration = http.wrk_duration(
                    seconds, minimum=args.duration, maximum=args.max_duration,
                    connections=args.connections, workers=args.workers,
                )
                if args.warmup > 0:
                    warm = http.run_wrk(
                        server.base + query.path, keys[org.name],
                        duration=args.warmup, connections=args.connections,
                    )
                    entry["warmup"] = {"seconds": args.warmup, "req_s": warm["req_s"],
                                       "p99_ms": warm["p99_ms"], "max_ms": warm["max_ms"],
                                       "drain_s": http.settle(server, pg)}
                entry["api"] = http.run_wrk(
                    server.base + query.path, keys[org.name],
                    duration=duration, connections=args.connections,
                )
                api = entry["api"]
                api["drain_s"] = http.settle(server, pg)
                say(f"{query.name} API ({duration} s): {api['req_s']} req/s, p50 {api['p50_ms']} "
                    f"ms, p99 {api['p99_ms']} ms {api['errors'] or ''}; drained in "
                    f"{api['drain_s']} s")
            results.append(entry)
    for entry, query in zip(results, chosen, strict=True):
        org = data.smallest if query.smallest_org else data.largest
        if target.is_sqlite:
            assert target.sqlite_path is not None
            entry["sql"] = sqlbase.run_sqlite(
                target.sqlite_path, query, ids[org.name], args.duration
            )
        else:
            entry["sql"] = sqlbase.run_pgbench(
                _pgbench_conninfo(target.pg_conninfo), query, ids[org.name],
                args.duration, args.connections,
            )
        if "api" in entry and entry["sql"]["req_s"]:
            entry["api_over_sql"] = round(entry["api"]["req_s"] / entry["sql"]["req_s"], 3)
        say(f"{query.name} SQL: {entry['sql']['req_s']} req/s, p50 {entry['sql']['p50_ms']} ms")
    return results


def _follow(args: argparse.Namespace, target: load.Target, data: Dataset, cli: str,
            env: dict[str, str], keys: dict[str, str]) -> dict[str, Any]:
    """The change feed, a deep cursor and 304 polls against the largest organization."""
    key = keys[data.largest.name]
    log = args.workdir / f"serve-{target.backend}-follow.log"
    pg = None if target.is_sqlite else target.pg_conninfo
    with http.serving(cli, env, args.workers, log) as server:
        http.settle(server, pg)
        walk = follow.feed_walk(server.base, key, data.largest.leads)
        say(f"feed walk: {walk['leads']:,} leads in {walk['seconds']} s "
            f"({walk['leads_per_s']:,} leads/s)")
        polls = follow.conditional_polls(server.base, key, args.duration, args.connections)
        say("polls: " + ", ".join(f"{name} {p['cached_200']['req_s']} -> "
                                  f"{p['not_modified_304']['req_s']} req/s (304)"
                                  for name, p in polls.items()))
    deep = follow.deep_cursor(cli, env, args.workers, log, key, data.largest.leads,
                              args.duration, args.connections)
    say(f"deep cursor: page 1 p50 {deep['page_1']['p50_ms']} ms, page {deep['deep_page']:,} "
        f"by cursor {deep['deep']['p50_ms']} ms")
    return {"feed_walk": walk, "conditional": polls, "deep_cursor": deep}


def _flat_growth(queries: list[dict[str, Any]]) -> dict[str, Any] | None:
    by_name = {q["name"]: q for q in queries if "api" in q}
    if "Q1" not in by_name or "Q1-small" not in by_name:
        return None
    large, small = by_name["Q1"], by_name["Q1-small"]
    return {
        "large_org_leads": large["org_leads"], "small_org_leads": small["org_leads"],
        "q1_p50_ms_large": large["api"]["p50_ms"], "q1_p50_ms_small": small["api"]["p50_ms"],
        "ratio": round(large["api"]["p50_ms"] / small["api"]["p50_ms"], 2)
        if small["api"]["p50_ms"] else None,
    }


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.rows = args.rows or QUICK_ROWS
        args.duration = args.duration or QUICK_DURATION
    args.rows = args.rows or 1_000_000
    args.duration = args.duration or 10
    tools = ["wrk"] + (["pgbench"] if args.backend == "postgres" else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if not Path("/usr/bin/time").exists():
        missing.append("time")
    if missing:
        say(f"missing {', '.join(missing)}: apt-get install -y {' '.join(missing)}")
        return 2
    cli = str(Path(sys.executable).with_name("leads-api"))
    target = _target(args.backend, args.workdir, args.pg_url)
    env = {**os.environ, "LEADS_DATABASE_URL": target.url}
    started = time.perf_counter()
    say(f"dataset: {args.rows:,} leads, seed {args.seed}")
    data = dataset(args.workdir / "data", args.rows, args.seed)
    result: dict[str, Any] = {
        "label": args.label, "backend": args.backend,
        "code": {**machine.code(), **({"note": args.code_note} if args.code_note else {})},
        "machine": machine.facts(None if target.is_sqlite else target.pg_admin_conninfo),
        "params": {
            "rows": args.rows, "seed": args.seed, "duration_s": args.duration,
            "workers": args.workers, "connections": args.connections, "quick": args.quick,
            "max_duration_s": args.max_duration, "warmup_s": args.warmup,
        },
        "organizations": [{"name": o.name, "leads": o.leads} for o in data.orgs],
    }
    if args.skip_load:
        held = load.lead_counts(target)
        wanted = {o.name: o.leads for o in data.orgs}
        if any(held.get(name) != n for name, n in wanted.items()):
            say(f"--skip-load: the database holds {held}, this run needs {wanted}")
            return 2
        keys = {o.name: load.new_key(cli, env, o.name) for o in (data.largest, data.smallest)}
    else:
        result["load"] = _load(args, target, data, cli, env)
        keys = {o.name: load.new_key(cli, env, o.name) for o in (data.largest, data.smallest)}
    result["queries"] = _measure(args, target, data, cli, env, keys)
    if not args.skip_follow:
        result["follow"] = _follow(args, target, data, cli, env, keys)
    result["flat_growth"] = _flat_growth(result["queries"])
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out} in {result['elapsed_s']} s")
    return 1 if any("error" in q for q in result["queries"]) else 0


def run_soak(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        say("missing wrk: apt-get install -y wrk")
        return 2
    cli = str(Path(sys.executable).with_name("leads-api"))
    target = _target(args.backend, args.workdir, args.pg_url)
    env = {**os.environ, "LEADS_DATABASE_URL": target.url}
    data = dataset(args.workdir / "data", args.rows, args.seed)
    result: dict[str, Any] = {
        "label": args.label, "backend": args.backend, "code": machine.code(),
        "machine": machine.facts(None if target.is_sqlite else target.pg_admin_conninfo),
        "params": {"rows": args.rows, "org_leads": data.largest.leads, "seed": args.seed,
                   "duration_s": args.duration, "warmup_s": args.warmup,
                   "workers": args.workers, "connections": args.connections},
    }
    if not args.skip_load:
        say(f"loading {args.rows:,} leads into a fresh {target.backend} database")
        load.reset(target)
        load.cli([cli, "migrate"], env)
        load.create_orgs(cli, env, data)
        result["import"] = load.import_all(cli, env, data)
        load.analyze(target)
    key = load.new_key(cli, env, data.largest.name)
    log = args.workdir / f"soak-{target.backend}.log"
    say(f"serving with {args.workers} workers (log {log})")
    with http.serving(cli, env, args.workers, log) as server:
        http.settle(server, None if target.is_sqlite else target.pg_conninfo)
        result.update(soak.soak(
            server, key, duration=args.duration, warmup=args.warmup,
            connections=args.connections, seed=args.seed, rss_every=args.rss_every, say=say,
        ))
    measured = result["soak"]
    say(f"soak: {measured['req_s']} req/s, p50 {measured['p50_ms']} ms, p99 "
        f"{measured['p99_ms']} ms, max {measured['max_ms']} ms, errors {measured['errors']}; "
        f"RSS {result['rss']['after_warmup_mb']} -> {result['rss']['at_end_mb']} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_p = commands.add_parser("run", help="load one backend and measure the query mix")
    run_p.add_argument("--backend", choices=("sqlite", "postgres"), required=True)
    run_p.add_argument("--rows", type=int, help="leads in all (default 1,000,000)")
    run_p.add_argument("--duration", type=int, help="seconds per measurement (default 10)")
    run_p.add_argument("--max-duration", type=int, default=120,
                       help="longest wrk run, for queries too slow for --duration (default 120)")
    run_p.add_argument("--warmup", type=int, default=2,
                       help="seconds of unrecorded load before each API measurement, so "
                       "every worker has started up and met the query (default 2; 0: none)")
    run_p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="leads-api serve --workers (default: the CPU count)")
    run_p.add_argument("--connections", type=int, default=32,
                       help="wrk connections and pgbench clients (default 32)")
    run_p.add_argument("--seed", type=int, default=1)
    run_p.add_argument("--quick", action="store_true",
                       help=f"{QUICK_ROWS:,} leads, {QUICK_DURATION} s per measurement")
    run_p.add_argument("--out", type=Path, help="result JSON (default bench/results/BACKEND.json)")
    run_p.add_argument("--label", default="Latest run",
                       help="heading the report groups this result under")
    run_p.add_argument("--code-note", help="what the measured code is, for the report")
    run_p.add_argument("--workdir", type=Path, default=Path("/tmp/leads-bench"),
                       help="generated data, the SQLite file, logs (default /tmp/leads-bench)")
    run_p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
                       help=f"benchmark database, created if missing (default {DEFAULT_PG_URL})")
    run_p.add_argument("--skip-load", action="store_true",
                       help="measure the database as the last run left it")
    run_p.add_argument("--only", type=lambda s: s.split(","), help="queries to run: Q1,Q6")
    run_p.add_argument("--skip-follow", action="store_true",
                       help="leave out the change feed, deep cursor and 304 measurements")
    report_p = commands.add_parser("report", help="results JSON -> RESULTS.md and PNG charts")
    report_p.add_argument("--results", type=Path, default=report.RESULTS_DIR)
    report_p.add_argument("--markdown", type=Path, default=report.RESULTS_MD)
    soak_p = commands.add_parser("soak", help="the mixed read/write soak on one backend")
    soak_p.add_argument("--backend", choices=("sqlite", "postgres"), required=True)
    soak_p.add_argument("--rows", type=int, default=100_000,
                        help="leads in all; the largest organization gets 60 %% (default 100,000)")
    soak_p.add_argument("--duration", type=int, default=300, help="measured seconds (300)")
    soak_p.add_argument("--warmup", type=int, default=30,
                        help="seconds of the same mix before, not measured (30)")
    soak_p.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    soak_p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="leads-api serve --workers (default: the CPU count)")
    soak_p.add_argument("--rss-every", type=float, default=5.0,
                        help="seconds between samples of the server's memory (5)")
    soak_p.add_argument("--seed", type=int, default=1)
    soak_p.add_argument("--label", default="Soak")
    soak_p.add_argument("--out", type=Path, help="result JSON (default "
                        "bench/results/soak/BACKEND.json)")
    soak_p.add_argument("--workdir", type=Path, default=Path("/tmp/leads-bench-soak"),
                        help="data, the SQLite file, logs (default /tmp/leads-bench-soak)")
    # Its own database: the soak drops its public schema, and `bench run` may use leads_bench.
    soak_p.add_argument("--pg-url", default=os.environ.get("BENCH_SOAK_PG_URL", SOAK_PG_URL))
    soak_p.add_argument("--skip-load", action="store_true",
                        help="soak the database as the last soak left it")
    protocol_p = commands.add_parser("protocol", help="what the HTTP limits cost (uvicorn)")
    protocol_p.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    protocol_p.add_argument("--rounds", type=int, default=2, help="rounds of both (2)")
    protocol_p.add_argument("--workdir", type=Path, default=Path("/tmp/leads-bench-protocol"))
    protocol_p.add_argument("--out", type=Path,
                            default=Path("bench/results/protocol/protocol.json"))
    args = parser.parse_args(argv)
    if args.command == "protocol":
        measured = protocol.measure(args.workdir, duration=args.duration, rounds=args.rounds,
                                    say=say)
        measured["code"] = machine.code()
        measured["machine"] = machine.facts(None)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(measured, indent=2) + "\n")
        say(f"wrote {args.out}: {measured['summary']}")
        return 0
    if args.command == "soak":
        args.out = args.out or Path("bench/results/soak") / f"{args.backend}.json"
        return run_soak(args)
    if args.command == "report":
        report.render(args.results, args.markdown)
        return 0
    args.out = args.out or Path("bench/results") / f"{args.backend}.json"
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
