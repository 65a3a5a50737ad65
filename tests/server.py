"""A real `leads-api serve` process for tests that need one: start, wait, kill, restart.

The server runs in its own process group, so that SIGKILL reaches uvicorn's worker
processes too (with `--workers N` the parent is only a supervisor). Its output goes to a log
file whose tail is shown when it fails to start.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def leads_api_command() -> list[str]:
    """The installed console script beside this interpreter, else the same entry point."""
    script = Path(sys.executable).with_name("leads-api")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from leads_api.cli import main; main()"]


def run_cli(database_url: str, *args: str, timeout: float = 60.0) -> str:
    """Run one `leads-api` command against `database_url`; return its stdout."""
    done = subprocess.run(
        [*leads_api_command(), *args],
        env={**os.environ, "LEADS_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"leads-api {' '.join(args)} failed: {done.stderr}{done.stdout}")
    return done.stdout


class Server:
    """One `leads-api serve` process over `database_url`, on a free port of 127.0.0.1."""

    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.log_dir = log_dir
        self.workers = workers
        self.extra_env = dict(env or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"server-{self._starts}.log"

    def client(
        self, api_key: str | None = None, *, timeout: float = REQUEST_TIMEOUT_S
    ) -> httpx.Client:
        headers = {"X-API-KEY": api_key} if api_key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def start(self) -> Server:
        """Start on a new free port and return once it answers HTTP."""
        assert self.process is None, "already running"
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self._starts += 1
            self.port = free_port()
            env = {
                **os.environ,
                "LEADS_DATABASE_URL": self.database_url,
                "LEADS_LOG_LEVEL": "warning",
                **self.extra_env,
            }
            command = [*leads_api_command(), "serve", "--host", "127.0.0.1",
                       "--port", str(self.port), "--workers", str(self.workers)]
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            if self._wait_until_answering():
                return self
            self._reap()
            if "address already in use" not in self.log().lower():
                break
        raise RuntimeError(f"leads-api serve did not start:\n{self.log()[-3000:]}")

    def _wait_until_answering(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(base_url=self.base_url, timeout=1.0) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    probe.get("/api/check")  # any HTTP answer (401 without a key) will do
                    return True
                except httpx.TransportError:
                    time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL the server and all its workers: no cleanup, no graceful shutdown."""
        self._signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """Shut down gracefully; SIGKILL whatever is still there after the grace period."""
        if self.process is None:
            return
        self._signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self._signal(signal.SIGKILL)  # stray workers, if any
        self._reap()

    def restart_after_kill(self) -> Server:
        self.kill()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def _reap(self) -> None:
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None


def total_leads(http: httpx.Client) -> int:
    """The caller's lead count, from the list's pagination."""
    response = http.get("/api/leads", params={"limit": 1})
    assert response.status_code == 200, response.text
    total: int = response.json()["meta"]["pagination"]["total"]
    return total


def all_leads(http: httpx.Client, fields: str, *, max_pages: int = 100) -> list[dict[str, Any]]:
    """Every lead the caller can list (only `fields`, plus id), page by page (bounded)."""
    found: list[dict[str, Any]] = []
    for page in range(1, max_pages + 1):
        response = http.get("/api/leads", params={"limit": 100, "page": page, "fields": fields})
        assert response.status_code == 200, response.text
        body = response.json()
        found.extend(body["data"])
        if not body["meta"]["pagination"]["hasMore"]:
            return found
    raise AssertionError(f"more than {max_pages} pages of leads")


@contextmanager
def running_server(database_url: str, log_dir: Path, **options: Any) -> Iterator[Server]:
    server = Server(database_url, log_dir, **options).start()
    try:
        yield server
    finally:
        server.stop()


def start_demo(url: str, cwd: Path, port: int) -> tuple[subprocess.Popen[str], str, str]:
    """Start `leads-api demo`; once it answers, return it, the key it printed, and all it
    printed up to the key."""
    process = subprocess.Popen(
        [*leads_api_command(), "demo", "--port", str(port), "--leads", "50"],
        env={**os.environ, "LEADS_DATABASE_URL": url, "LEADS_LOG_LEVEL": "warning"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
        start_new_session=True,
    )
    assert process.stdout is not None
    printed = ""
    deadline = time.monotonic() + 60
    while "export LEADS_API_KEY=" not in printed and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        printed += line
    match = re.search(r"export LEADS_API_KEY=(lak_\w+)", printed)
    assert match, printed
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return process, match[1], printed


def stop_demo(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, 15)
    process.wait(timeout=20)
    if process.stdout is not None:
        process.stdout.close()
