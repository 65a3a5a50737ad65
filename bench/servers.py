"""The HTTP server: uvicorn as `leads-api serve` runs it against granian's ASGI server, one
worker each, on the same app factory (`leads_api.api.app:app_from_env`).

    python -m bench.servers --out bench/results/servers/servers.json

One worker each on a small SQLite database (`--rows` leads in the generator's five
organizations, loaded through the CLI into a new directory under /tmp); wrk `-t1 -c32`
for `--duration` seconds on each path after `--warmup` seconds of the same, the servers
taking turns for `--rounds` rounds (each goes first in turn, so machine noise falls on all
alike), each round a new server of each. The server's CPU time per answer (its process
group's utime + stime from /proc, before and after each run) is the steadier figure. Paths:

- `ceiling`: GET /bench/ceiling, the fixed pre-encoded 50-lead page (api/ceiling.py): no
  key, no database; what the server stack itself can do;
- `check`: GET /api/check with a key (the key looked up in the database);
- `fresh`: GET /api/leads?page=N&limit=M, a distinct URL every request (the seeded Q1 list
  of fresh.py, the largest organization), the key as `X-API-KEY` (http.run_wrk_list), the answer
  cache off (LEADS_ANSWER_CACHE_MB=0, as follow.py's uncached runs): a database-bound
  answer.

Servers (`SERVERS`): uvicorn is `leads-api serve --workers 1` itself (uvloop,
LimitedHttpProtocol, ws none, no uvicorn access log, its keep-alive timeout, malloc arenas
capped at 2 on SQLite); granian gets the same environment (MALLOC_ARENA_MAX=2 through it)
and `GRANIAN_FLAGS`, with one runtime thread (its default) and with two. The app's own
access log (LEADS_ACCESS_LOG, on by default) writes its line per request under both, to
the server log in the work directory. Before the rounds, one answer of each path from
uvicorn and from granian is compared (status, body with its requestId and timestamp
masked, headers), and requests over the limits of server/protocol.py are sent to both to
see what each answers. The servers and the CLI run a copy of `leads_api` taken at the
start (`snapshot_source`), so a commit landing mid-run cannot change the code measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import fresh, http, load, machine
from bench.generate import Dataset, dataset
from leads_api.api import ceiling
from leads_api.api.ceiling import CEILING_ENV, CEILING_PATH

APP = "leads_api.api.app:app_from_env"
# granian on the ASGI interface and uvloop, one worker, websockets off as `leads-api serve`
# has them (ws none), no access log of its own. Its runtime threads (Rust threads doing the
# sockets and HTTP parsing, outside the GIL) are measured at 1 (its default: one I/O thread
# as uvicorn has one event loop) and 2 (one per CPU of this machine, which wrk and the
# database share too). `--task-impl rust` was tried and left out: the app's requests then
# fail with 500s (anyio's CapacityLimiter "borrower is already holding one of this
# CapacityLimiter's tokens"), and granian calls it experimental.
GRANIAN_BASE = (
    "--interface", "asgi", "--loop", "uvloop", "--workers", "1",
    "--no-ws", "--no-access-log", "--log-level", "warning",
)
GRANIAN_FLAGS = (*GRANIAN_BASE, "--runtime-threads", "1")
SERVERS: dict[str, tuple[str, ...] | None] = {
    "uvicorn": None,  # `leads-api serve --workers 1`
    "granian": GRANIAN_FLAGS,
    "granian-rt2": (*GRANIAN_BASE, "--runtime-threads", "2"),
}
FRESH_URLS = 12_000
CONNECTIONS = 32

def say(message: str) -> None:
    print(f"[servers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (its workers too), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def granian_command(port: int, flags: tuple[str, ...] = GRANIAN_FLAGS) -> list[str]:
    return [str(Path(sys.executable).with_name("granian")), *flags, "--host", "127.0.0.1",
            "--port", str(port), "--factory", APP]


@contextlib.contextmanager
def granian(env: dict[str, str], log: Path,
            flags: tuple[str, ...] = GRANIAN_FLAGS) -> Iterator[http.Server]:
    """granian on a free loopback port, in its own session, stopped on exit."""
    port = http.free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(granian_command(port, flags), env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = http.Server(f"http://127.0.0.1:{port}", process)
    try:
        http._wait_until_up(server, log)
        yield server
    finally:
        _stop(process)


def serving(name: str, cli: str, env: dict[str, str],
            log: Path) -> contextlib.AbstractContextManager[http.Server]:
    flags = SERVERS[name]
    if flags is None:
        return http.serving(cli, env, 1, log)  # `leads-api serve --workers 1`
    return granian(env, log, flags)


# --- data -------------------------------------------------------------------------------------


def snapshot_source(workdir: Path) -> dict[str, Any]:
    """A copy of `leads_api` taken now, put first on PYTHONPATH for every server and CLI run:
    the working tree may change while the rounds run (others commit meanwhile), and every
    server of every round must run the same code. `leads_api` is a namespace package, so
    the copy's modules are found before the working tree's."""
    source = Path(ceiling.__file__).resolve().parents[1]
    code = machine.code()  # the commit, and whether src/ had uncommitted changes, now
    copy = workdir / "src"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy / "leads_api",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return {**code, "snapshot": str(copy / "leads_api"), "copied_from": str(source)}


def prepare(workdir: Path, rows: int, seed: int, cli: str) -> tuple[dict[str, str], Dataset,
                                                                   dict[str, str]]:
    """A fresh SQLite database of `rows` generated leads in `workdir`, loaded through the
    CLI (bench/load.py); its environment, the dataset and a key per organization."""
    data = dataset(workdir / "data", rows, seed)
    path = workdir / "sqlite" / "leads.db"
    target = load.Target("sqlite", f"sqlite:///{path}", sqlite_path=path)
    env = {**os.environ, "LEADS_DATABASE_URL": target.url}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(workdir / "src"), os.environ.get("PYTHONPATH", "")) if p)
    load.reset(target)
    load.cli([cli, "migrate"], env)
    keys = load.create_orgs(cli, env, data)
    imported = load.import_all(cli, env, data)
    load.analyze(target)
    say(f"loaded {rows:,} leads ({imported['leads_per_s']:,} leads/s) into {path}")
    return env, data, keys


# --- the measured paths -------------------------------------------------------------------


class Paths:
    """The three measured paths, each a function (server, duration) -> wrk's result."""

    def __init__(self, key: str, fresh_paths: list[str]) -> None:
        self.key = key
        self.fresh_paths = fresh_paths
        self.fresh_next = 0  # where the next fresh run starts in the list

    def runners(self) -> dict[str, Callable[[http.Server, int], dict[str, Any]]]:
        return {"ceiling": self.ceiling, "check": self.check, "fresh": self.fresh}

    def ceiling(self, server: http.Server, duration: int) -> dict[str, Any]:
        return http.run_wrk(server.base + CEILING_PATH, "", duration=duration,
                            connections=CONNECTIONS)

    def check(self, server: http.Server, duration: int) -> dict[str, Any]:
        return http.run_wrk(server.base + "/api/check", self.key, duration=duration,
                            connections=CONNECTIONS)

    def fresh(self, server: http.Server, duration: int) -> dict[str, Any]:
        start = self.fresh_next % len(self.fresh_paths)
        entries = [(self.key, path) for path in self.fresh_paths]
        result = http.run_wrk_list(server.base, entries, start=start, duration=duration,
                                   connections=CONNECTIONS)
        self.fresh_next = start + result["sent"]
        result["list_start"] = start
        return result

    def samples(self) -> dict[str, tuple[str, dict[str, str]]]:
        """One request of each path, for comparing the two servers' answers."""
        key = {"X-API-KEY": self.key}
        return {"ceiling": (CEILING_PATH, {}), "check": ("/api/check", key),
                "fresh": (self.fresh_paths[0], key)}


