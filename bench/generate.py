"""The benchmark's data: five organizations of realistic leads, deterministic for a seed.

Organizations are sized about 60/20/12/7/1 % of the rows; each one's leads come from its own
seeded `LeadSampler` over the two years before a fixed "now", sorted by creation time as a
table that grew over those years would hold them. They are written as JSONL lead objects,
exactly as GET returns them, for `leads-api import`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from leads_api.fields import LEAD_FIELDS
from leads_api.lead import row_to_object
from leads_api.sample import LeadSampler

# A fixed "now" keeps the data identical from run to run; the queries' date window
# (bench.queries) lies inside the two years before it.
NOW_MS = int(datetime(2026, 11, 26, tzinfo=UTC).timestamp() * 1000)
SPAN_DAYS = 730
T = TypeVar("T")
ORG_SHARES: tuple[tuple[str, float], ...] = (
    ("org60", 0.60), ("org20", 0.20), ("org12", 0.12), ("org07", 0.07), ("org01", 0.01),
)


@dataclass(frozen=True)
class OrgData:
    name: str
    leads: int
    seed: int
    file: str  # JSONL file name inside the dataset directory


@dataclass(frozen=True)
class Dataset:
    directory: Path
    rows: int
    seed: int
    orgs: tuple[OrgData, ...]

    @property
    def largest(self) -> OrgData:
        return max(self.orgs, key=lambda o: o.leads)

    @property
    def smallest(self) -> OrgData:
        return min(self.orgs, key=lambda o: o.leads)

    def path(self, org: OrgData) -> Path:
        return self.directory / org.file


def plan(rows: int, seed: int) -> tuple[OrgData, ...]:
    """Organization sizes for `rows` leads; the largest takes the rounding remainder."""
    sizes = [round(rows * share) for _, share in ORG_SHARES]
    sizes[0] = rows - sum(sizes[1:])
    return tuple(
        OrgData(name, size, seed * 100 + i, f"{name}.jsonl")
        for i, ((name, _), size) in enumerate(zip(ORG_SHARES, sizes, strict=True))
    )


def org_rows(org: OrgData, convert: Callable[[dict[str, Any]], T]) -> list[T]:
    """The organization's leads, each passed through `convert`, oldest first.

    Converting as they are drawn keeps only the converted form in memory.
    """
    sampler = LeadSampler(seed=org.seed)
    keyed = [
        ((row["created_at"], row["id"]), convert(row))
        for row in sampler.leads(org.leads, now_ms=NOW_MS, span_days=SPAN_DAYS)
    ]
    keyed.sort(key=lambda pair: pair[0])
    return [converted for _, converted in keyed]


def lead_object(row: dict[str, Any]) -> dict[str, Any]:
    """A sampled row (by column name) -> the lead object GET would return for it."""
    return row_to_object(LEAD_FIELDS, [row.get(f.column) for f in LEAD_FIELDS])


def _json_line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(lead_object(row)) + b"\n"


def dataset(directory: Path, rows: int, seed: int) -> Dataset:
    """The dataset for (rows, seed) under `directory`, generated unless already there.

    The manifest is written last, so an interrupted generation is redone.
    """
    target = directory / f"rows{rows}-seed{seed}"
    manifest = target / "manifest.json"
    orgs = plan(rows, seed)
    found = Dataset(target, rows, seed, orgs)
    if manifest.exists() and json.loads(manifest.read_text()) == _manifest(found):
        return found
    target.mkdir(parents=True, exist_ok=True)
    for org in orgs:
        partial = target / (org.file + ".tmp")
        with partial.open("wb") as out:
            out.writelines(org_rows(org, _json_line))
        partial.replace(target / org.file)
    manifest.write_text(json.dumps(_manifest(found), indent=2))
    return found


def _manifest(data: Dataset) -> dict[str, Any]:
    return {
        "rows": data.rows, "seed": data.seed, "now_ms": NOW_MS, "span_days": SPAN_DAYS,
        "orgs": [asdict(o) for o in data.orgs],
    }
