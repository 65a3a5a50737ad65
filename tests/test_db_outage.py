"""A database that goes away: clients get 503 SERVICE_UNAVAILABLE at once, never a 500 or a
hang, nothing half-written survives, and the same server process recovers by itself.

PostgreSQL: a private cluster (its own data directory and port) that the test can stop and
start; the shared server is never touched. SQLite: a write lock held by another connection
longer than the busy timeout.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from leads_api.store import open_store
from leads_api.store.tenants import Organization, create_key, create_organization
from server import Server, free_port, run_cli, total_leads

pytestmark = pytest.mark.server

OUTAGE_ANSWER_S = 5.0  # a request during an outage must be answered within this
RECOVERY_S = 15.0


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]
    text = response.text.lower()
    assert "traceback" not in text and "psycopg" not in text and "sqlite" not in text


def timed(call: Callable[[], httpx.Response]) -> httpx.Response:
    started = time.monotonic()
    response = call()
    elapsed = time.monotonic() - started
    assert elapsed < OUTAGE_ANSWER_S, f"answered after {elapsed:.1f} s"
    return response


# --- PostgreSQL: a private cluster that goes down and comes back ---------------------


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl live: on PATH, or the newest /usr/lib/postgresql/<v>/bin."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


class PrivateCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port> with trust auth."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # Not under pytest's tmp_path: that is private to root, and the cluster runs as
        # `postgres` (initdb refuses to run as root).
        self.root = Path(tempfile.mkdtemp(prefix="leads-outage-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace") if (
                self.root / "server.log").exists() else ""
            raise RuntimeError(f"{tool} {args} failed: {done.stderr}{done.stdout}\n{log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -F"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def create_database(self, name: str) -> None:
        engine = sa.create_engine(
            self.url("postgres").replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        engine.dispose()

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PrivateCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are required under CI=true")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        cluster.create_database("leads")
        yield cluster
    finally:
        cluster.destroy()


@dataclass
class Outage:
    """A server over the private cluster, an organization's key, and the switch."""

    cluster: PrivateCluster
    server: Server
    api_key: str

    @contextmanager
    def database_down(self) -> Iterator[None]:
        self.cluster.stop("fast")
        try:
            yield
        finally:
            self.cluster.start()

    def wait_for_recovery(self, http: httpx.Client) -> None:
        """Poll until the same server process answers 200 again, without a restart."""
        assert self.server.process is not None
        pid = self.server.process.pid
        deadline = time.monotonic() + RECOVERY_S
        status = 0
        while time.monotonic() < deadline:
            status = http.get("/api/leads", params={"limit": 1}).status_code
            if status == 200:
                break
            assert status == 503
            time.sleep(0.2)
        assert status == 200, f"not recovered within {RECOVERY_S} s"
        assert self.server.process is not None and self.server.process.pid == pid
        assert self.server.process.poll() is None


@pytest.fixture(scope="module")
def outage(
    private_cluster: PrivateCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outage]:
    url = private_cluster.url("leads")
    run_cli(url, "migrate")
    store = open_store(url)
    try:
        with store.write() as conn:
            api_key = create_key(conn, create_organization(conn, "outage"))[1]
    finally:
        store.dispose()
    server = Server(url, tmp_path_factory.mktemp("outage-server")).start()
    try:
        yield Outage(private_cluster, server, api_key)
    finally:
        server.stop()


@pytest.mark.postgres
def test_reads_during_a_postgres_outage_get_503_and_the_server_recovers(
    outage: Outage,
) -> None:
    with outage.server.client(outage.api_key, timeout=OUTAGE_ANSWER_S + 5) as http:
        listed = http.get("/api/leads")
        assert listed.status_code == 200, listed.text
        with outage.database_down():
            for _round in range(3):  # the first finds stale pooled connections, later ones none
                assert_unavailable(timed(lambda: http.get("/api/leads")))
                assert_unavailable(timed(lambda: http.get("/api/leads/lead_0123456789abcdef")))
                assert_unavailable(timed(lambda: http.get("/api/check")))
        outage.wait_for_recovery(http)
        assert http.get("/api/leads").json()["meta"]["pagination"] == listed.json()["meta"][
            "pagination"]


@pytest.mark.postgres
def test_writes_during_a_postgres_outage_get_503_and_leave_nothing_behind(
    outage: Outage,
) -> None:
    with outage.server.client(outage.api_key, timeout=OUTAGE_ANSWER_S + 5) as http:
        created = http.post("/api/leads", json={"name": "Before the outage"})
        assert created.status_code == 201, created.text
        before_id = created.json()["data"]["id"]
        before_total = total_leads(http)
        during = {"name": "During the outage", "email": "outage@example.com"}
        key = {"Idempotency-Key": f"outage-{time.monotonic_ns()}"}

        with outage.database_down():
            for _round in range(3):
                assert_unavailable(timed(lambda: http.post("/api/leads", json=during, headers=key)))
                assert_unavailable(timed(lambda: http.patch(
                    "/api/leads", json={"id": before_id, "status": "won", "note": "lost?"})))
        outage.wait_for_recovery(http)

        assert total_leads(http) == before_total
        lead = http.get(f"/api/leads/{before_id}").json()["data"]
        assert (lead["status"], lead["note"]) == ("open", None)
        # A client that retries the refused create with its key gets exactly one lead.
        ids = set()
        for _ in range(2):
            retried = http.post("/api/leads", json=during, headers=key)
            assert retried.status_code == 201, retried.text
            ids.add(retried.json()["data"]["id"])
        assert len(ids) == 1
        assert total_leads(http) == before_total + 1


# --- SQLite: a write lock held longer than the busy timeout -------------------------


@pytest.mark.sqlite
def test_sqlite_write_lock_held_too_long_gives_503(
    sqlite_url: str,
    make_sqlite_org: Callable[[], tuple[Organization, str]],
    tmp_path: Path,
) -> None:
    _org, api_key = make_sqlite_org()
    busy_ms = 300
    server = Server(sqlite_url, tmp_path, env={"LEADS_SQLITE_BUSY_TIMEOUT_MS": str(busy_ms)})
    server.start()
    try:
        with server.client(api_key) as http:
            before_total = total_leads(http)
            holder = sqlite3.connect(sa.make_url(sqlite_url).database or "", isolation_level=None)
            try:
                holder.execute("BEGIN EXCLUSIVE")
                started = time.monotonic()
                refused = http.post("/api/leads", json={"name": "Locked out"})
                assert_unavailable(refused)
                assert time.monotonic() - started >= busy_ms / 1000 * 0.9  # it did wait
                # WAL: readers are not blocked by a writer.
                assert http.get("/api/leads", params={"limit": 1}).status_code == 200
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert http.post("/api/leads", json={"name": "After the lock"}).status_code == 201
            assert total_leads(http) == before_total + 1
    finally:
        server.stop()


@pytest.fixture
def make_sqlite_org(sqlite_url: str) -> Callable[[], tuple[Organization, str]]:
    """An organization and key in the session's SQLite database (migrated on open)."""

    def make() -> tuple[Organization, str]:
        store = open_store(sqlite_url)
        try:
            with store.write() as conn:
                org = create_organization(conn, f"locked-{os.getpid()}-{time.monotonic_ns()}")
                return org, create_key(conn, org)[1]
        finally:
            store.dispose()

    return make
