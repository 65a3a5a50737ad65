"""`leads-api serve --workers N`: N processes each listening on the port (SO_REUSEPORT), a
dead worker replaced, a graceful stop on SIGTERM, and a clear error for a taken port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server import Server, leads_api_command, running_server

pytestmark = pytest.mark.server

WAIT_S = 30.0


def workers_of(pid: int) -> set[int]:
    """The live worker processes of `pid` (from /proc; not multiprocessing's tracker)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in command:
            children.add(int(entry.name))
    return children


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def two_workers(sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_server(sqlite_url, tmp_path, workers=2) as server:
        yield server


def answers(server: Server) -> bool:
    try:
        with httpx.Client(base_url=server.base_url, timeout=5) as http:
            return http.get("/api/check").status_code == 401  # no key: alive and answering
    except httpx.TransportError:
        return False


def test_each_worker_listens_and_a_dead_worker_is_replaced(two_workers: Server) -> None:
    assert two_workers.process is not None
    parent = two_workers.process.pid
    wait_for(lambda: len(workers_of(parent)) == 2, "two workers")
    first = workers_of(parent)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    # The other worker goes on answering while the supervisor starts a new one.
    wait_for(lambda: answers(two_workers), "the surviving worker to answer")
    wait_for(
        lambda: len(workers_of(parent)) == 2 and victim not in workers_of(parent),
        "a replacement worker",
    )
    wait_for(lambda: all(answers(two_workers) for _ in range(20)), "every worker to answer")


def test_sigterm_stops_the_workers_and_the_supervisor(two_workers: Server) -> None:
    process = two_workers.process
    assert process is not None
    wait_for(lambda: len(workers_of(process.pid)) == 2, "two workers")
    workers = workers_of(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_S) == 0
    # The supervisor waited for its workers before exiting: none is left.
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def test_a_port_in_use_is_a_clear_error(sqlite_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*leads_api_command(), "serve", "--port", str(port), "--workers", "2"],
            env={**os.environ, "LEADS_DATABASE_URL": sqlite_url},
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def test_the_workers_start_with_few_malloc_arenas_on_sqlite(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """server/memory.py: glibc reads MALLOC_ARENA_MAX as a process starts, so the cap
    reaches the workers through the environment they start with; one set by the operator
    is kept. Over PostgreSQL glibc's default stands."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    capped = database_url.startswith("sqlite")
    for given, expected in ((None, "2" if capped else None), ("4", "4")):
        env = {} if given is None else {"MALLOC_ARENA_MAX": given}
        log_dir = tmp_path / str(given)
        log_dir.mkdir()
        with running_server(database_url, log_dir, workers=2, env=env) as server:
            assert server.process is not None
            parent = server.process.pid
            wait_for(lambda parent=parent: len(workers_of(parent)) == 2, "two workers")
            for worker in workers_of(parent):
                assert environment_of(worker).get("MALLOC_ARENA_MAX") == expected


_CAP_IN_PROCESS = """
import os
from leads_api.server.memory import limit_malloc_arenas
print(limit_malloc_arenas(), os.environ.get("MALLOC_ARENA_MAX"))
"""


def capped_in_process(arenas: str | None) -> list[str]:
    """What limit_malloc_arenas returns in a fresh process (not pytest's own, whose malloc
    the suite's other tests share), and the MALLOC_ARENA_MAX it leaves for its workers."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if arenas is not None:
        env["MALLOC_ARENA_MAX"] = arenas
    done = subprocess.run([sys.executable, "-c", _CAP_IN_PROCESS], env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_serving_in_process_caps_its_own_arenas() -> None:
    assert capped_in_process(None) == ["2", "2"]  # and exported for the workers it starts
    assert capped_in_process("3") == ["3", "3"]
    assert capped_in_process("many") == ["None", "many"]  # glibc's own reading of it stands
