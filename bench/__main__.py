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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import follow, fresh, http, load, machine, protocol, report, soak, sqlbase, writes
from bench.generate import Dataset, dataset
from bench.queries import QUERIES, BenchQuery
from leads_api.api.ceiling import CEILING_PATH

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/leads_bench"
SOAK_PG_URL = "postgresql://postgres@127.0.0.1:5432/leads_bench_soak"
WRITES_PG_URL = "postgresql://postgres@127.0.0.1:5432/leads_bench_writes"
FRESH_RATE = 3000  # requests a second each fresh-question list (and the PATCHed leads) allow for
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
    say(f"{analyzed['command']}: {analyzed['seconds']} s")
    exported = _export(args, target, data, cli, env, ids)
    return {"import": imported, "floor": floor, "floor_indexed": indexed, "analyze": analyzed,
            "export": exported}


def _export(args: argparse.Namespace, target: load.Target, data: Dataset, cli: str,
            env: dict[str, str], ids: dict[str, int]) -> dict[str, Any]:
    """`leads-api export` of the largest organization, and its floor right after."""
    say(f"exporting {data.largest.name}")
    exported = load.export(cli, env, data.largest, args.workdir / "export.jsonl")
    say(f"export: {exported['leads_per_s']:,} leads/s, peak RSS {exported['max_rss_mb']} MB")
    export_floor = load.export_floor(target, ids[data.largest.name])
    if export_floor["leads"] != data.largest.leads:
        raise RuntimeError(f"the export floor read {export_floor['leads']} leads")
    exported["floor"] = export_floor
    exported["share_of_floor"] = round(exported["leads_per_s"] / export_floor["leads_per_s"], 3)
    say(f"export floor ({export_floor['method']}): {export_floor['leads_per_s']:,} leads/s; "
        f"export is {exported['share_of_floor']:.0%} of it")
    return exported


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
             env: dict[str, str], keys: dict[str, str], lists: FreshLists,
             timings: dict[str, float]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ids = load.org_ids(target)
    chosen = [q for q in QUERIES if not args.only or q.name in args.only]
    results: list[dict[str, Any]] = []
    log = args.workdir / f"serve-{target.backend}.log"
    say(f"serving with {args.workers} workers (log {log})")
    pg = None if target.is_sqlite else target.pg_conninfo
    # The ceiling's route (leads_api/api/ceiling.py) beside the real ones, in the same server.
    served_env = {**env, "LEADS_BENCH_CEILING": data.largest.name}
    with http.serving(cli, served_env, args.workers, log) as server:
        http.settle(server, pg)
        clock = time.perf_counter()
        ceiling = [_ceiling(args, server, pg)]
        timings["ceiling_s"] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
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
        timings["cached_s"] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        fresh_result = _fresh(args, target, data, server, keys, lists, ids, pg)
        timings["fresh_s"] = round(time.perf_counter() - clock, 1)
        ceiling.append(_ceiling(args, server, pg))
    fresh_result["ceiling"] = _ceiling_summary(ceiling)
    for shape in [*results, *fresh_result["shapes"], fresh_result.get("mixed")]:
        if shape and "api" in shape and fresh_result["ceiling"]["req_s"]:
            shape["share_of_ceiling"] = round(
                shape["api"]["req_s"] / fresh_result["ceiling"]["req_s"], 3)
    clock = time.perf_counter()
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
    timings["sql_s"] = round(time.perf_counter() - clock, 1)
    return results, fresh_result


@dataclass(frozen=True)
class FreshLists:
    """Per shape, the URLs of its own run (the first `warm` of them for the check and the
    warm-up); and the interleaved list of all shapes for the mixed runs."""

    shapes: dict[str, list[BenchQuery]]
    warm: dict[str, int]
    mixed: list[BenchQuery]
    mixed_warm: int


