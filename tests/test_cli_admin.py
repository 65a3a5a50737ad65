"""`leads-api orgs` and `leads-api keys`, run as a user would, on both databases."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from cli_support import Cli
from leads_api.store import Store
from leads_api.store.tenants import Organization, find_organization


def _name() -> str:
    return f"cli-{secrets.token_hex(6)}"


def _stored(store: Store, name: str) -> Organization | None:
    with store.read() as conn:
        return find_organization(conn, name)


def test_orgs_create_takes_its_options(cli: Cli, store: Store) -> None:
    name = _name()
    result = cli.ok(
        "orgs", "create", name, "--allow-bulk-updates", "--leads-limit", "500",
        "--attribution-days", "30",
    )
    org = _stored(store, name)
    assert org is not None and name in result.stdout
    assert (org.allow_bulk_updates, org.leads_limit, org.attribution_days) == (True, 500, 30)
    assert f"\t{name}\tallowBulkUpdates=True\tleadsLimit=500\tattributionDays=30" in (
        cli.ok("orgs", "list").stdout
    )


def test_orgs_create_defaults(cli: Cli, store: Store) -> None:
    name = _name()
    cli.ok("orgs", "create", name)
    org = _stored(store, name)
    assert org is not None
    assert (org.allow_bulk_updates, org.leads_limit, org.attribution_days) == (False, None, 90)


def test_orgs_create_refuses_a_taken_name(cli: Cli, store: Store) -> None:
    name = _name()
    cli.ok("orgs", "create", name, "--attribution-days", "30")
    assert "already exists" in cli.usage_error("orgs", "create", name)
    org = _stored(store, name)
    assert org is not None and org.attribution_days == 30  # the first one, untouched


@pytest.mark.parametrize("option", [["--attribution-days", "0"], ["--leads-limit", "-1"]])
def test_orgs_create_refuses_bad_settings(cli: Cli, store: Store, option: list[str]) -> None:
    name = _name()
    assert option[0] in cli.usage_error("orgs", "create", name, *option)
    assert _stored(store, name) is None


def _new_key(cli: Cli, org: str, *options: str) -> tuple[str, str]:
    """(key id, secret) from `keys create`, whose last line is the secret alone."""
    out = cli.ok("keys", "create", "--org", org, *options).stdout
    *_, secret = out.strip().splitlines()
    key_id = next(word for word in out.split() if word.startswith("key_"))
    return key_id, secret


def test_created_key_is_printed_alone_on_the_last_line_and_works(
    cli: Cli, app: Any, add_leads: Any, org: Organization
) -> None:
    (row,) = add_leads({"name": "Ada"})
    key_id, secret = _new_key(cli, org.name, "--name", "zapier")
    assert secret.startswith("lak_") and " " not in secret
    assert key_id in cli.ok("keys", "list", "--org", org.name).stdout
    with TestClient(app, headers={"X-API-KEY": secret}) as client:
        assert client.get("/api/check").json() == {"success": True}
        assert [lead["id"] for lead in client.get("/api/leads").json()["data"]] == [row["id"]]
        created = client.post("/api/leads", json={"email": "new@example.com"})
        assert created.status_code == 201


def test_keys_list_shows_keys_without_their_secrets(cli: Cli, org: Organization) -> None:
    write_id, write_secret = _new_key(cli, org.name, "--name", "crm")
    read_id, read_secret = _new_key(cli, org.name, "--read-only")
    listing = cli.ok("keys", "list", "--org", org.name).stdout
    lines = {line.split("\t")[0]: line for line in listing.splitlines()}
    assert set(lines) == {write_id, read_id}
    assert "\tcrm\tread-write\t" in lines[write_id] and "\tactive" in lines[write_id]
    assert "\t-\tread-only\t" in lines[read_id]
    for secret in (write_secret, read_secret):
        assert secret not in listing and secret[len("lak_"):][:12] not in listing


def test_read_only_key_reads_but_cannot_write(cli: Cli, org: Organization, app: Any) -> None:
    _, secret = _new_key(cli, org.name, "--read-only")
    with TestClient(app, headers={"X-API-KEY": secret}) as client:
        assert client.get("/api/leads").status_code == 200
        refused = client.post("/api/leads", json={"email": "x@example.com"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"


def test_revoked_key_gets_401(cli: Cli, org: Organization, app: Any) -> None:
    key_id, secret = _new_key(cli, org.name)
    _, other = _new_key(cli, org.name)
    cli.ok("keys", "revoke", key_id)
    with TestClient(app) as client:
        refused = client.get("/api/leads", headers={"X-API-KEY": secret})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "UNAUTHORIZED"
        assert client.get("/api/leads", headers={"X-API-KEY": other}).status_code == 200
    (line,) = [x for x in cli.ok("keys", "list", "--org", org.name).stdout.splitlines()
               if x.startswith(key_id)]
    assert "\trevoked " in line
    assert "already revoked" in cli.usage_error("keys", "revoke", key_id)
    assert "No key" in cli.usage_error("keys", "revoke", "key_doesnotexist")


@pytest.mark.parametrize("command", [["keys", "create"], ["keys", "list"]])
def test_keys_for_an_unknown_organization_is_a_usage_error(cli: Cli, command: list[str]) -> None:
    assert "No organization named" in cli.usage_error(*command, "--org", _name())


def test_usage_errors_print_one_line_and_exit_1(database_url: str) -> None:
    """The installed command: `Error: ...` on stderr, exit 1, never a traceback."""
    leads_api = Path(sys.executable).with_name("leads-api")
    done = subprocess.run(
        [str(leads_api), "keys", "list", "--org", "no-such-org"],
        env={**os.environ, "LEADS_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: No organization named 'no-such-org'")
    assert "Traceback" not in done.stderr and done.stdout == ""
