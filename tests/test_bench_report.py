"""The benchmark report's issue-13 targets (bench/report.py), from a result's JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's bench/

from bench.report import targets


def _api(req_s: float, p99: float) -> dict[str, Any]:
    return {"req_s": req_s, "p50_ms": p99 / 2, "p99_ms": p99, "repeats": 0, "errors": {}}


def _write(req_s: float, ok: bool = True) -> dict[str, Any]:
    return {"req_s": req_s, "p99_ms": 50.0, "check": {"ok": ok, "problems": [] if ok else ["x"]}}


def test_each_target_is_met_or_not_by_its_number() -> None:
    result = {
        "backend": "postgres",
        "fresh": {
            "ceiling": {"req_s": 3000.0},
            "shapes": [
                {"name": "Q1", "api": _api(1600, 90), "share_of_ceiling": 0.53},
                {"name": "Q2", "api": _api(1200, 300), "share_of_ceiling": 0.4},
                {"name": "Q6", "api": _api(250, 200), "share_of_ceiling": 0.08},
            ],
            "mixed": {"name": "mixed", "api": _api(900, 150)},
        },
        "load": {
            "import": {"leads_per_s": 9000}, "floor_indexed": {"leads_per_s": 10000},
            "export": {"leads_per_s": 60000, "share_of_floor": 0.5,
                       "floor": {"leads_per_s": 120000}},
        },
        "writes": {"without_webhook": {"create": _write(1100), "patch": _write(900)},
                   "with_webhook": {"create": _write(800), "patch": _write(700, ok=False)}},
    }
    marks = {name: met for name, met, _ in targets(result)}
    assert marks == {
        "fresh Q1 >= 1,000 req/s and >= 50 % of ceiling": True,
        "fresh Q2 >= 1,000 req/s and >= 50 % of ceiling": False,
        "fresh search p99 < 250 ms and >= 200 req/s": True,
        "every fresh p99 < 250 ms": False,
        "import >= 85 % of the indexed floor": True,
        "creates >= 1,000/s on PostgreSQL, 32 clients, none lost or duplicated": True,
        "no lost or duplicated write (every write run)": False,
        "export >= 50,000 leads/s (floor in the same run)": True,
    }
