"""The command line as a new user meets it: clear one-line failures, the demo, progress,
help that fits 80 columns, and settings flags that cannot contradict each other."""

from __future__ import annotations

import os
import pty
import re
import secrets
import select
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from cli_support import Cli
from leads_api.transfer.formats import estimated_records
from server import free_port, leads_api_command, start_demo, stop_demo

# --- one clear line, never a traceback --------------------------------------------------

COMMANDS = [
    ("migrate",), ("orgs", "list"), ("orgs", "create", "x"), ("keys", "list", "--org", "x"),
    ("import", "--org", "x", "FILE"), ("export", "--org", "x"), ("serve", "--port", "PORT"),
    ("demo", "--port", "PORT"),
]


def run(args: tuple[str, ...], url: str, tmp_path: Path, timeout: float = 60) -> tuple[int, str]:
    lead_file = tmp_path / "leads.jsonl"
    lead_file.write_text('{"name": "Ada"}\n')
    argv = [str(lead_file) if a == "FILE" else str(free_port()) if a == "PORT" else a
            for a in args]
    done = subprocess.run(
        [*leads_api_command(), *argv], env={**os.environ, "LEADS_DATABASE_URL": url},
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path, check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _bad_urls(database_url: str, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Broken settings of this kind of database -> (URL, what the message must say)."""
    if database_url.startswith("sqlite"):
        blocked = tmp_path / "a-file"
        blocked.write_text("not a folder")
        return {"unusable file": (f"sqlite:///{blocked}/leads.db", "a-file/leads.db")}
    base = database_url.split("?")[0]
    host = base.rsplit("@", 1)[1].split("/")[0]
    return {
        "unreachable server": (f"postgresql://postgres@127.0.0.1:{free_port()}/test",
                               "Connection refused"),
        "missing database": (f"postgresql://postgres@{host}/no_such_db_{secrets.token_hex(3)}",
                             "does not exist"),
        "unknown user": (f"postgresql://nobody_{secrets.token_hex(3)}:pw@{host}/test",
                         "check the user and password"),
    }


def _assert_one_line(cases: dict[str, tuple[str, str]], command: tuple[str, ...],
                     tmp_path: Path) -> None:
    for what, (url, expected) in cases.items():
        code, output = run(command, url, tmp_path)
        assert code == 1, (what, output)
        lines = output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (what, output)
        assert expected in lines[0], (what, output)
        assert "Traceback" not in output and ":pw@" not in output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_database_trouble_is_one_line_and_exit_1(
    database_url: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    _assert_one_line(_bad_urls(database_url, tmp_path), command, tmp_path)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_bad_database_url_is_one_line_and_exit_1(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    _assert_one_line({"not a URL": ("::nonsense::", "is not a URL"),
                      "another database": ("mysql://u@h/db", "unsupported database")},
                     command, tmp_path)


# --- busy ports ------------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_line_before_anything_is_written(
    tmp_path: Path, taken_port: int, command: str, workers: str
) -> None:
    database = tmp_path / "fresh.db"
    args = [command, "--port", str(taken_port)]
    if command == "serve":
        args += ["--workers", workers]
    code, output = run(tuple(args), f"sqlite:///{database}", tmp_path)
    assert code == 1
    assert output.strip() == (f"Error: Cannot listen on 127.0.0.1:{taken_port}: Address "
                              "already in use (choose another --port)")
    assert not database.exists()


# --- the demo --------------------------------------------------------------------------


def test_the_demo_reuses_its_organization_and_key(database_url: str, tmp_path: Path) -> None:
    cli = Cli(database_url)

    def demo_keys() -> int:
        listed = cli("keys", "list", "--org", "demo").stdout  # no demo org yet: none
        return sum("\tdemo\t" in line and "active" in line for line in listed.splitlines())

    keys, totals, key_counts = [], [], []
    for _ in range(2):
        port = free_port()
        process, key, printed = start_demo(database_url, tmp_path, port)
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/leads?limit=1",
                               headers={"X-API-KEY": key}, timeout=10)
            assert answer.status_code == 200, answer.text
            totals.append(answer.json()["meta"]["pagination"]["total"])
            # what it printed is what it serves (it once printed 0, counted before commit)
            assert f"has {totals[-1]} leads" in printed
        finally:
            stop_demo(process)
        keys.append(key)
        key_counts.append(demo_keys())
    assert keys[0] == keys[1]
    assert totals[0] == totals[1] >= 50
    assert key_counts[0] == key_counts[1] >= 1  # the second run minted none


# --- import progress, help, flags ---------------------------------------------------------


def test_estimates_are_exact_for_small_files_and_close_for_large(tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    small.write_text("name,email\nAda,a@x.io\nBob,b@x.io\n")
    assert estimated_records(small) == 2
    large = tmp_path / "large.jsonl"
    line = orjson.dumps({"name": "Ada Lovelace", "email": "ada@example.com", "note": "x" * 200})
    large.write_bytes((line + b"\n") * 20_000)
    assert estimated_records(large) == 20_000
    assert estimated_records(tmp_path / "missing.jsonl") is None


def test_import_progress_on_a_terminal_shows_a_total(database_url: str, tmp_path: Path) -> None:
    Cli(database_url).ok("orgs", "create", name := f"progress-{secrets.token_hex(3)}")
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"name": f"Lead {i}", "note": "x" * 300}) + b"\n"
                              for i in range(6_000)))
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*leads_api_command(), "import", "--org", name, str(path)],
        env={**os.environ, "LEADS_DATABASE_URL": database_url, "COLUMNS": "100"},
        stdout=subprocess.DEVNULL, stderr=terminal, stdin=subprocess.DEVNULL,
    )
    os.close(terminal)
    drawn = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    totals = {int(total) for _, total in re.findall(rb"(\d+)/(\d+)", drawn)}
    assert totals and all(5_900 <= total <= 6_100 for total in totals), drawn[-500:]


def test_help_fits_80_columns(cli: Cli) -> None:
    commands = [[], ["serve"], ["demo"], ["migrate"], ["import"], ["export"], ["orgs"],
                ["orgs", "create"], ["orgs", "update"], ["orgs", "list"], ["keys"],
                ["keys", "create"], ["keys", "list"], ["keys", "revoke"]]
    for command in commands:
        result = cli.ok(*command, "--help")
        for line in result.stdout.splitlines():
            assert len(line.rstrip()) <= 80, (command, line)


def test_a_limit_and_unlimited_together_are_refused(cli: Cli) -> None:
    name = f"both-{secrets.token_hex(3)}"
    cli.ok("orgs", "create", name, "--leads-limit", "10")
    message = cli.usage_error("orgs", "update", name, "--leads-limit", "5", "--unlimited")
    assert "--unlimited" in message and "--leads-limit" in message
    assert f"{name}\tallowBulkUpdates=False\tleadsLimit=10" in cli.ok("orgs", "list").stdout


def test_create_and_update_spell_the_bulk_update_flags_alike(cli: Cli) -> None:
    name = f"bulk-{secrets.token_hex(3)}"
    cli.ok("orgs", "create", name, "--no-bulk-updates")
    assert f"{name}\tallowBulkUpdates=False" in cli.ok("orgs", "list").stdout
    updated = cli.ok("orgs", "update", name, "--allow-bulk-updates").stdout
    assert "allowBulkUpdates=True" in updated
    assert "allowBulkUpdates=False" in cli.ok("orgs", "update", name, "--no-bulk-updates").stdout
    for command in (["orgs", "create"], ["orgs", "update"]):
        text = cli.ok(*command, "--help").stdout
        assert "--allow-bulk-updates" in text and "--no-bulk-updates" in text
        assert "--no-allow-bulk-updates" not in text
