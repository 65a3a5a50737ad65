"""The API side: `leads-api serve` on loopback, the pre-run check, and wrk's measurement.

wrk runs as `wrk -t1 -c32 -dSs --latency` with a Lua script that sets X-API-KEY and prints
its summary as JSON (latencies straight from wrk's histogram, not parsed from its table).
Its timeout is raised from 2 s to 300 s: slow requests must count in the percentiles, not
vanish as timeouts. Its duration grows for slow queries (`wrk_duration`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg

WRK_TIMEOUT = "300s"

_LUA = """
wrk.headers["X-API-KEY"] = "%(key)s"
%(extra)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d, "mean_us": %%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    base: str
    process: subprocess.Popen[bytes]
    # CPU seconds a second the server uses with no request in flight: each worker's webhook
    # deliverer polls for due events five times a second (LEADS_WEBHOOK_POLL_S), 7-8 % of a
    # CPU per worker on a slower machine, enough to keep settle() waiting for "idle".
    idle_cpu: float = 0.0


@contextlib.contextmanager
def serving(cli: str, env: dict[str, str], workers: int, log: Path) -> Iterator[Server]:
    """`leads-api serve --workers N` on a free loopback port, stopped on exit."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [cli, "serve", "--port", str(port), "--workers", str(workers)],
            env={**env, "LEADS_LOG_LEVEL": "warning"},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        _wait_until_up(server, log)
        yield replace(server, idle_cpu=_cpu_per_second(process.pid, IDLE_SAMPLE_S))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # its own session: uvicorn and its workers
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_until_up(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"leads-api serve exited; see {log}")
        try:
            with urllib.request.urlopen(server.base + "/api/check", timeout=2):
                pass
        except urllib.error.HTTPError:
            return  # 401 without a key: it is answering
        except OSError:
            time.sleep(0.2)
            continue
        return
    raise RuntimeError(f"leads-api serve did not answer within 60 s; see {log}")


def get(base: str, path: str, key: str) -> tuple[int, dict[str, Any], float]:
    """(status, JSON body, seconds) of one GET."""
    request = urllib.request.Request(base + path, headers={"X-API-KEY": key})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body), time.perf_counter() - start


def server_cpu_seconds(server: Server) -> float:
    """CPU time the server (its process group: every worker) has used so far."""
    return _group_cpu_seconds(server.process.pid)


IDLE_SAMPLE_S = 2.0


def _cpu_per_second(pgid: int, seconds: float) -> float:
    before = _group_cpu_seconds(pgid)
    time.sleep(seconds)
    return (_group_cpu_seconds(pgid) - before) / seconds


def _group_cpu_seconds(pgid: int) -> float:
    """CPU time used so far by every process in a process group (the server and workers)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _active_queries(pg_conninfo: str) -> int:
    with psycopg.connect(pg_conninfo) as pg:
        row = pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def settle(server: Server, pg_conninfo: str | None, *, limit_s: float = 600) -> float:
    """Wait until the server has finished the work a wrk run left behind, and return how
    long that took. wrk stops counting at its deadline, but the requests it had in flight
    keep running in the server's threads (and in PostgreSQL) and would otherwise slow the
    next measurement. Idle = the server's processes used under 5 % of a CPU for a second
    more than they use at rest (Server.idle_cpu, half again for its jitter) and, on
    PostgreSQL, no query of the benchmark database is running."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        used = _cpu_per_second(server.process.pid, 1.0)
        busy = used > server.idle_cpu * 1.5 + 0.05
        if not busy and (pg_conninfo is None or _active_queries(pg_conninfo) == 0):
            break
    return round(time.monotonic() - start, 1)


def wrk_duration(
    single_request_s: float, *, minimum: int, maximum: int, connections: int, workers: int
) -> int:
    """Seconds for wrk: at least `minimum`, and three times the latency one request should
    have under `connections` concurrent ones, so that slow queries complete a few rounds
    (wrk counts only requests that finish before its deadline), capped at `maximum`."""
    loaded = single_request_s * connections / max(1, min(workers, os.cpu_count() or 1))
    return int(min(maximum, max(minimum, math.ceil(3 * loaded))))


def run_wrk(
    url: str, key: str, *, duration: int, connections: int,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    extra = "\n".join(
        f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}"
        for name, value in (headers or {}).items()
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_LUA % {"key": key, "extra": extra})
    try:
        raw = run_script(script.name, url, duration=duration, connections=connections)
    finally:
        Path(script.name).unlink()
    return summary(raw, connections=connections, duration=duration)


_LIST_LUA = """
local keys = {%(keys)s}
local entries = {}
for line in io.lines(%(list)s) do
  local k, p = line:match("^(%%d+) (.*)$")
  entries[#entries + 1] = {keys[tonumber(k)], p}
end
local n = #entries
local counter = %(start)d
sent = 0
local threads = {}
setup = function(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end
init = function(args)
  -- Threads take interleaved turns through the list, so no two send the same URL.
  counter = counter + (thread_index or 0)
end
request = function()
  local e = entries[(counter %% n) + 1]
  counter = counter + %(threads)d
  sent = sent + 1
  return wrk.format("GET", e[2], {["X-API-KEY"] = e[1]})
end
done = function(summary, latency, requests)
  local total_sent = 0
  for _, t in ipairs(threads) do total_sent = total_sent + (t:get("sent") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d, "mean_us": %%.1f, "sent": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, total_sent))
end
"""


def run_wrk_list(
    base: str, entries: list[tuple[str, str]], *, start: int, duration: int, connections: int,
    threads: int = 1,
) -> dict[str, Any]:
    """wrk through a list of (key, path), each request the next entry from `start` on (each
    thread offset, taking turns), so a run sends every URL at most once until the list is
    used up; `repeats` counts the requests sent after that (0 when the list was long
    enough)."""
    keys = sorted({key for key, _ in entries})
    index = {key: i + 1 for i, key in enumerate(keys)}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.writelines(f"{index[key]} {path}\n" for key, path in entries)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_LIST_LUA % {
            "keys": ", ".join(json.dumps(k) for k in keys), "list": json.dumps(listing.name),
            "start": start, "threads": threads,
        })
    try:
        raw = run_script(script.name, base + entries[0][1], duration=duration,
                   connections=connections, threads=threads)
    finally:
        Path(script.name).unlink()
        Path(listing.name).unlink()
    result = summary(raw, connections=connections, duration=duration, threads=threads)
    result["urls_available"] = len(entries) - start
    result["sent"] = raw["sent"]
    result["repeats"] = max(0, raw["sent"] - (len(entries) - start))
    return result


def run_script(script: str, url: str, *, duration: int, connections: int,
               threads: int = 1) -> dict[str, Any]:
    """Run wrk with a Lua script whose `done` prints a `BENCH {...}` line; that line."""
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
        "--timeout", WRK_TIMEOUT, "-s", script, url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout[-2000:]}")
    parsed: dict[str, Any] = json.loads(line[len("BENCH "):])
    return parsed


def summary(raw: dict[str, Any], *, connections: int, duration: int,
            threads: int = 1) -> dict[str, Any]:
    """A `BENCH` line as the result JSON's figures (milliseconds, errors by kind)."""
    seconds = raw["duration_us"] / 1e6
    done_any = raw["requests"] > 0
    errors = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
    return {
        "tool": f"wrk -t{threads} -c{connections} -d{duration}s --timeout {WRK_TIMEOUT}",
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "req_s": round(raw["requests"] / seconds, 2),
        "p50_ms": raw["p50_us"] / 1000 if done_any else None,
        "p90_ms": raw["p90_us"] / 1000 if done_any else None,
        "p99_ms": raw["p99_us"] / 1000 if done_any else None,
        "max_ms": raw["max_us"] / 1000 if done_any else None,
        "mean_ms": round(raw["mean_us"] / 1000, 3) if done_any else None,
        # Little's law for a closed loop of `connections` clients: a cross-check on req_s
        # that does not lose the requests still in flight at the deadline.
        "req_s_from_mean_latency": round(connections / (raw["mean_us"] / 1e6), 2)
        if done_any and raw["mean_us"] else None,
        "errors": errors,
        "bytes_per_response": round(raw["bytes"] / raw["requests"]) if raw["requests"] else 0,
    }
