"""The API side: `leads-api serve` on loopback, the pre-run check, and wrk's measurement.

wrk runs as `wrk -t1 -c32 -dSs --latency` with a Lua script that sets X-API-KEY and prints
its summary as JSON (latencies straight from wrk's histogram, not parsed from its table).
Its timeout is raised from 2 s to 60 s: slow requests must count in the percentiles, not
vanish as timeouts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRK_TIMEOUT = "60s"

_LUA = """
wrk.headers["X-API-KEY"] = "%(key)s"
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
        yield server
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


def settle(base: str, key: str, *, quiet_ms: float = 100, limit_s: float = 120) -> None:
    """Wait until the server has drained the work a finished wrk run left queued: requests
    still in its threads would otherwise run during the next measurement."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        _, _, seconds = get(base, "/api/check", key)
        if seconds * 1000 < quiet_ms:
            return
        time.sleep(0.5)


def run_wrk(url: str, key: str, *, duration: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_LUA % {"key": key})
    try:
        command = [
            "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
            "--timeout", WRK_TIMEOUT, "-s", script.name, url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        Path(script.name).unlink()
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout[-2000:]}")
    raw = json.loads(line[len("BENCH "):])
    seconds = raw["duration_us"] / 1e6
    errors = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
    return {
        "tool": f"wrk -t1 -c{connections} -d{duration}s --timeout {WRK_TIMEOUT}",
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "req_s": round(raw["requests"] / seconds, 2),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "errors": errors,
        "bytes_per_response": round(raw["bytes"] / raw["requests"]) if raw["requests"] else 0,
    }
