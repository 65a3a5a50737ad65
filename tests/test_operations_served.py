"""Operating a real `leads-api serve --workers 2`: its address printed, one access-log line
per request on stderr, and metrics added up over both worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import running_server

pytestmark = pytest.mark.server

REQUESTS = 24


def _check_total(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "leads_http_requests_total"
                    and sample.labels == {"route": "/api/check", "method": "GET",
                                          "status": "401"}):
                return sample.value
    return 0.0


def test_two_workers_print_their_address_log_every_request_and_share_metrics(
    database_url: str, tmp_path: Path
) -> None:
    env = {"LEADS_METRICS": "1", "LEADS_LOG_FORMAT": "json"}
    with running_server(database_url, tmp_path, workers=2, env=env) as server:
        ids = []
        for _ in range(REQUESTS):  # a new connection each: the kernel spreads them
            with httpx.Client(base_url=server.base_url, timeout=10) as http:
                ids.append(http.get("/api/check").headers["X-Request-Id"])
        totals = set()
        for _ in range(6):  # any worker may answer; each must add up both
            with httpx.Client(base_url=server.base_url, timeout=10) as http:
                response = http.get("/metrics")
                assert response.status_code == 200
                totals.add(_check_total(response.text))
        log = server.log()
    # The start-up probe asked /api/check too, so at least REQUESTS, and the same everywhere.
    assert len(totals) == 1 and totals.pop() >= REQUESTS
    assert f"serving on http://127.0.0.1:{server.port} with 2 worker processes" in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    logged = {line["requestId"] for line in lines if line.get("event") == "request"}
    assert set(ids) <= logged
