"""The write path over HTTP: creates/s and PATCHes/s with 32 connections, then a check that
every acknowledged write is in the database exactly once.

wrk sends `POST /api/leads` with a distinct email per request (`w<n>.<marker>@bench.example`,
the marker unique to the run), or `PATCH /api/leads` of a distinct lead per request (a
note `<marker> <n>`); its Lua script appends the id of every 2xx answer to a file. Then,
in the database: every acknowledged id carries the marker, no email of the run is stored
twice, and what carries the marker beyond the acknowledged writes (writes committed while
their answers were in flight at wrk's deadline) is at most one per connection.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import http
from bench.load import Target

_LUA = """
local mark = %(mark)s
local ids = {}
for line in io.lines(%(ids)s) do ids[#ids + 1] = line end
local out = io.open(%(out)s, "a")
local counter = 0
sent = 0
local threads = {}
setup = function(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end
init = function(args) counter = thread_index or 0 end
local headers = {["X-API-KEY"] = %(key)s, ["Content-Type"] = "application/json"}
request = function()
  local i = counter
  counter = counter + %(threads)d
  sent = sent + 1
  if %(patch)s then
    local id = ids[(i %% #ids) + 1]
    return wrk.format("PATCH", "/api/leads",
      headers, '{"id":"' .. id .. '","note":"' .. mark .. ' ' .. i .. '"}')
  end
  return wrk.format("POST", "/api/leads", headers,
    '{"name":"Bench Writer ' .. i .. '","email":"w' .. i .. '.' .. mark ..
    '@bench.example","utm_source":"bench"}')
end
response = function(status, headers, body)
  if status >= 200 and status < 300 then
    local id = body:match('"leadId":"([^"]+)"') or body:match('"id":"([^"]+)"')
    out:write(id or "?", "\\n")
    out:flush()
  end
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


def _rows(target: Target, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if target.is_sqlite:
        assert target.sqlite_path is not None
        with sqlite3.connect(target.sqlite_path) as conn:
            return conn.execute(query.replace("%s", "?"), params).fetchall()
    with psycopg.connect(target.pg_conninfo) as pg:
        return pg.execute(query, params).fetchall()


def lead_ids(target: Target, org_id: int, count: int) -> list[str]:
    """`count` ids of the organization's leads, spread over it, for distinct PATCHes."""
    return [r[0] for r in _rows(
        target, "SELECT id FROM leads WHERE org_id = %s ORDER BY id LIMIT %s", (org_id, count)
    )]


def run(base: str, key: str, target: Target, org_id: int, *, kind: str, duration: int,
        connections: int, patch_ids: list[str] | None = None,
        settle: Any = None) -> dict[str, Any]:
    """One wrk run of creates (`kind="create"`) or PATCHes, and the database's check."""
    mark = "bench" + secrets.token_hex(6)
    patch = kind == "patch"
    ids = patch_ids or []
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
        acked_file = Path(tmp) / "acked.txt"
        acked_file.touch()
        ids_file = Path(tmp) / "ids.txt"
        ids_file.write_text("".join(f"{i}\n" for i in ids))
        script = Path(tmp) / "writes.lua"
        script.write_text(_LUA % {
            "mark": json.dumps(mark), "ids": json.dumps(str(ids_file)),
            "out": json.dumps(str(acked_file)), "key": json.dumps(key), "threads": 1,
            "patch": "true" if patch else "false",
        })
        raw = http.run_script(str(script), base + "/api/leads", duration=duration,
                        connections=connections)
        if settle is not None:
            settle()  # the writes still in flight at wrk's deadline finish
        acked = acked_file.read_text().split()
    result = http.summary(raw, connections=connections, duration=duration)
    result["sent"] = raw["sent"]
    result["acknowledged"] = len(acked)
    result["check"] = _check(target, org_id, mark, acked, patch=patch, sent=raw["sent"],
                             distinct_ids=len(ids))
    return result


def _check(target: Target, org_id: int, mark: str, acked: list[str], *, patch: bool,
           sent: int, distinct_ids: int) -> dict[str, Any]:
    if patch:
        stored = _rows(target, "SELECT id, note FROM leads WHERE org_id = %s AND note LIKE %s",
                       (org_id, f"{mark} %"))
        found = {row[0] for row in stored}
        duplicates = 0  # a PATCH lands on its lead; a repeat would only rewrite the note
    else:
        stored = _rows(target, "SELECT id, email FROM leads WHERE org_id = %s AND email LIKE %s",
                       (org_id, f"%.{mark}@bench.example"))
        found = {row[0] for row in stored}
        duplicates = len(stored) - len({row[1] for row in stored})
    missing = [i for i in acked if i not in found]
    extra = len(found) - len(set(acked) & found)
    problems = []
    if missing:
        problems.append(f"{len(missing)} acknowledged writes not in the database")
    if duplicates:
        problems.append(f"{duplicates} writes stored twice")
    if len(acked) != len(set(acked)):
        problems.append("an id acknowledged twice")
    if extra > max(0, sent - len(acked)):
        problems.append(f"{extra} stored writes beyond the {sent} sent")
    if patch and sent > distinct_ids:
        problems.append(f"{sent} PATCHes for {distinct_ids} distinct leads: some repeated")
    return {"marker": mark, "stored": len(found), "acknowledged": len(acked),
            "missing": len(missing), "duplicates": duplicates,
            "unacknowledged_but_stored": extra, "ok": not problems, "problems": problems}


def deliveries_quiet(target: Target, *, horizon_s: float, limit_s: float = 180) -> float:
    """Wait until no webhook message is due within `horizon_s` (the next run and its
    settling); the seconds it took. Deliveries go to a port nobody listens on: each attempt
    fails and the next waits 5 s, 15 s, 45 s, ... So a run with a subscription leaves one
    message per write whose first attempts, in bursts with quiet seconds between, would run
    during the next measurement, and a faster run left more of them, which made the run
    after it slower (measured: the server used 0.7 of a CPU for 20 s after 10 s of creates
    with a subscription). After the first three attempts the next is 45 s away."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        horizon_ms = int((time.time() + horizon_s) * 1000)
        (due,), = _rows(
            target, "SELECT count(*) FROM webhook_outbox WHERE next_attempt_at < %s",
            (horizon_ms,),
        )
        if due == 0:
            break
        time.sleep(0.5)
    return round(time.monotonic() - start, 1)


def subscribe(cli: str, env: dict[str, str], org: str, url: str) -> None:
    """A subscription to every event of `org` pointing at `url` (a loopback port)."""
    done = subprocess.run(
        [cli, "webhooks", "create", "--org", org, "--url", url],
        env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"webhooks create failed: {done.stderr}")


def unsubscribe_all(cli: str, env: dict[str, str], target: Target, org: str,
                    org_id: int) -> None:
    """Delete the organization's subscriptions, so a later --skip-load run starts without."""
    for (webhook_id,) in _rows(target, "SELECT id FROM webhooks WHERE org_id = %s", (org_id,)):
        subprocess.run([cli, "webhooks", "delete", "--org", org, str(webhook_id)],
                       env=env, capture_output=True, text=True, check=True)
