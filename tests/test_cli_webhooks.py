"""`leads-api webhooks create|list|delete|deliveries`: the subscriptions API's twin."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from cli_support import Cli
from leads_api.store.tenants import Organization
from webhook_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_create_list_deliveries_delete(
    cli: Cli, org: Organization, client: TestClient, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADS_WEBHOOK_ALLOW_PRIVATE", "1")
    created = cli.ok(
        "webhooks", "create", "--org", org.name, "--url", receiver.url,
        "--event", "lead.created", "--event", "lead.status_changed", "--description", "CRM",
    ).output
    webhook_id = re.search(r"wh_\w+", created)
    assert webhook_id is not None
    secret = created.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    listed = cli.ok("webhooks", "list", "--org", org.name).output
    assert webhook_id[0] in listed and "lead.created,lead.status_changed" in listed
    assert secret not in listed and "enabled" in listed
    receiver.secrets.append(secret)
    assert client.post(f"/api/webhooks/{webhook_id[0]}/test").json()["data"]["outcome"] == (
        "delivered"
    )
    deliveries = cli.ok("webhooks", "deliveries", webhook_id[0], "--org", org.name).output
    assert "webhook.test" in deliveries and "delivered\t200" in deliveries
    cli.ok("webhooks", "delete", webhook_id[0], "--org", org.name)
    assert cli.ok("webhooks", "list", "--org", org.name).output == ""
    assert "No webhook" in cli.usage_error("webhooks", "delete", webhook_id[0], "--org", org.name)


def test_bad_input_is_a_usage_error(
    cli: Cli, org: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEADS_WEBHOOK_ALLOW_PRIVATE", raising=False)
    assert "loopback" in cli.usage_error(
        "webhooks", "create", "--org", org.name, "--url", "http://127.0.0.1:9/x"
    )
    assert "http:// or https://" in cli.usage_error(
        "webhooks", "create", "--org", org.name, "--url", "ftp://example.com/x"
    )
    assert "lead.deleted" in cli.usage_error(
        "webhooks", "create", "--org", org.name, "--url", "https://example.com/x",
        "--event", "lead.deleted",
    )
    assert "No organization" in cli.usage_error("webhooks", "list", "--org", "nope-nope")
