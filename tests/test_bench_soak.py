"""The soak's summary of the server's own time per route, read from its access log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's bench/

from bench.soak import by_route


def test_by_route_reads_only_the_measured_run_and_groups_one_lead_reads(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    before = json.dumps({"event": "request", "method": "GET", "path": "/api/leads",
                         "durationMs": 999.0})
    log.write_text(before + "\n")
    start = log.stat().st_size
    lines = [
        {"event": "request", "method": "POST", "path": "/api/leads", "durationMs": 10.0},
        {"event": "request", "method": "POST", "path": "/api/leads", "durationMs": 30.0},
        {"event": "request", "method": "GET", "path": "/api/leads/lead_a", "durationMs": 2.0},
        {"event": "request", "method": "GET", "path": "/api/leads/lead_b", "durationMs": 4.0},
        {"event": "request", "method": "GET", "path": "/api/leads/changes", "durationMs": 5.0},
        {"event": "startup", "message": "not a request"},
    ]
    with log.open("a") as out:
        out.write("INFO: uvicorn says something that is not JSON\n")
        out.writelines(json.dumps(line) + "\n" for line in lines)
    summary = by_route(log, start)
    assert set(summary) == {"POST /api/leads", "GET /api/leads/{id}", "GET /api/leads/changes"}
    assert summary["POST /api/leads"] == {
        "requests": 2, "p50_ms": 30.0, "p90_ms": 30.0, "p99_ms": 30.0, "max_ms": 30.0
    }
    assert summary["GET /api/leads/{id}"]["requests"] == 2
    assert summary["GET /api/leads/{id}"]["max_ms"] == 4.0