def _fresh_lists(args: argparse.Namespace, data: Dataset, names: list[str]) -> FreshLists:
    """Enough distinct URLs for each run at up to --fresh-rate req/s (a run that goes
    faster repeats URLs, and says how many)."""
    seconds = args.duration + args.warmup
    own = args.fresh_rate * seconds
    mixed_share = -(-args.fresh_rate * seconds // max(1, len(names)))
    shapes, warm, mixed_parts = {}, {}, []
    for name in names:
        org = data.smallest if name == "Q1-small" else data.largest
        urls = fresh.fresh_urls(name, args.seed, own + mixed_share, org.leads)
        split = len(urls) * own // (own + mixed_share)
        shapes[name], part = urls[:split], urls[split:]
        head = max(args.fresh_checks, args.fresh_rate * args.warmup)
        warm[name] = min(len(shapes[name]) // 4, head)
        mixed_parts.append(part)
    mixed = fresh.interleave(mixed_parts)
    return FreshLists(shapes, warm, mixed, min(len(mixed) // 4, args.fresh_rate * args.warmup))


def _entries(queries: list[BenchQuery], data: Dataset,
             keys: dict[str, str]) -> list[tuple[str, str]]:
    return [(keys[data.smallest.name if q.smallest_org else data.largest.name], q.path)
            for q in queries]


def _ceiling(args: argparse.Namespace, server: http.Server, pg: str | None) -> dict[str, Any]:
    url = server.base + CEILING_PATH
    if args.warmup > 0:
        http.run_wrk(url, "", duration=args.warmup, connections=args.connections)
    measured = http.run_wrk(url, "", duration=args.duration, connections=args.connections)
    measured["drain_s"] = http.settle(server, pg)
    measured["loadavg_before"] = round(os.getloadavg()[0], 2)
    say(f"ceiling ({CEILING_PATH}): {measured['req_s']} req/s, p99 {measured['p99_ms']} ms, "
        f"{measured['bytes_per_response']:,} bytes an answer")
    return measured


def _ceiling_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["req_s"] for r in runs]
    return {"req_s": round(sum(rates) / len(rates), 2), "runs": runs,
            "spread": round((max(rates) - min(rates)) / max(rates), 3) if max(rates) else 0}


def _check_sample(target: load.Target, server: http.Server, keys: dict[str, str],
                  data: Dataset, ids: dict[str, int], sample: list[BenchQuery],
                  ) -> tuple[int, str | None]:
    """How many of `sample` were checked, and the first difference from the SQL (or None)."""
    for query in sample:
        org = data.smallest if query.smallest_org else data.largest
        total, page_ids = _expected(target, query, ids[org.name])
        problem, _ = _check(server, keys[org.name], query, total, page_ids)
        if problem:
            return len(sample), f"{query.path}: {problem}"
    return len(sample), None


def _fresh_run(args: argparse.Namespace, server: http.Server, entries: list[tuple[str, str]],
               warm: int, pg: str | None) -> dict[str, Any]:
    """A warm-up through the first `warm` entries, then the measured run from where the
    warm-up stopped."""
    out: dict[str, Any] = {}
    start = 0
    if args.warmup > 0:
        warmup = http.run_wrk_list(server.base, entries[:max(1, warm)], start=0,
                                   duration=args.warmup, connections=args.connections)
        start = min(len(entries) - 1, max(warm, warmup["sent"]))
        out["warmup"] = {"seconds": args.warmup, "req_s": warmup["req_s"],
                         "p99_ms": warmup["p99_ms"], "sent": warmup["sent"],
                         "drain_s": http.settle(server, pg)}
    out["api"] = http.run_wrk_list(server.base, entries, start=start, duration=args.duration,
                                   connections=args.connections)
    out["api"]["drain_s"] = http.settle(server, pg)
    return out


def _fresh(args: argparse.Namespace, target: load.Target, data: Dataset, server: http.Server,
           keys: dict[str, str], lists: FreshLists, ids: dict[str, int],
           pg: str | None) -> dict[str, Any]:
    """Each shape's fresh URLs (a sample checked against the SQL first), then all at once."""
    shapes: list[dict[str, Any]] = []
    for name, queries in lists.shapes.items():
        org = data.smallest if name == "Q1-small" else data.largest
        warm = lists.warm[name]
        checked, problem = _check_sample(
            target, server, keys, data, ids,
            list(fresh.sample(queries[:warm], args.seed, args.fresh_checks)))
        entry: dict[str, Any] = {
            "name": name, "title": queries[0].title, "org": org.name, "urls": len(queries),
            "example": queries[warm].path if warm < len(queries) else queries[0].path,
            "checked": checked, "loadavg_before": round(os.getloadavg()[0], 2),
        }
        if problem:
            entry["error"] = problem
            say(f"fresh {name}: API answer is wrong ({problem}); not measured")
        else:
            entry.update(_fresh_run(args, server, _entries(queries, data, keys), warm, pg))
            api = entry["api"]
            say(f"fresh {name} ({len(queries):,} URLs, {checked} checked): {api['req_s']} req/s, "
                f"p50 {api['p50_ms']} ms, p99 {api['p99_ms']} ms, repeats {api['repeats']} "
                f"{api['errors'] or ''}")
        shapes.append(entry)
    result: dict[str, Any] = {"shapes": shapes, "checks_per_shape": args.fresh_checks}
    if all("error" not in s for s in shapes) and lists.mixed:
        mixed = _entries(lists.mixed, data, keys)
        entry = {"name": "mixed", "title": "all shapes, interleaved", "urls": len(mixed),
                 "loadavg_before": round(os.getloadavg()[0], 2),
                 **_fresh_run(args, server, mixed, lists.mixed_warm, pg)}
        api = entry["api"]
        say(f"fresh mixed ({len(mixed):,} URLs): {api['req_s']} req/s, p99 {api['p99_ms']} ms, "
            f"repeats {api['repeats']}")
        result["mixed"] = entry
    return result


def _workers_curve(args: argparse.Namespace, target: load.Target, data: Dataset, cli: str,
                   env: dict[str, str], keys: dict[str, str],
                   lists: FreshLists) -> list[dict[str, Any]]:
    """The fresh mixed run with each worker count, each on a server of its own."""
    pg = None if target.is_sqlite else target.pg_conninfo
    mixed = _entries(lists.mixed, data, keys)
    curve = []
    for workers in args.workers_curve:
        log = args.workdir / f"serve-{target.backend}-workers{workers}.log"
        with http.serving(cli, env, workers, log) as server:
            http.settle(server, pg)
            run = _fresh_run(args, server, mixed, lists.mixed_warm, pg)
        api = run["api"]
        say(f"workers {workers}: fresh mixed {api['req_s']} req/s, p99 {api['p99_ms']} ms, "
            f"repeats {api['repeats']}")
        curve.append({"workers": workers, **run})
    return curve


WRITES_ORG = "writes"  # creates land here, so the dataset's organizations keep their counts


def _writes(args: argparse.Namespace, target: load.Target, data: Dataset, cli: str,
            env: dict[str, str], keys: dict[str, str]) -> dict[str, Any]:
    """Creates and PATCHes over HTTP, without and then with a webhook subscription (to a
    loopback port nobody listens on: every event still gets its outbox row in the write's
    transaction; deliveries fail and back off). Creates go into an organization of their
    own (the same table and indexes; the dataset's organizations keep their counts, so
    --skip-load still finds what it loaded); PATCHes change distinct leads of the largest."""
    org = data.largest
    ids = load.org_ids(target)
    if WRITES_ORG not in ids:
        load.cli([cli, "orgs", "create", WRITES_ORG], env)
        ids = load.org_ids(target)
    targets = {"create": (WRITES_ORG, load.new_key(cli, env, WRITES_ORG)),
               "patch": (org.name, keys[org.name])}
    pg = None if target.is_sqlite else target.pg_conninfo
    served = {**env, "LEADS_WEBHOOK_ALLOW_PRIVATE": "1"}
    patch_ids = writes.lead_ids(target, ids[org.name],
                                min(org.leads, args.fresh_rate * args.duration))
    log = args.workdir / f"serve-{target.backend}-writes.log"
    out: dict[str, Any] = {"connections": args.connections, "creates_into": WRITES_ORG,
                           "patches_of": org.name}
    with http.serving(cli, served, args.workers, log) as server:
        http.settle(server, pg)
        for subscribed in (False, True):
            if subscribed:
                for name in (WRITES_ORG, org.name):
                    writes.subscribe(cli, served, name,
                                     f"http://127.0.0.1:{http.free_port()}/hook")
            label = "with_webhook" if subscribed else "without_webhook"
            runs: dict[str, Any] = {}
            for kind in ("create", "patch"):
                org_name, key = targets[kind]
                runs[kind] = writes.run(
                    server.base, key, target, ids[org_name], kind=kind,
                    duration=args.duration, connections=args.connections, patch_ids=patch_ids,
                    settle=lambda server=server: http.settle(server, pg),
                )
                if subscribed and kind == "create":  # its deliveries' first attempts first
                    runs[kind]["deliveries_quiet_s"] = writes.deliveries_quiet(
                        target, horizon_s=args.duration + 10)
                    http.settle(server, pg)
                r = runs[kind]
                name = kind.replace("patch", "PATCH") + "s " + label.replace("_", " ")
                say(f"{name}: {r['req_s']} /s, p99 {r['p99_ms']} ms, "
                    f"{r['acknowledged']:,} acknowledged, check "
                    f"{'ok' if r['check']['ok'] else r['check']['problems']}")
            out[label] = runs
    for name in (WRITES_ORG, org.name):
        writes.unsubscribe_all(cli, served, target, name, ids[name])
    return out


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
        polls = follow.conditional_polls(server, key, args.duration, args.connections)
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
    timings: dict[str, float] = {}
    say(f"dataset: {args.rows:,} leads, seed {args.seed}")
    data = dataset(args.workdir / "data", args.rows, args.seed)
    timings["dataset_s"] = round(time.perf_counter() - started, 1)
    result: dict[str, Any] = {
        "label": args.label, "backend": args.backend,
        "code": {**machine.code(), **({"note": args.code_note} if args.code_note else {})},
        "machine": machine.facts(None if target.is_sqlite else target.pg_admin_conninfo),
        "params": {
            "rows": args.rows, "seed": args.seed, "duration_s": args.duration,
            "workers": args.workers, "connections": args.connections, "quick": args.quick,
            "max_duration_s": args.max_duration, "warmup_s": args.warmup,
            "fresh_rate": args.fresh_rate, "fresh_checks": args.fresh_checks,
            "workers_curve": args.workers_curve,
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
        clock = time.perf_counter()
        result["load"] = _load(args, target, data, cli, env)
        timings["load_s"] = round(time.perf_counter() - clock, 1)
        keys = {o.name: load.new_key(cli, env, o.name) for o in (data.largest, data.smallest)}
    names = [q.name for q in QUERIES if not args.only or q.name in args.only]
    lists = _fresh_lists(args, data, names)
    result["queries"], result["fresh"] = _measure(args, target, data, cli, env, keys, lists,
                                                  timings)
    if args.workers_curve:
        clock = time.perf_counter()
        result["workers_curve"] = _workers_curve(args, target, data, cli, env, keys, lists)
        timings["workers_curve_s"] = round(time.perf_counter() - clock, 1)
    if not args.skip_follow:
        clock = time.perf_counter()
        result["follow"] = _follow(args, target, data, cli, env, keys)
        timings["follow_s"] = round(time.perf_counter() - clock, 1)
    if not args.skip_writes:  # last: the writes change the organization's leads
        clock = time.perf_counter()
        result["writes"] = _writes(args, target, data, cli, env, keys)
        timings["writes_s"] = round(time.perf_counter() - clock, 1)
    result["flat_growth"] = _flat_growth(result["queries"])
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["timings"] = timings
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say("timings: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items()))
    say(f"wrote {args.out} in {result['elapsed_s']} s")
    failed = any("error" in q for q in [*result["queries"], *result["fresh"]["shapes"]])
    failed = failed or any(not r["check"]["ok"] for runs in result.get("writes", {}).values()
                           if isinstance(runs, dict) for r in runs.values())
    return 1 if failed else 0


def _load_fresh(target: load.Target, data: Dataset, cli: str, env: dict[str, str]
                ) -> dict[str, Any]:
    """The dataset imported into an emptied database, through the CLI; the import's figures."""
    say(f"loading {data.rows:,} leads into a fresh {target.backend} database")
    load.reset(target)
    load.cli([cli, "migrate"], env)
    load.create_orgs(cli, env, data)
    imported = load.import_all(cli, env, data)
    load.analyze(target)
    return imported


@dataclass
class _OneBackend:
    """What the one-backend commands (writes, soak) start from."""

    cli: str
    target: load.Target
    env: dict[str, str]
    data: Dataset
    result: dict[str, Any]  # the result's head: what ran, where, with which parameters


def _one_backend(args: argparse.Namespace, **params: Any) -> _OneBackend | None:
    """wrk on the path, the backend's target and the dataset; None (said why) without wrk."""
    if shutil.which("wrk") is None:
        say("missing wrk: apt-get install -y wrk")
        return None
    cli = str(Path(sys.executable).with_name("leads-api"))
    target = _target(args.backend, args.workdir, args.pg_url)
    data = dataset(args.workdir / "data", args.rows, args.seed)
    result: dict[str, Any] = {
        "label": args.label, "backend": args.backend, "code": machine.code(),
        "machine": machine.facts(None if target.is_sqlite else target.pg_admin_conninfo),
        "params": {"rows": args.rows, "seed": args.seed, "duration_s": args.duration,
                   "workers": args.workers, "connections": args.connections, **params},
    }
    env = {**os.environ, "LEADS_DATABASE_URL": target.url}
    return _OneBackend(cli, target, env, data, result)


def run_writes(args: argparse.Namespace) -> int:
    """The write path alone (creates and PATCHes over HTTP, without and with a webhook
    subscription, bench/writes.py) on a fresh load of --rows: quicker than a whole run, so
    two commits can be measured alternately in one session."""
    run = _one_backend(args)
    if run is None:
        return 2
    cli, target, env, data, result = run.cli, run.target, run.env, run.data, run.result
    result["import"] = _load_fresh(target, data, cli, env)
    keys = {o.name: load.new_key(cli, env, o.name) for o in (data.largest, data.smallest)}
    result["writes"] = _writes(args, target, data, cli, env, keys)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")
    checks = [r["check"]["ok"] for runs in result["writes"].values() if isinstance(runs, dict)
              for r in runs.values()]
    return 0 if all(checks) else 1


def run_follow(args: argparse.Namespace) -> int:
    """Following changes alone: walks of the change feed through the largest organization
    (issue 9: >= 50,000 leads/s at limit=1000), its export with the export floor beside
    it, and the 304 polls against cached 200s, on a fresh load of --rows: quicker than a
    whole run, for comparing commits."""
    run = _one_backend(args, rounds=args.rounds)
    if run is None:
        return 2
    cli, target, env, data, result = run.cli, run.target, run.env, run.data, run.result
    result["params"]["org_leads"] = data.largest.leads
    result["import"] = _load_fresh(target, data, cli, env)
    result["export"] = _export(args, target, data, cli, env, load.org_ids(target))
    key = load.new_key(cli, env, data.largest.name)
    log = args.workdir / f"serve-{target.backend}-follow.log"
    walks = []
    with http.serving(cli, env, args.workers, log) as server:
        http.settle(server, None if target.is_sqlite else target.pg_conninfo)
        for n in range(args.rounds):
            walk = follow.feed_walk(server.base, key, data.largest.leads)
            say(f"feed walk {n + 1}: {walk['leads']:,} leads in {walk['seconds']} s "
                f"({walk['leads_per_s']:,} leads/s, the client parsing {walk['client_parse_s']} s)")
            walks.append(walk)
        polls = follow.conditional_polls(server, key, args.duration, args.connections)
        say("polls: " + ", ".join(f"{name} {p['cached_200']['req_s']} -> "
                                  f"{p['not_modified_304']['req_s']} req/s (304), server CPU "
                                  f"{p['server_cpu_us']['cached_200']} -> "
                                  f"{p['server_cpu_us']['not_modified_304']} us an answer"
                                  for name, p in polls.items()))
    result["feed_walks"] = walks
    result["conditional"] = polls
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")
    return 0 if all(w["leads"] == w["expected"] for w in walks) else 1


def run_soak(args: argparse.Namespace) -> int:
    run = _one_backend(args)
    if run is None:
        return 2
    cli, target, env, data, result = run.cli, run.target, run.env, run.data, run.result
    result["params"].update(org_leads=data.largest.leads, warmup_s=args.warmup)
    if not args.skip_load:
        result["import"] = _load_fresh(target, data, cli, env)
    key = load.new_key(cli, env, data.largest.name)
    log = args.workdir / f"soak-{target.backend}.log"
    say(f"serving with {args.workers} workers (log {log})")
    with http.serving(cli, env, args.workers, log) as server:
        http.settle(server, None if target.is_sqlite else target.pg_conninfo)
        result.update(soak.soak(
            server, key, duration=args.duration, warmup=args.warmup,
            connections=args.connections, seed=args.seed, rss_every=args.rss_every, say=say,
            log=log,
        ))
    measured = result["soak"]
    say(f"soak: {measured['req_s']} req/s, p50 {measured['p50_ms']} ms, p99 "
        f"{measured['p99_ms']} ms, max {measured['max_ms']} ms, errors {measured['errors']}; "
        f"RSS {result['rss']['after_warmup_mb']} -> {result['rss']['at_end_mb']} MB")
    for route, times in result.get("by_route", {}).items():
        say(f"  {route}: {times['requests']} answers, server p50 {times['p50_ms']} ms, "
            f"p99 {times['p99_ms']} ms, max {times['max_ms']} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")
    return 0


def _one_backend_command(commands: Any, name: str, *, help: str, rows: int, label: str,
                         workdir: str, pg_url: str) -> argparse.ArgumentParser:
    """A one-backend command's parser (writes, follow) with the arguments they share."""
    command: argparse.ArgumentParser = commands.add_parser(name, help=help)
    command.add_argument("--backend", choices=("sqlite", "postgres"), required=True)
    command.add_argument("--rows", type=int, default=rows, help=f"leads loaded first "
                         f"({rows:,}; the largest organization gets 60 %%)")
    command.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                         help="leads-api serve --workers (default: the CPU count)")
    command.add_argument("--seed", type=int, default=1)
    command.add_argument("--label", default=label)
    command.add_argument("--out", type=Path,
                         help=f"result JSON (default bench/results/{name}/BACKEND.json)")
    command.add_argument("--workdir", type=Path, default=Path(workdir))
    command.add_argument("--pg-url", default=pg_url)
    return command


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
    run_p.add_argument("--skip-writes", action="store_true",
                       help="leave out the creates and PATCHes over HTTP")
    run_p.add_argument("--fresh-rate", type=int, default=FRESH_RATE,
                       help="req/s each fresh list is long enough for without repeating a "
                       "URL (default 3000; faster runs repeat, and say how often)")
    run_p.add_argument("--fresh-checks", type=int, default=20,
                       help="URLs of each fresh shape checked against the SQL first (20)")
    run_p.add_argument("--workers-curve", type=lambda s: [int(w) for w in s.split(",")],
                       help="also run the fresh mix on servers of these worker counts: 1,2,4")
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
    writes_p = _one_backend_command(
        commands, "writes", help="creates and PATCHes over HTTP on one backend",
        rows=100_000, label="Writes", workdir="/tmp/leads-bench-writes",
        pg_url=os.environ.get("BENCH_WRITES_PG_URL", WRITES_PG_URL))
    writes_p.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    writes_p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    follow_p = _one_backend_command(
        commands, "follow", help="feed walks and export on one backend",
        rows=200_000, label="Following", workdir="/tmp/leads-bench-follow",
        pg_url=os.environ.get("BENCH_WRITES_PG_URL", WRITES_PG_URL))
    follow_p.add_argument("--rounds", type=int, default=3, help="feed walks, one after another (3)")
    follow_p.add_argument("--duration", type=int, default=10,
                          help="seconds per run of the 304 polls (10)")
    follow_p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
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
    if args.command == "writes":
        args.out = args.out or Path("bench/results/writes") / f"{args.backend}.json"
        args.fresh_rate = FRESH_RATE  # how many of the largest organization's leads to PATCH
        return run_writes(args)
    if args.command == "follow":
        args.out = args.out or Path("bench/results/follow") / f"{args.backend}.json"
        return run_follow(args)
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