# --- answers compared, limits probed ----------------------------------------------------------


def raw_exchange(base: str, request: bytes, *, timeout: float = 15) -> bytes:
    """Send raw bytes on a new connection and read until the server closes it (or the
    answer's Content-Length is in), on loopback."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        received = b""
        with contextlib.suppress(OSError):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                head, sep, body = received.partition(b"\r\n\r\n")
                found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if sep and found and len(body) >= int(found.group(1)):
                    break
    return received


def parse_response(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if line]
    return {"status_line": lines[0] if lines else "", "headers": headers, "body": body}


_VARYING = (
    (re.compile(rb'"requestId":"req_[0-9a-f]+"'), b'"requestId":"req_X"'),
    (re.compile(rb'"timestamp":"[^"]+"'), b'"timestamp":"T"'),
)
_VARYING_HEADERS = {"date", "x-request-id"}


def masked(body: bytes) -> bytes:
    for pattern, replacement in _VARYING:
        body = pattern.sub(replacement, body)
    return body


def fetch_sample(base: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    lines = [f"GET {path} HTTP/1.1", f"Host: {base.removeprefix('http://')}",
             *(f"{k}: {v}" for k, v in headers.items()), "Connection: close"]
    return parse_response(raw_exchange(base, ("\r\n".join(lines) + "\r\n\r\n").encode()))


def compare_answers(answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """uvicorn's answer against granian's: status, body (requestId, timestamp masked),
    and the headers each has that the other has not (Date and X-Request-Id aside)."""
    uv, gr = answers["uvicorn"], answers["granian"]

    def header_set(answer: dict[str, Any]) -> set[tuple[str, str]]:
        return {(k.lower(), v) for k, v in answer["headers"] if k.lower() not in _VARYING_HEADERS}

    return {
        "uvicorn_status": uv["status_line"], "granian_status": gr["status_line"],
        "same_status": uv["status_line"].split()[1:2] == gr["status_line"].split()[1:2],
        "same_body_bytes_unmasked": uv["body"] == gr["body"],
        "same_body_masked": masked(uv["body"]) == masked(gr["body"]),
        "body_bytes": {"uvicorn": len(uv["body"]), "granian": len(gr["body"])},
        "headers_only_uvicorn": sorted(header_set(uv) - header_set(gr)),
        "headers_only_granian": sorted(header_set(gr) - header_set(uv)),
        "header_names_in_order": {
            "uvicorn": [k.lower() for k, _ in uv["headers"]],
            "granian": [k.lower() for k, _ in gr["headers"]],
        },
    }


def limit_probes(host: str) -> dict[str, bytes]:
    """Requests over server/protocol.py's default limits (and one the parser cannot read)."""
    def get(target: str, extra: list[str]) -> bytes:
        return ("\r\n".join([f"GET {target} HTTP/1.1", f"Host: {host}", *extra,
                             "Connection: close"]) + "\r\n\r\n").encode()

    return {
        "request line 9 KiB (limit 8 KiB: 414)": get("/api/check?q=" + "a" * 9 * 1024, []),
        "request line 70 KiB": get("/api/check?q=" + "a" * 70 * 1024, []),
        "headers 40 KiB in 10 fields (limit 32 KiB: 431)":
            get("/api/check", [f"X-Pad-{i}: {'b' * 4096}" for i in range(10)]),
        "headers 600 KiB in 150 fields":
            get("/api/check", [f"X-Pad-{i}: {'b' * 4096}" for i in range(150)]),
        "150 small header fields (limit 100: 431)":
            get("/api/check", [f"X-F-{i}: v" for i in range(150)]),
        "malformed request (400 in the envelope)": b"GARBAGE\x01 / HTTP/1.1\r\n\r\n",
    }


