"""The README's webhook receiver works as written: run from the README's own text, it
verifies and accepts a signed test event, and refuses one signed with another secret."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from server import free_port

README = Path(__file__).parent.parent / "README.md"


def readme_receiver() -> str:
    text = README.read_text()
    match = re.search(r"`receiver\.py`:\n\n```python\n(.*?)```", text, re.S)
    assert match, "the README's receiver.py block"
    return match.group(1)


def test_the_readme_receiver_verifies_and_accepts_events(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADS_WEBHOOK_ALLOW_PRIVATE", "1")
    port = free_port()
    hook = client.post("/api/webhooks", json={"url": f"http://127.0.0.1:{port}/"}).json()["data"]
    script = tmp_path / "receiver.py"
    script.write_text(readme_receiver())
    log = tmp_path / "receiver.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(script)],
            env={"WEBHOOK_SECRET": hook["secret"], "PORT": str(port), "PATH": ""},
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        result = client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]
        assert (result["outcome"], result["statusCode"]) == ("delivered", 204)
        client.post(f"/api/webhooks/{hook['id']}/rotate-secret")  # old and new both sign
        assert client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]["statusCode"] == 204
        forged = httpx.post(
            f"http://127.0.0.1:{port}/", content=b'{"type":"lead.created"}',
            headers={"webhook-id": "evt_1", "webhook-timestamp": str(int(time.time())),
                     "webhook-signature": "v1,AAAA"},
        )
        assert forged.status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert log.read_text().count("webhook.test") == 2
