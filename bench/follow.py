"""Following changes at a million leads: the change feed, deep cursors and 304 polls.

- **Feed walk**: one client follows `GET /api/leads/changes?limit=1000` from the beginning
  through the largest organization on one keep-alive connection, as a sync would; leads/s
  (compare with export's).
- **Deep cursor**: page 1 of the default list against the page after page 10,000 reached by
  cursor, both by wrk with the answer cache off (every answer computed), so the ratio is
  what the keyset costs against the first page.
- **Conditional polls**: wrk on the feed's tip and on page 1, cached 200s against the same
  requests with `If-None-Match` (304s), three runs of each side alternated, medians compared.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from bench import http as bench_http

FEED_LIMIT = 1_000
DEEP_PAGE = 10_000


def _getter(base: str, key: str) -> Callable[[str, dict[str, str] | None], Any]:
    """GET over one keep-alive connection, opened again when the server closed it idle."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)

    def get(path: str, headers: dict[str, str] | None = None) -> Any:
        for attempt in (1, 2):
            try:
                conn.request("GET", path, headers={"X-API-KEY": key, **(headers or {})})
                response = conn.getresponse()
                body = response.read()
                return response.status, dict(response.getheaders()), body
            except (http.client.RemoteDisconnected, ConnectionError):
                conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return get


def feed_walk(base: str, key: str, expected: int) -> dict[str, Any]:
    """One follower from the beginning to the end, parsing every answer (with orjson, as a
    sync that cares about speed would; the time it spends parsing is reported apart)."""
    get = _getter(base, key)
    since = ""
    leads = pages = 0
    parsing = 0.0
    start = time.perf_counter()
    while True:
        path = f"/api/leads/changes?limit={FEED_LIMIT}"
        if since:
            path += f"&since={quote(since)}"
        status, _, raw = get(path, None)
        if status != 200:
            raise RuntimeError(f"feed answered {status}: {raw[:300]!r}")
        parsed = time.perf_counter()
        body = orjson.loads(raw)
        parsing += time.perf_counter() - parsed
        leads += len(body["data"])
        pages += 1
        since = body["meta"]["changes"]["next"]
        if not body["meta"]["changes"]["hasMore"]:
            break
    seconds = time.perf_counter() - start
    return {"leads": leads, "expected": expected, "pages": pages, "seconds": round(seconds, 2),
            "leads_per_s": round(leads / seconds), "limit": FEED_LIMIT,
            "client_parse_s": round(parsing, 2)}


def deep_cursor(cli: str, env: dict[str, str], workers: int, log: Path, key: str,
                org_leads: int, duration: int, connections: int) -> dict[str, Any]:
    """Page 1 against the page after page DEEP_PAGE (or the last but one, in a smaller
    organization) by cursor, the answer cache off."""
    deep_page = min(DEEP_PAGE, org_leads // 50 - 1)
    uncached = {**env, "LEADS_ANSWER_CACHE_MB": "0"}
    with bench_http.serving(cli, uncached, workers, log) as server:
        get = _getter(server.base, key)
        status, _, raw = get(f"/api/leads?limit=50&page={deep_page}", None)
        if status != 200:
            raise RuntimeError(f"page {deep_page} answered {status}")
        cursor = json.loads(raw)["meta"]["pagination"]["nextCursor"]
        if cursor is None:
            raise RuntimeError(f"no page after page {deep_page}")
        urls = {"page_1": "/api/leads?limit=50", "deep": f"/api/leads?cursor={quote(cursor)}"}
        results: dict[str, Any] = {}
        for name, path in urls.items():
            bench_http.run_wrk(server.base + path, key, duration=2, connections=connections)
            results[name] = bench_http.run_wrk(server.base + path, key, duration=duration,
                                               connections=connections)
            bench_http.settle(server, None)
    results["deep_page"] = deep_page + 1
    first, deep = results["page_1"], results["deep"]
    results["p50_ratio"] = round(deep["p50_ms"] / first["p50_ms"], 3) if first["p50_ms"] else None
    results["req_s_ratio"] = round(first["req_s"] / deep["req_s"], 3) if deep["req_s"] else None
    return results


def conditional_polls(server: bench_http.Server, key: str, duration: int, connections: int,
                      rounds: int = 3) -> dict[str, Any]:
    """Cached 200s against 304s, on the feed's tip and on page 1: `rounds` runs of each,
    alternated, and the median run of each side reported (one run each was within the
    machine's drift of the other). Each run also records the server's CPU time per answer
    (`server_cpu_us`): wrk, the server and the database share this machine's CPUs, so the
    rate of two paths that cost about the same drifts with whatever else runs, while the
    server's own work per answer holds steady."""
    base = server.base
    get = _getter(base, key)
    since = ""
    while True:  # the tip: follow the feed to its end (few pages: it is read already)
        path = "/api/leads/changes?limit=1000" + (f"&since={quote(since)}" if since else "")
        _, _, raw = get(path, None)
        body = json.loads(raw)
        since = body["meta"]["changes"]["next"]
        if not body["meta"]["changes"]["hasMore"]:
            break
    urls = {"feed_tip": f"/api/leads/changes?since={quote(since)}", "page_1": "/api/leads"}
    results: dict[str, Any] = {}
    for name, path in urls.items():
        status, headers, _ = get(path, None)
        tag = headers.get("ETag") or headers.get("etag")
        if status != 200 or not tag:
            raise RuntimeError(f"{path} answered {status} without an ETag")
        again, _, _ = get(path, {"If-None-Match": tag})
        if again != 304:
            raise RuntimeError(f"{path} with If-None-Match answered {again}, not 304")
        runs: dict[str, list[dict[str, Any]]] = {"cached_200": [], "not_modified_304": []}
        for round_ in range(rounds):
            # Alternated, and the first side changes each round: a drift of the machine
            # over the minute (another process, a checkpoint) then falls on both sides.
            sides = ["cached_200", "not_modified_304"]
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                headers = {"If-None-Match": tag} if side == "not_modified_304" else None
                cpu_before = bench_http.server_cpu_seconds(server)
                run = bench_http.run_wrk(base + path, key, duration=duration,
                                         connections=connections, headers=headers)
                cpu = bench_http.server_cpu_seconds(server) - cpu_before
                run["server_cpu_us"] = round(cpu / max(1, run["requests"]) * 1e6, 1)
                runs[side].append(run)
        cached, not_modified = (_median_run(runs[side]) for side in runs)
        cpu_us = {side: sorted(r["server_cpu_us"] for r in rs)[len(rs) // 2]
                  for side, rs in runs.items()}
        results[name] = {"cached_200": cached, "not_modified_304": not_modified,
                         "speedup": round(not_modified["req_s"] / cached["req_s"], 3),
                         "server_cpu_us": cpu_us,
                         "rounds": {side: [r["req_s"] for r in rs] for side, rs in runs.items()},
                         "rounds_server_cpu_us": {side: [r["server_cpu_us"] for r in rs]
                                                  for side, rs in runs.items()}}
    return results


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the middle one of an odd number)."""
    return sorted(runs, key=lambda run: run["req_s"])[len(runs) // 2]