def probe_limits(base: str) -> dict[str, dict[str, Any]]:
    out = {}
    for label, request in limit_probes(base.removeprefix("http://")).items():
        try:
            answer = parse_response(raw_exchange(base, request))
            out[label] = {"status_line": answer["status_line"] or "(connection closed, no answer)",
                          "body": answer["body"][:200].decode("utf-8", "replace")}
        except OSError as error:
            out[label] = {"status_line": f"(error: {error})", "body": ""}
    return out


# --- the run ----------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    names = ("granian", "uvicorn", "uvloop", "httptools", "starlette")
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    cli = str(Path(sys.executable).with_name("leads-api"))
    workdir = (Path(args.workdir) if args.workdir
               else Path(tempfile.mkdtemp(prefix="leads-servers-", dir="/tmp")))
    workdir.mkdir(parents=True, exist_ok=True)
    code = snapshot_source(workdir)
    env, data, keys = prepare(workdir, args.rows, args.seed, cli)
    served_code = subprocess.run(
        [sys.executable, "-c", "import leads_api.api.app as m; print(m.__file__)"],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    if not served_code.startswith(str(workdir / "src")):
        raise RuntimeError(f"the servers would import {served_code}, not the snapshot")
    org = data.largest
    served = {
        **env,
        CEILING_ENV: org.name,
        "LEADS_ANSWER_CACHE_MB": "0",  # every fresh answer computed (and ceiling/check unaffected)
        "MALLOC_ARENA_MAX": "2",  # what `leads-api serve` sets on SQLite, for granian too
        "LEADS_LOG_LEVEL": "warning",
    }
    fresh_paths = [q.path for q in fresh.fresh_urls("Q1", args.seed, FRESH_URLS, org.leads)]
    paths = Paths(keys[org.name], fresh_paths)
    log = workdir / "servers.log"
    say(f"workdir {workdir}; {len(fresh_paths)} fresh URLs of {org.name} ({org.leads:,} leads)")

    answers: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in paths.samples()}
    limits: dict[str, Any] = {}
    for name in ("uvicorn", "granian"):
        with serving(name, cli, served, log) as server:
            for path_name, (path, headers) in paths.samples().items():
                answers[path_name][name] = fetch_sample(server.base, path, headers)
            limits[name] = probe_limits(server.base)
    comparison = {path_name: compare_answers(by_server)
                  for path_name, by_server in answers.items()}
    for path_name, compared in comparison.items():
        say(f"{path_name}: same status {compared['same_status']}, same body (masked) "
            f"{compared['same_body_masked']}; headers only uvicorn "
            f"{compared['headers_only_uvicorn']}, only granian {compared['headers_only_granian']}")

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        path_name: {name: [] for name in SERVERS} for path_name in paths.runners()
    }
    for round_number in range(args.rounds):
        names = list(SERVERS)
        shift = round_number % len(names)
        order = names[shift:] + names[:shift]  # each server goes first in turn
        for name in order:
            with serving(name, cli, served, log) as server:
                http.settle(server, None)
                paths.fresh_next = 0  # each server's warm-up from the list's head, then on
                for path_name, run in paths.runners().items():
                    if args.warmup > 0:
                        run(server, args.warmup)
                        http.settle(server, None)
                    loadavg = round(os.getloadavg()[0], 2)
                    cpu_before = http.server_cpu_seconds(server)
                    result = run(server, args.duration)
                    cpu = http.server_cpu_seconds(server) - cpu_before
                    # The server's CPU per answer: far steadier than req/s on a machine
                    # shared with wrk, the database and other work.
                    result["server_cpu_us"] = round(cpu / max(1, result["requests"]) * 1e6, 1)
                    result["loadavg_before"] = loadavg
                    result["round"] = round_number + 1
                    result["drain_s"] = http.settle(server, None)
                    runs[path_name][name].append(result)
                    say(f"round {round_number + 1} {name} {path_name}: {result['req_s']} req/s, "
                        f"p99 {result['p99_ms']} ms, {result['server_cpu_us']} us CPU each"
                        + (f", errors {result['errors']}" if result["errors"] else ""))
            time.sleep(1)

    summary: dict[str, Any] = {}
    for path_name, by_server in runs.items():
        med_rate = {n: _median([r["req_s"] for r in rs]) for n, rs in by_server.items()}
        med_cpu = {n: _median([r["server_cpu_us"] for r in rs]) for n, rs in by_server.items()}
        summary[path_name] = {
            **{f"{n}_req_s_median": v for n, v in med_rate.items()},
            **{f"{n}_cpu_us_median": v for n, v in med_cpu.items()},
        }
        for n in SERVERS:
            if n != "uvicorn":
                summary[path_name][f"{n}_req_s_pct"] = round(
                    100 * (med_rate[n] / med_rate["uvicorn"] - 1), 1)
                summary[path_name][f"{n}_cpu_pct"] = round(
                    100 * (med_cpu[n] / med_cpu["uvicorn"] - 1), 1)
    return {
        "what": "uvicorn (leads-api serve --workers 1) vs granian ASGI, one worker, same app",
        "code": code,
        "code_at_end": machine.code(),
        "machine": machine.facts(None),
        "versions": _versions(),
        "params": {"rows": args.rows, "seed": args.seed, "duration_s": args.duration,
                   "warmup_s": args.warmup, "rounds": args.rounds, "connections": CONNECTIONS,
                   "fresh_urls": len(fresh_paths), "ceiling_org": org.name,
                   "ceiling_org_leads": org.leads},
        "servers": {
            "uvicorn": f"{cli} serve --port PORT --workers 1 (loop uvloop, http "
                       "leads_api.server.protocol:LimitedHttpProtocol, ws none, no access log)",
            **{n: " ".join(granian_command(0, flags)).replace("--port 0", "--port PORT")
               for n, flags in SERVERS.items() if flags is not None},
        },
        "env": {k: served[k] for k in (CEILING_ENV, "LEADS_ANSWER_CACHE_MB", "MALLOC_ARENA_MAX",
                                       "LEADS_LOG_LEVEL")},
        "answers_compared": comparison,
        "limits_probed": limits,
        "summary": summary,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/servers/servers.json"))
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default="", help="default: a new directory under /tmp")
    args = parser.parse_args(argv)
    for tool in ("wrk", str(Path(sys.executable).with_name("granian"))):
        if shutil.which(tool) is None:
            say(f"missing {tool}")
            return 2
    result = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
