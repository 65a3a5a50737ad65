"""The soak: a busy day's mix of reads and writes for minutes, with the server's memory watched.

`python -m bench soak --backend sqlite|postgres` loads `--rows` leads (five organizations,
as `bench run` does), then points wrk at the largest organization with `--connections`
connections for `--duration` seconds after `--warmup` seconds of the same load. Each
request is drawn at random in wrk's Lua, in the mix of issue 11:

    45 % list reads       the list queries of bench/queries.py (Q1-Q9), in turn at random
    15 % one-lead reads   GET /api/leads/{id} of 2,000 of the organization's leads
    20 % creates          POST /api/leads, a new lead each time
    10 % updates          PATCH /api/leads by id: a new value and note
    10 % stats            POST /api/stats {}

All writes go to one organization, so on both databases they contend for its row (each
write moves the organization's data version) and on SQLite for the one write lock. wrk
reports latency over every request; any status >= 400, timeout or socket error is an
error. The server's resident memory (every process of `leads-api serve`) is sampled every
`--rss-every` seconds through both runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import http
from bench.queries import QUERIES

ONE_LEAD_IDS = 2_000
SOAK_LUA = r"""
local key = "%(key)s"
local lists = {%(lists)s}
local ids = {%(ids)s}
local read_headers = {["X-API-KEY"] = key}
local json_headers = {["X-API-KEY"] = key, ["Content-Type"] = "application/json"}
local counter = 0

init = function(args)
  math.randomseed(%(seed)d)
end

request = function()
  counter = counter + 1
  local r = math.random(100)
  if r <= 45 then
    return wrk.format("GET", lists[math.random(#lists)], read_headers)
  elseif r <= 60 then
    return wrk.format("GET", "/api/leads/" .. ids[math.random(#ids)], read_headers)
  elseif r <= 80 then
    local body = string.format(
      '{"name": "Soak Lead %%d", "email": "soak%%d@example.com", "utm_source": "google", ' ..
      '"gclid": "soak-%%d", "custom": {"run": "soak"}}', counter, counter, counter)
    return wrk.format("POST", "/api/leads", json_headers, body)
  elseif r <= 90 then
    local body = string.format('{"id": "%%s", "value": %%d, "note": "soak %%d"}',
      ids[math.random(#ids)], math.random(100000), counter)
    return wrk.format("PATCH", "/api/leads", json_headers, body)
  else
    return wrk.format("POST", "/api/stats", json_headers, "{}")
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "p999_us": %%d, "max_us": %%d, "mean_us": %%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


def lead_ids(base: str, key: str, count: int = ONE_LEAD_IDS) -> list[str]:
    """`count` ids of the key's organization, through the API."""
    found: list[str] = []
    page = 1
    while len(found) < count:
        status, body, _ = http.get(base, f"/api/leads?limit=100&page={page}&fields=id", key)
        if status != 200:
            raise RuntimeError(f"listing ids: HTTP {status} {body}")
        found.extend(lead["id"] for lead in body["data"])
        if not body["meta"]["pagination"]["hasMore"]:
            break
        page += 1
    return found[:count]


def _lua_strings(values: list[str]) -> str:
    return ", ".join(json.dumps(v) for v in values)


def group_rss_mb(pgid: int) -> dict[int, float]:
    """Resident memory of every process in a process group (the server and its workers)."""
    found: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                found[int(stat.parent.name)] = round(int(line.split()[1]) / 1024, 1)
    return found


class RssSampler:
    """Samples the server's memory every `every` seconds on a thread, while running."""

    def __init__(self, pgid: int, every: float) -> None:
        self.pgid, self.every = pgid, every
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            per_process = group_rss_mb(self.pgid)
            self.samples.append({
                "t_s": round(time.monotonic() - self._start, 1),
                "total_mb": round(sum(per_process.values()), 1),
                "largest_mb": max(per_process.values(), default=0.0),
            })
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def run_mix(base: str, key: str, ids: list[str], *, duration: int, connections: int,
            seed: int) -> dict[str, Any]:
    lua = SOAK_LUA % {
        "key": key, "seed": seed,
        "lists": _lua_strings([q.path for q in QUERIES if not q.smallest_org]),
        "ids": _lua_strings(ids),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                   "--timeout", "30s", "-s", script.name, base + "/"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        Path(script.name).unlink()
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout[-2000:]}")
    raw = json.loads(line[len("BENCH "):])
    seconds = raw["duration_us"] / 1e6
    return {
        "tool": " ".join(command[:-3]) + " -s soak.lua",
        "requests": raw["requests"],
        "seconds": round(seconds, 1),
        "req_s": round(raw["requests"] / seconds, 1),
        **{f"{p}_ms": raw[f"{p}_us"] / 1000 for p in ("p50", "p90", "p99", "p999", "max")},
        "mean_ms": round(raw["mean_us"] / 1000, 2),
        "errors": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")
                   if raw[k]},
    }


def soak(server: http.Server, key: str, *, duration: int, warmup: int, connections: int,
         seed: int, rss_every: float, say: Any, log: Path | None = None) -> dict[str, Any]:
    ids = lead_ids(server.base, key)
    result: dict[str, Any] = {"one_lead_ids": len(ids)}
    with RssSampler(server.process.pid, rss_every) as rss:
        if warmup:
            say(f"warm-up: {warmup} s of the mix")
            result["warmup"] = run_mix(server.base, key, ids, duration=warmup,
                                       connections=connections, seed=seed)
            warm_end = rss.samples[-1]["t_s"] if rss.samples else 0.0
            say(f"warm-up: {result['warmup']['req_s']} req/s, p99 {result['warmup']['p99_ms']} ms")
        else:
            warm_end = 0.0
        say(f"soak: {duration} s of the mix on {connections} connections")
        log_from = log.stat().st_size if log is not None else 0
        result["soak"] = run_mix(server.base, key, ids, duration=duration,
                                 connections=connections, seed=seed + 1)
        if log is not None:
            result["by_route"] = by_route(log, log_from)
    result["rss"] = _rss_summary(rss.samples, warm_end)
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def by_route(log: Path, start: int) -> dict[str, dict[str, Any]]:
    """The server's own time per answer, by method and route, from the access log lines
    written from byte `start` on (the measured run): which kind of request the tail is."""
    times: dict[str, list[float]] = {}
    with log.open("rb") as lines:
        lines.seek(start)
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or entry.get("event") != "request":
                continue
            path = str(entry.get("path", ""))
            if path.startswith("/api/leads/") and path != "/api/leads/changes":
                path = "/api/leads/{id}"
            times.setdefault(f"{entry.get('method')} {path}", []).append(entry["durationMs"])
    summary = {}
    for route, durations in sorted(times.items(), key=lambda item: -len(item[1])):
        durations.sort()
        n = len(durations)
        summary[route] = {"requests": n, **{
            f"{name}_ms": round(durations[min(n - 1, int(n * q))], 1)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        }, "max_ms": round(durations[-1], 1)}
    return summary


def _rss_summary(samples: list[dict[str, Any]], warm_end: float) -> dict[str, Any]:
    measured = [s for s in samples if s["t_s"] >= warm_end] or samples
    first, last = measured[0], measured[-1]
    return {
        "at_start_mb": samples[0]["total_mb"] if samples else None,
        "after_warmup_mb": first["total_mb"],
        "at_end_mb": last["total_mb"],
        "max_mb": max(s["total_mb"] for s in measured),
        "growth_after_warmup_mb": round(last["total_mb"] - first["total_mb"], 1),
        "samples": samples,
    }
