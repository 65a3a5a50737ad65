"""Webhook delivery: fan-out throughput to one local receiver, and commit-to-receiver
latency while idle. Small and bounded (a couple of minutes per backend).

    python -m bench.webhooks --backend sqlite --out bench/results/webhooks/sqlite.json
    python -m bench.webhooks --backend postgres --out bench/results/webhooks/postgres.json

Fan-out: an import of --events new leads into an organization with one subscription,
with nothing delivering (beside the same import into one without: the outbox's cost);
then `leads-api deliver` starts, and the rate is the events over the time from their
first to their last arrival at the receiver (a separate process that verifies every
signature). Latency: `leads-api serve` (which delivers by itself) gets one
POST every 200 ms; for each, the time from the POST's answer (the write has committed by
then) to the event's arrival, and from the POST's sending (an upper bound).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from bench import machine
from bench.http import free_port, serving

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/leads_bench_webhooks"


def say(message: str) -> None:
    print(f"[bench webhooks {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr}")
    return done.stdout


def fresh_database(backend: str, workdir: Path, pg_url: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'webhooks.db'}"
    name = pg_url.rsplit("/", 1)[1]
    if "bench" not in name:
        raise SystemExit("--pg-url must name a benchmark database (with 'bench' in its name)")
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return pg_url


def stats(port: int, *, full: bool = False) -> dict[str, Any]:
    path = "/stats/full" if full else "/stats"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        result: dict[str, Any] = orjson.loads(response.read())
        return result


def wait_for(port: int, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stats(port)["count"] >= count:
            return stats(port, full=True)
        time.sleep(0.2)
    raise RuntimeError(f"only {stats(port)['count']} of {count} events arrived")


def post(base: str, key: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        base + path, data=orjson.dumps(body), method="POST",
        headers={"X-API-KEY": key, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = orjson.loads(response.read())
        return result


def measure(
    backend: str, events: int, samples: int, pg_url: str, deliverers: list[int]
) -> dict[str, Any]:
    cli = str(Path(sys.executable).with_name("leads-api"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        url = fresh_database(backend, workdir, pg_url)
        env = {**os.environ, "LEADS_DATABASE_URL": url, "LEADS_WEBHOOK_ALLOW_PRIVATE": "1"}
        run([cli, "migrate"], env)
        run([cli, "orgs", "create", "bench"], env)
        key = run([cli, "keys", "create", "--org", "bench"], env).strip().splitlines()[-1]
        port = free_port()
        created = run([cli, "webhooks", "create", "--org", "bench", "--url",
                       f"http://127.0.0.1:{port}/hook", "--event", "lead.created"], env)
        secret = created.strip().splitlines()[-1]
        receiver = subprocess.Popen(
            [sys.executable, "-m", "bench.webhook_receiver", "--port", str(port),
             "--secret", secret],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            wait_until_answering(port)
            return {
                "backend": backend,
                "fan_out": [
                    fan_out(cli, env, workdir, port, events, n, round_=i)
                    for i, n in enumerate(deliverers)
                ],
                "latency": latency(cli, env, workdir, port, key, samples,
                                   events * len(deliverers)),
                "machine": machine.facts(None if backend == "sqlite" else url),
            }
        finally:
            os.killpg(receiver.pid, signal.SIGTERM)
            receiver.wait(timeout=30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def wait_until_answering(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            stats(port)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the receiver did not start")


def fan_out(
    cli: str, env: dict[str, str], workdir: Path, port: int, events: int, deliverers: int,
    *, round_: int,
) -> dict[str, Any]:
    say(f"importing {events} leads with nothing delivering")
    path = workdir / f"leads-{round_}.jsonl"
    path.write_bytes(b"".join(
        orjson.dumps({"name": f"Lead {i}", "email": f"lead{i}@example.com"}) + b"\n"
        for i in range(events)
    ))
    run([cli, "orgs", "create", f"plain-{round_}"], env)
    started = time.perf_counter()
    run([cli, "import", "--org", f"plain-{round_}", str(path)], env)
    plain_s = time.perf_counter() - started  # the same import without a subscription
    started = time.perf_counter()
    run([cli, "import", "--org", "bench", str(path)], env)
    import_s = time.perf_counter() - started
    say(f"import with its outbox took {import_s:.1f} s; {deliverers} x `leads-api deliver`")
    processes = [
        subprocess.Popen(
            [cli, "deliver"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(deliverers)
    ]
    try:
        arrived = wait_for(port, events * (round_ + 1), timeout=600)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    times = sorted(arrived["arrivals"].values())[events * round_:]
    span = times[-1] - times[0]
    return {
        "events": events,
        "deliverers": deliverers,
        "import_s": round(import_s, 2),
        "import_without_subscription_s": round(plain_s, 2),
        "span_s": round(span, 2),
        "events_per_s": round((events - 1) / span),
        "unverified": arrived["unverified"],
    }


def latency(cli: str, env: dict[str, str], workdir: Path, port: int, key: str,
            samples: int, before: int) -> dict[str, Any]:
    say(f"serve delivers by itself: {samples} creates, one every 200 ms")
    sent: dict[str, tuple[float, float]] = {}
    with serving(cli, env, 1, workdir / "serve.log") as server:
        time.sleep(1.0)
        for i in range(samples):
            start = time.time()
            answer = post(server.base, key, "/api/leads", {"name": f"Probe {i}"})
            sent[answer["data"]["id"]] = (start, time.time())
            time.sleep(0.2)
        arrived = wait_for(port, before + samples, timeout=60)
    by_lead = {lead: arrived["arrivals"][mid] for mid, lead in arrived["leads"].items()}
    after_ack = sorted((by_lead[lead] - acked) * 1000 for lead, (_, acked) in sent.items())
    after_send = sorted((by_lead[lead] - start) * 1000 for lead, (start, _) in sent.items())
    return {
        "samples": samples,
        "median_ms_after_answer": round(statistics.median(after_ack), 1),
        "p90_ms_after_answer": round(after_ack[int(len(after_ack) * 0.9)], 1),
        "max_ms_after_answer": round(after_ack[-1], 1),
        "median_ms_after_send": round(statistics.median(after_send), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgres"), required=True)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--deliverers", type=int, nargs="+", default=[1, 2],
                        help="one fan-out round per number of `leads-api deliver` processes")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.backend, args.events, args.samples, args.pg_url, args.deliverers)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
