"""What the HTTP limits cost: uvicorn's stock httptools protocol against
`leads_api.server.protocol:LimitedHttpProtocol`, on the cheapest answers, where the
server's share of the time is largest.

    python -m bench protocol --out bench/results/protocol/protocol.json

One worker on a small SQLite database; wrk `-t1 -c32` for `--duration` seconds on each
path, the two protocols alternating for `--rounds` rounds (machine noise then falls on
both alike); the server's CPU time per answer is the steadier figure. Paths: GET
/api/check without a key (a 401 envelope, no database) and with one (the key looked up in
the database).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import http, load

PROTOCOLS = {
    "stock": "httptools",
    "limited": "leads_api.server.protocol:LimitedHttpProtocol",
}


@contextlib.contextmanager
def uvicorn(protocol: str, env: dict[str, str], log: Path) -> Iterator[http.Server]:
    port = http.free_port()
    command = [
        str(Path(sys.executable).with_name("uvicorn")), "--factory",
        "leads_api.api.app:app_from_env", "--port", str(port), "--http", protocol,
        "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = http.Server(f"http://127.0.0.1:{port}", process)
    try:
        http._wait_until_up(server, log)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def measure(workdir: Path, *, duration: int, rounds: int, say: Any) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "protocol.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "LEADS_DATABASE_URL": f"sqlite:///{database}"}
    cli = str(Path(sys.executable).with_name("leads-api"))
    load.cli([cli, "orgs", "create", "bench"], env)
    key = load.new_key(cli, env, "bench")
    paths = {"401 without a key": ("/api/check", ""), "GET /api/check": ("/api/check", key)}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        label: {name: [] for name in PROTOCOLS} for label in paths
    }
    for round_number in range(rounds):
        for name, protocol in PROTOCOLS.items():
            with uvicorn(protocol, env, workdir / "protocol.log") as server:
                for label, (path, path_key) in paths.items():
                    url = server.base + path
                    http.run_wrk(url, path_key, duration=1, connections=32)  # warm
                    cpu_before = http._group_cpu_seconds(server.process.pid)
                    result = http.run_wrk(url, path_key, duration=duration, connections=32)
                    cpu = http._group_cpu_seconds(server.process.pid) - cpu_before
                    # The server's CPU time per answer: far steadier than req/s on a
                    # machine shared with other work.
                    result["server_cpu_us"] = round(cpu / result["requests"] * 1e6, 1)
                    runs[label][name].append(result)
                    say(f"round {round_number + 1} {name} {label}: {result['req_s']} req/s, "
                        f"p99 {result['p99_ms']} ms, {result['server_cpu_us']} us CPU each")
            time.sleep(1)
    summary = {}
    for label, by_protocol in runs.items():
        best = {name: max(r["req_s"] for r in results) for name, results in by_protocol.items()}
        cpu_us = {name: min(r["server_cpu_us"] for r in results)
                  for name, results in by_protocol.items()}
        summary[label] = {
            **{f"{name}_req_s": rate for name, rate in best.items()},
            **{f"{name}_cpu_us": us for name, us in cpu_us.items()},
            "cpu_cost_pct": round(100 * (cpu_us["limited"] / cpu_us["stock"] - 1), 1),
        }
    return {"duration_s": duration, "rounds": rounds, "summary": summary, "runs": runs}
