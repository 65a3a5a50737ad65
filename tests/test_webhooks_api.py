"""/api/webhooks: subscriptions, tenancy, read-only keys, bad bodies, the address guard,
secret rotation, test events and the delivery log (against a real loopback receiver)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from conftest import ClientFor
from leads_api.store.tenants import Organization
from webhook_receiver import Receiver, Reply

ALL_EVENTS = ["lead.created", "lead.updated", "lead.status_changed"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADS_WEBHOOK_ALLOW_PRIVATE", "1")


def subscribe(client: TestClient, url: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/webhooks", json={"url": url, **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def error_of(response: Any) -> tuple[int, str, dict[str, Any]]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["details"]


@pytest.mark.usefixtures("allow_private")
def test_subscribe_list_read_change_delete(client: TestClient) -> None:
    created = subscribe(client, "https://hooks.example/zap", description=" Zapier ")
    assert re.fullmatch(r"wh_[0-9A-Za-z]{20}", created["id"])
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", created["secret"])
    assert created["events"] == ALL_EVENTS
    assert created["description"] == "Zapier"
    assert created["enabled"] is True and created["failing"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", created["createdAt"])
    listed = client.get("/api/webhooks").json()["data"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert client.head(f"/api/webhooks/{created['id']}").status_code == 200
    one = client.get(f"/api/webhooks/{created['id']}").json()["data"]
    assert "secret" not in one and one["url"] == "https://hooks.example/zap"
    changed = client.patch(
        f"/api/webhooks/{created['id']}",
        json={"events": ["lead.status_changed", "lead.created"], "enabled": False},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["events"] == ["lead.created", "lead.status_changed"]
    assert changed.json()["data"]["enabled"] is False
    deleted = client.delete(f"/api/webhooks/{created['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"/api/webhooks/{created['id']}").status_code == 404
    assert client.delete(f"/api/webhooks/{created['id']}").status_code == 404
    assert client.get("/api/webhooks").json()["data"] == []


@pytest.mark.usefixtures("allow_private")
def test_other_organizations_cannot_see_or_touch_a_subscription(
    client: TestClient, make_org: Callable[..., Organization], client_for: ClientFor
) -> None:
    mine = subscribe(client, "https://hooks.example/mine")
    with client_for(make_org()) as other:
        assert other.get("/api/webhooks").json()["data"] == []
        path = f"/api/webhooks/{mine['id']}"
        for method, suffix in (
            ("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret"),
            ("GET", "/deliveries"), ("POST", "/test"),
        ):
            body = {"enabled": False} if method == "PATCH" else None
            response = other.request(method, path + suffix, json=body)
            assert response.status_code == 404, (method, suffix, response.text)
    assert client.get(f"/api/webhooks/{mine['id']}").json()["data"]["enabled"] is True


@pytest.mark.usefixtures("allow_private")
def test_read_only_keys_may_read_but_not_change(
    client: TestClient, org: Organization, client_for: ClientFor
) -> None:
    hook = subscribe(client, "https://hooks.example/a")
    path = f"/api/webhooks/{hook['id']}"
    with client_for(org, read_only=True) as reader:
        assert reader.get("/api/webhooks").status_code == 200
        assert reader.get(path).status_code == 200
        assert reader.get(path + "/deliveries").status_code == 200
        for method, suffix, body in (
            ("POST", "", {"url": "https://hooks.example/b"}),
            ("PATCH", path, {"enabled": False}),
            ("DELETE", path, None),
            ("POST", path + "/rotate-secret", None),
            ("POST", path + "/test", None),
        ):
            response = reader.request(method, suffix or "/api/webhooks", json=body)
            assert error_of(response)[:2] == (403, "FORBIDDEN"), (method, suffix)
    assert len(client.get("/api/webhooks").json()["data"]) == 1


@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": 5}, "url"),
        ({"url": "ftp://hooks.example/x"}, "url"),
        ({"url": "https:///nohost"}, "url"),
        ({"url": "https://hooks.example:99999/"}, "url"),
        ({"url": "https://hooks.example/a b"}, "url"),
        ({"url": "https://hooks.example/" + "x" * 2000}, "url"),
        ({"url": "https://hooks.example/", "events": []}, "events"),
        ({"url": "https://hooks.example/", "events": "lead.created"}, "events"),
        ({"url": "https://hooks.example/", "events": ["lead.deleted"]}, "events"),
        ({"url": "https://hooks.example/", "description": 7}, "description"),
        ({"url": "https://hooks.example/", "description": "x" * 501}, "description"),
        ({"url": "https://hooks.example/", "enabled": False}, "enabled"),
        ({"url": "https://hooks.example/", "secret": "whsec_x"}, "secret"),
    ],
)
def test_bad_subscribe_bodies_name_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    status, code, details = error_of(client.post("/api/webhooks", json=body))
    assert (status, code, details.get("field")) == (400, "VALIDATION_ERROR", field)


@pytest.mark.usefixtures("allow_private")
def test_bad_changes_name_the_field(client: TestClient) -> None:
    hook = subscribe(client, "https://hooks.example/a")
    path = f"/api/webhooks/{hook['id']}"
    for body, field in (
        ({"enabled": "yes"}, "enabled"),
        ({"url": "mailto:a@b.example"}, "url"),
        ({"events": ["*"]}, "events"),
        ({"id": "wh_other"}, "id"),
    ):
        assert error_of(client.patch(path, json=body)) == (
            400, "VALIDATION_ERROR", {"field": field}
        )
    assert error_of(client.patch(path, content=b"[1]",
                                 headers={"content-type": "application/json"}))[:2] == (
        400, "VALIDATION_ERROR")
    assert error_of(client.get(path + "/deliveries?limit=0"))[2] == {"parameter": "limit"}
    assert error_of(client.get("/api/webhooks?page=2"))[:2] == (400, "INVALID_FILTER")
    unchanged = {k: v for k, v in hook.items() if k != "secret"}
    assert client.get(path).json()["data"] == unchanged


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "https://10.0.0.7/hook",
        "https://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
    ],
)
def test_the_address_guard_refuses_internal_addresses(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.delenv("LEADS_WEBHOOK_ALLOW_PRIVATE", raising=False)
    status, code, details = error_of(client.post("/api/webhooks", json={"url": url}))
    assert (status, code, details) == (400, "VALIDATION_ERROR", {"field": "url"})
    monkeypatch.setenv("LEADS_WEBHOOK_ALLOW_PRIVATE", "1")
    assert client.post("/api/webhooks", json={"url": url}).status_code == 201


def test_a_host_that_does_not_resolve_is_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEADS_WEBHOOK_ALLOW_PRIVATE", raising=False)
    response = client.post("/api/webhooks", json={"url": "https://no-such-host.invalid/x"})
    assert error_of(response) == (400, "VALIDATION_ERROR", {"field": "url"})
    assert "cannot be resolved" in response.json()["error"]["message"]


@pytest.mark.usefixtures("allow_private")
def test_a_test_event_is_signed_sent_and_logged(client: TestClient, receiver: Receiver) -> None:
    hook = subscribe(client, receiver.url)
    receiver.secrets = [hook["secret"]]
    response = client.post(f"/api/webhooks/{hook['id']}/test")
    assert response.status_code == 200, response.text
    result = response.json()["data"]
    assert result["outcome"] == "delivered" and result["statusCode"] == 200
    [arrived] = receiver.accepted
    assert arrived.id == result["eventId"] and arrived.type == "webhook.test"
    assert arrived.body["data"] == {"webhookId": hook["id"]}
    assert receiver.unverified == []
    receiver.respond = lambda _m: Reply(status=500)
    failed = client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]
    assert (failed["outcome"], failed["statusCode"], failed["nextRetryAt"]) == ("failed", 500, None)
    log = client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["data"]
    assert [(d["eventId"], d["outcome"], d["statusCode"]) for d in log] == [
        (failed["eventId"], "failed", 500),
        (result["eventId"], "delivered", 200),
    ]
    assert set(log[0]) == {
        "eventId", "type", "attempt", "outcome", "statusCode", "error", "durationMs",
        "attemptedAt", "nextRetryAt",
    }


@pytest.mark.usefixtures("allow_private")
def test_a_test_event_to_a_closed_port_reports_the_error(client: TestClient) -> None:
    closed = Receiver().start()
    url = closed.url
    closed.stop()
    hook = subscribe(client, url)
    result = client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]
    assert result["outcome"] == "failed" and result["statusCode"] is None
    assert "Connect" in result["error"]


@pytest.mark.usefixtures("allow_private")
def test_rotation_signs_with_both_secrets(client: TestClient, receiver: Receiver) -> None:
    hook = subscribe(client, receiver.url)
    rotated = client.post(f"/api/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["data"]["secret"]
    assert new_secret != hook["secret"] and new_secret.startswith("whsec_")
    for secret in (hook["secret"], new_secret):  # each alone verifies the same message
        receiver.secrets = [secret]
        assert client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]["outcome"] == (
            "delivered"
        )
    assert [m.signatures for m in receiver.accepted] == [2, 2]
    assert "secret" not in client.get(f"/api/webhooks/{hook['id']}").json()["data"]
