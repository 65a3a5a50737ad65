"""`leads-api export`, and export -> import round trips, on both databases.

GET /api/leads is the witness: an export must hold exactly the leads, values and order GET
returns for the same query.
"""

from __future__ import annotations

import csv
import secrets
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from cli_support import Cli
from leads_api.fields import FIELD_NAMES
from leads_api.lead import new_lead_id
from leads_api.sample import LeadSampler
from leads_api.store import Store
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import insert_leads

QUERIES = (
    "",
    "status=won",
    "status=won,lost&sort=value:desc",
    "source=gtm&utm_source=google&sort=name:asc,createdAt:desc",
    "value[gte]=100&value[lt]=20000&gclid[exists]=true",
    "search=smith&sort=email",
    "createdAt[gte]=2026-06-01&updated_after=2026-07-01",
)


@pytest.fixture
def seeded(org: Organization, store: Store) -> Organization:
    """`org` with 300 realistic leads over the year before 2026-11-26."""
    seed(store, org, 300)
    return org


def seed(store: Store, org: Organization, count: int) -> None:
    sampler = LeadSampler(seed=secrets.randbits(32))  # ids are global: a fresh stream each time
    with store.write() as conn:
        insert_leads(conn, org_id=org.id, rows=sampler.leads(count, now_ms=1_795_651_200_000))


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines()]


def as_csv_cells(lead: dict[str, Any]) -> dict[str, str]:
    """A lead object as the CSV export writes it: null empty, booleans true/false."""
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return {name: cell(lead[name]) for name in FIELD_NAMES}


def without_id(leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rest = [{k: v for k, v in lead.items() if k != "id"} for lead in leads]
    return sorted(rest, key=lambda lead: orjson.dumps(lead, option=orjson.OPT_SORT_KEYS))


# --- what an export holds ---------------------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES)
def test_jsonl_export_is_what_get_returns(
    cli: Cli, seeded: Organization, read: Any, query: str
) -> None:
    exported = parse_jsonl(cli.ok("export", "--org", seeded.name, "--query", query).stdout_bytes)
    expected = read(seeded, query)
    assert exported == expected
    assert query or len(exported) == 300


@pytest.mark.parametrize("query", ["status=won,lost&sort=value:desc", "search=gmail"])
def test_csv_export_is_what_get_returns(
    cli: Cli, seeded: Organization, read: Any, query: str, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    cli.ok("export", "--org", seeded.name, "--query", query, "-o", path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == list(FIELD_NAMES)
        rows = list(reader)
    expected = read(seeded, query)
    assert rows == [as_csv_cells(lead) for lead in expected] and expected


def test_format_from_option_or_extension(cli: Cli, seeded: Organization, tmp_path: Path) -> None:
    as_csv = cli.ok("export", "--org", seeded.name, "--format", "csv").stdout
    assert as_csv.splitlines()[0] == ",".join(FIELD_NAMES)
    forced = tmp_path / "leads.jsonl"
    cli.ok("export", "--org", seeded.name, "--format", "csv", "-o", forced)
    assert forced.read_text().startswith("id,name,")
    by_name = tmp_path / "LEADS.JSONL"
    cli.ok("export", "--org", seeded.name, "-o", by_name)
    assert len(parse_jsonl(by_name.read_bytes())) == 300


def test_an_empty_result_is_an_empty_file(cli: Cli, org: Organization, tmp_path: Path) -> None:
    assert cli.ok("export", "--org", org.name).stdout_bytes == b""
    path = tmp_path / "none.csv"
    cli.ok("export", "--org", org.name, "-o", path)
    assert path.read_text() == ",".join(FIELD_NAMES) + "\n"


def test_an_export_holds_only_its_organizations_leads(
    cli: Cli, seeded: Organization, make_org: Callable[..., Organization], store: Store
) -> None:
    other = make_org()
    seed(store, other, 5)
    mine = parse_jsonl(cli.ok("export", "--org", seeded.name).stdout_bytes)
    theirs = parse_jsonl(cli.ok("export", "--org", other.name).stdout_bytes)
    assert len(mine) == 300 and len(theirs) == 5
    assert not {lead["id"] for lead in mine} & {lead["id"] for lead in theirs}


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--query", "status=won&limit=10"], "'limit' is not allowed"),
        (["--query", "page=2"], "'page' is not allowed"),
        (["--query", "fields=id,name"], "'fields' is not allowed"),
        (["--query", "status=pending"], "--query: Invalid status 'pending'"),
        (["--query", "colour=red"], "--query: Unknown query parameter 'colour'"),
        (["--query", "createdAt[gte]=2026-02-30"], "--query:"),
        (["--format", "xml"], "--format must be one of jsonl, csv"),
        (["-o", "leads.xlsx"], "Cannot tell the format from 'leads.xlsx'"),
    ],
)
def test_mistakes_are_usage_errors_and_write_nothing(
    cli: Cli, seeded: Organization, options: list[str], words: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert words in cli.usage_error("export", "--org", seeded.name, *options)
    assert list(tmp_path.iterdir()) == []


def test_unknown_organization_writes_no_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    assert "No organization named" in cli.usage_error("export", "--org", "nope-x", "-o", path)
    assert list(tmp_path.iterdir()) == []


# --- round trips ------------------------------------------------------------------------------


def test_export_then_import_into_the_same_organization_changes_nothing(
    cli: Cli, seeded: Organization, read: Any, tmp_path: Path
) -> None:
    before = read(seeded)
    for name in ("leads.jsonl", "leads.csv"):
        path = tmp_path / name
        cli.ok("export", "--org", seeded.name, "-o", path)
        result = cli.ok("import", "--org", seeded.name, path)
        assert result.stdout.endswith(": 0 created, 0 updated, 300 unchanged, 0 skipped\n")
    assert read(seeded) == before


def test_a_file_of_objects_comes_back_identical_ids_included(
    cli: Cli, seeded: Organization, make_org: Callable[..., Organization], read: Any,
    tmp_path: Path,
) -> None:
    """File -> a fresh organization -> file. Ids are global, so the objects get new ones."""
    source = parse_jsonl(cli.ok("export", "--org", seeded.name).stdout_bytes)
    objects = [{**lead, "id": new_lead_id()} for lead in source]
    path = tmp_path / "objects.jsonl"
    path.write_bytes(b"".join(orjson.dumps(lead) + b"\n" for lead in objects))
    fresh = make_org(attribution_days=7)  # given expiresAt values are kept, not recomputed
    cli.ok("import", "--org", fresh.name, path)
    assert parse_jsonl(cli.ok("export", "--org", fresh.name).stdout_bytes) == objects
    csv_path = tmp_path / "objects.csv"
    cli.ok("export", "--org", fresh.name, "-o", csv_path)
    csv_fresh = make_org()
    with csv_path.open(newline="") as src, (tmp_path / "new-ids.csv").open("w") as dst:
        rows = list(csv.reader(src))
        id_to_new = {row[0]: new_lead_id() for row in rows[1:]}
        csv.writer(dst).writerows([rows[0], *([id_to_new[r[0]], *r[1:]] for r in rows[1:])])
    cli.ok("import", "--org", csv_fresh.name, tmp_path / "new-ids.csv")
    renamed = [{**lead, "id": id_to_new[lead["id"]]} for lead in objects]
    assert read(csv_fresh) == renamed


def test_without_ids_every_other_field_comes_back(
    cli: Cli, seeded: Organization, make_org: Callable[..., Organization], read: Any,
    tmp_path: Path,
) -> None:
    exported = parse_jsonl(cli.ok("export", "--org", seeded.name).stdout_bytes)
    path = tmp_path / "no-ids.jsonl"
    path.write_bytes(b"".join(
        orjson.dumps({k: v for k, v in lead.items() if k != "id"}) + b"\n" for lead in exported
    ))
    fresh = make_org()
    assert cli.ok("import", "--org", fresh.name, path).stdout.endswith(
        ": 300 created, 0 updated, 0 unchanged, 0 skipped\n"
    )
    imported = read(fresh)
    assert without_id(imported) == without_id(exported)
    assert not {lead["id"] for lead in imported} & {lead["id"] for lead in exported}


# --- streaming ------------------------------------------------------------------------------


def test_export_streams_in_bounded_memory(
    cli: Cli, org: Organization, store: Store, tmp_path: Path
) -> None:
    """20,000 leads as objects in a list would take ~45 MB; streamed, a few MB at a time."""
    count = 20_000
    seed(store, org, count)
    for fmt in ("jsonl", "csv"):
        path = tmp_path / f"all.{fmt}"
        tracemalloc.start()
        try:
            cli.ok("export", "--org", org.name, "-o", path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        lines = path.read_bytes().count(b"\n")
        assert lines == count + (fmt == "csv")
        assert peak < 15_000_000, f"{fmt}: peak {peak / 1e6:.1f} MB"

