"""`leads-api import`: JSONL and CSV lead objects, in one transaction, on both databases.

What was stored is read back through the API (GET), not through the importer's own code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.testclient import TestClient

from cli_support import Cli
from leads_api.fields import FIELD_NAMES
from leads_api.lead import new_lead_id
from leads_api.store.tenants import Organization

DAY_MS = 86_400_000


def jsonl(path: Path, *lines: dict[str, Any] | str) -> Path:
    """A JSONL file; a str is written as the raw line (blank lines and broken JSON)."""
    path.write_bytes(b"".join(
        (line.encode() if isinstance(line, str) else orjson.dumps(line)) + b"\n"
        for line in lines
    ))
    return path


def ms(timestamp: str) -> int:
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1000)


def full_lead(**values: Any) -> dict[str, Any]:
    """A complete lead object as GET writes it, every field set where it can be."""
    lead: dict[str, Any] = dict.fromkeys(FIELD_NAMES)
    lead.update({
        "id": new_lead_id(), "name": "Ada Lovelace", "email": "ada@example.com",
        "phone": "+44 20 7946 0000", "status": "won", "value": 99.5, "note": "Met at the fair",
        "custom": '{"plan":"pro"}', "conversionName": "Purchase", "source": "gtm",
        "website": "https://example.com", "path": "/pricing", "gclid": "Cj0KCQiA",
        "fbc": "fb.1.1554763741205.AbCdEf", "li_fat_id": "li-123", "dclid": "CJ-dclid",
        "wbraid": "wb-1", "gbraid": "gb-1", "epik": "dj0yJnU9", "sessionId": "sess-42",
        "utm_source": "google",
        "utm_medium": "cpc", "utm_campaign": "spring", "ad_storage": True,
        "ad_user_data": False, "ad_personalization": True, "googleAdsCampaignId": "1234",
        "googleAdsCampaignName": "Spring", "googleAdsAdGroupId": "55",
        "googleAdsAdGroupName": "Shoes", "googleAdsAdId": "77", "labelId": "label_01",
        "selectedConversionEventId": "ev_9", "createdAt": "2026-01-15T10:30:00.000Z",
        "updatedAt": "2026-02-01T08:00:00.250Z", "qualifiedAt": "2026-01-20T00:00:00.000Z",
        "expiresAt": "2026-04-15T10:30:00.000Z",
    })
    lead.update(values)
    return lead


def summary(result: Any) -> str:
    return result.stdout.strip().splitlines()[-1].split(": ", 1)[1]


def bad_lines(result: Any) -> dict[int, str]:
    found = re.findall(r"line (\d+): (.*)", result.stderr)
    return {int(line): message for line, message in found}


# --- what a lead keeps and what it gets by default ------------------------------------------


def test_given_values_are_kept_exactly(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    lead = full_lead()
    lost = full_lead(status="lost", lossReason="Too expensive", value=5000, source="manual",
                     createdAt="2025-12-31T23:59:59.999Z", qualifiedAt=None,
                     custom=None, ad_storage=None)
    result = cli.ok("import", "--org", org.name, jsonl(tmp_path / "leads.jsonl", lead, lost))
    assert summary(result) == "2 created, 0 updated, 0 unchanged, 0 skipped"
    assert read(org) == [lead, lost]


def test_absent_values_get_the_defaults(
    make_org: Callable[..., Organization], read: Any, cli: Cli, tmp_path: Path
) -> None:
    org = make_org(attribution_days=30)
    before = datetime.now(UTC).timestamp() * 1000
    cli.ok("import", "--org", org.name, jsonl(tmp_path / "a.jsonl", {"email": "grace@x.org"}))
    after = datetime.now(UTC).timestamp() * 1000
    (lead,) = read(org)
    assert re.fullmatch(r"lead_[0-9A-Za-z]{20}", lead["id"])
    assert (lead["email"], lead["status"], lead["source"]) == ("grace@x.org", "open", "import")
    assert before - 1 <= ms(lead["createdAt"]) <= after + 1
    assert lead["updatedAt"] == lead["createdAt"]
    assert ms(lead["expiresAt"]) == ms(lead["createdAt"]) + 30 * DAY_MS
    assert lead["qualifiedAt"] is None and lead["value"] is None


def test_values_are_read_like_a_post_body(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    """Trimmed strings, empty as null, consent words, numeric strings, JSON custom."""
    cli.ok("import", "--org", org.name, jsonl(
        tmp_path / "a.jsonl",
        {"name": "  Bo  ", "email": "", "value": "12.50", "ad_storage": "granted",
         "ad_user_data": "denied", "custom": {"a": [1, 2]}, "status": " qualified ",
         "createdAt": "2026-03-01T10:00:00+02:00"},
    ))
    (lead,) = read(org)
    assert (lead["name"], lead["email"], lead["value"]) == ("Bo", None, 12.5)
    assert (lead["ad_storage"], lead["ad_user_data"]) == (True, False)
    assert (lead["custom"], lead["status"]) == ('{"a":[1,2]}', "qualified")
    assert lead["createdAt"] == "2026-03-01T08:00:00.000Z"


def test_csv_header_names_the_fields_and_empty_cells_are_null(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    lead_id = new_lead_id()
    path = tmp_path / "leads.csv"
    path.write_text(
        "id,name,email,value,ad_storage,note,createdAt,status,custom\n"
        f'{lead_id},"Smith, Jane",jane@example.com,12.25,true,"line one\nline two",'
        '2026-03-01T00:00:00.000Z,qualified,"{""k"":1}"\n'
        ",Bob,,,false,,,,\n",
        encoding="utf-8",
    )
    assert summary(cli.ok("import", "--org", org.name, path)).startswith("2 created")
    bob, jane = sorted(read(org), key=lambda lead: lead["name"])
    assert {k: jane[k] for k in ("id", "name", "email", "value", "ad_storage", "note",
                                 "createdAt", "status", "custom")} == {
        "id": lead_id, "name": "Smith, Jane", "email": "jane@example.com", "value": 12.25,
        "ad_storage": True, "note": "line one\nline two",
        "createdAt": "2026-03-01T00:00:00.000Z", "status": "qualified", "custom": '{"k":1}',
    }
    assert (bob["name"], bob["email"], bob["value"], bob["ad_storage"], bob["status"]) == (
        "Bob", None, None, False, "open"
    )


def test_import_is_not_held_to_the_monthly_leads_limit(
    make_org: Callable[..., Organization], read: Any, cli: Cli, tmp_path: Path
) -> None:
    org = make_org(leads_limit=1)
    path = jsonl(tmp_path / "a.jsonl", *({"name": f"n{i}"} for i in range(3)))
    assert summary(cli.ok("import", "--org", org.name, path)).startswith("3 created")
    assert len(read(org)) == 3


# --- a bad file -------------------------------------------------------------------------------

BAD_JSONL = (
    {"name": "Good One"},                                   # 1
    {"name": "x", "colour": "red"},                         # 2 unknown key
    "",                                                     # 3 blank: skipped, still counted
    {"name": "y", "status": "done"},                        # 4
    {"name": "z", "value": -1},                             # 5
    '{"name": "broken"',                                    # 6 not JSON
    {"note": "only a note"},                                # 7 no name/email/phone/custom
    {"id": "lead_short", "name": "q"},                      # 8
    {"name": "w", "createdAt": "2026-02-30"},               # 9
    '["a list"]',                                           # 10
    {"name": "v", "ad_storage": "maybe"},                   # 11
    {"name": "Good Two", "createdAt": "2026-01-01T00:00:00.000Z"},  # 12
)
BAD_JSONL_FIELDS = {
    2: "colour", 4: "status", 5: "value", 6: "JSON", 7: "name", 8: "id", 9: "createdAt",
    10: "object", 11: "ad_storage",
}


def test_a_bad_file_writes_nothing_and_reports_every_bad_line(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "bad.jsonl", *BAD_JSONL)
    result = cli("import", "--org", org.name, path)
    assert result.exit_code == 1
    assert "9 invalid lead(s)" in str(result.exception)
    reported = bad_lines(result)
    assert set(reported) == set(BAD_JSONL_FIELDS)
    for line, word in BAD_JSONL_FIELDS.items():
        assert word in reported[line], (line, reported[line])
    assert read(org) == []


def test_skip_invalid_imports_the_good_lines_and_reports_the_rest(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "bad.jsonl", *BAD_JSONL)
    result = cli.ok("import", "--org", org.name, path, "--skip-invalid")
    assert summary(result) == "2 created, 0 updated, 0 unchanged, 9 skipped"
    assert set(bad_lines(result)) == set(BAD_JSONL_FIELDS)
    assert sorted(lead["name"] for lead in read(org)) == ["Good One", "Good Two"]


def test_csv_line_numbers_are_the_files_own(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "name,email,status,note\n"  # 1
        'Ann,ann@example.com,open,"two\n'  # 2
        'lines"\n'  # 3
        "Bea,bea@example.com,pending,\n"  # 4 bad status
        "Cy,cy@example.com,open\n"  # 5 a cell short
        ",,,\n"  # 6 nothing to know the lead by
        "\n"  # 7 blank
        "Di,di@example.com,won,ok\n"  # 8
        "Ed,ed@example.com,lost,\"a\x00b\"\n",  # 9 NUL
        encoding="utf-8",
    )
    result = cli("import", "--org", org.name, path)
    assert result.exit_code == 1
    reported = bad_lines(result)
    assert set(reported) == {4, 5, 6, 9}
    assert "status" in reported[4] and "header has 4" in reported[5]
    assert read(org) == []


# --- ids: update in place, other organizations, duplicates -----------------------------------


def test_importing_a_file_twice_changes_nothing(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    leads = [full_lead(), full_lead(name="Bob", createdAt="2026-01-01T00:00:00.000Z"),
             {"id": new_lead_id(), "email": "no-timestamps@example.com"}]
    path = jsonl(tmp_path / "a.jsonl", *leads)
    assert summary(cli.ok("import", "--org", org.name, path)).startswith("3 created")
    first = read(org)
    again = cli.ok("import", "--org", org.name, path)
    assert summary(again) == "0 created, 0 updated, 3 unchanged, 0 skipped"
    assert read(org) == first


def test_a_known_id_is_updated_in_place(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    lead = full_lead(status="won", lossReason=None)
    cli.ok("import", "--org", org.name, jsonl(tmp_path / "a.jsonl", lead))
    change = {"id": lead["id"], "status": "lost", "lossReason": "No budget"}
    before = datetime.now(UTC).timestamp() * 1000
    result = cli.ok("import", "--org", org.name, jsonl(tmp_path / "b.jsonl", change))
    assert summary(result) == "0 created, 1 updated, 0 unchanged, 0 skipped"
    (stored,) = read(org)
    assert ms(stored["updatedAt"]) >= before - 1  # a change without updatedAt is now
    assert stored == {**lead, **change, "updatedAt": stored["updatedAt"]}
    # The rollups behind totals moved with the update.
    assert read(org, "status=lost") == [stored] and read(org, "status=won") == []

    given = {"id": lead["id"], "createdAt": "2026-05-01T00:00:00.000Z",
             "updatedAt": "2026-05-02T00:00:00.000Z"}
    cli.ok("import", "--org", org.name, jsonl(tmp_path / "c.jsonl", given))
    (stored,) = read(org)
    assert (stored["createdAt"], stored["updatedAt"]) == (given["createdAt"], given["updatedAt"])
    assert ms(stored["expiresAt"]) == ms(given["createdAt"]) + org.attribution_days * DAY_MS


def test_an_id_of_another_organization_fails_its_line(
    cli: Cli, org: Organization, make_org: Callable[..., Organization], add_leads: Any,
    read: Any, tmp_path: Path,
) -> None:
    other = make_org()
    (theirs,) = add_leads({"name": "Theirs"}, into=other)
    path = jsonl(tmp_path / "a.jsonl", {"name": "Mine"}, {"id": theirs["id"], "name": "Taken"})
    result = cli("import", "--org", org.name, path)
    assert result.exit_code == 1
    assert bad_lines(result) == {2: f"id {theirs['id']} belongs to another organization"}
    assert read(org) == []

    cli.ok("import", "--org", org.name, path, "--skip-invalid")
    assert [lead["name"] for lead in read(org)] == ["Mine"]
    assert [(lead["id"], lead["name"]) for lead in read(other)] == [(theirs["id"], "Theirs")]


def test_an_id_twice_in_one_file_fails_the_second(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    lead_id = new_lead_id()
    path = jsonl(tmp_path / "a.jsonl", {"id": lead_id, "name": "A"}, {"id": lead_id, "name": "B"})
    result = cli("import", "--org", org.name, path)
    assert bad_lines(result) == {2: f"id {lead_id} is already on line 1"}
    assert read(org) == []


# --- the user's mistakes ----------------------------------------------------------------------


def test_mistakes_are_usage_errors(cli: Cli, org: Organization, tmp_path: Path) -> None:
    good = jsonl(tmp_path / "a.jsonl", {"name": "A"})
    assert "No organization named" in cli.usage_error("import", "--org", "nope-x", good)
    missing = tmp_path / "missing.jsonl"
    assert "cannot read" in cli.usage_error("import", "--org", org.name, missing)
    other = tmp_path / "leads.txt"
    other.write_text("{}\n")
    assert "use a .jsonl or .csv" in cli.usage_error("import", "--org", org.name, other)
    header = tmp_path / "leads.csv"
    header.write_text("name,emial\nA,a@example.com\n")
    message = cli.usage_error("import", "--org", org.name, header)
    assert "line 1" in message and "'emial'" in message and "did you mean 'email'" in message
    twice = tmp_path / "twice.csv"
    twice.write_text("name,name\nA,B\n")
    assert "appears twice" in cli.usage_error("import", "--org", org.name, twice)


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    cli: Cli, org: Organization, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "a.jsonl", *({"name": f"n{i}"} for i in range(50)))
    result = cli.ok("import", "--org", org.name, path)
    assert result.stderr == ""


def test_imported_leads_are_found_by_search(
    cli: Cli, org: Organization, app: Any, make_key: Callable[..., str], tmp_path: Path
) -> None:
    """The derived search columns are written for imported and updated leads alike."""
    lead_id = new_lead_id()
    cli.ok("import", "--org", org.name, jsonl(tmp_path / "a.jsonl",
                                              {"id": lead_id, "name": "Jürgen Straße"}))
    cli.ok("import", "--org", org.name, jsonl(tmp_path / "b.jsonl",
                                              {"id": lead_id, "phone": "+1 (234) 567-890"}))
    with TestClient(app, headers={"X-API-KEY": make_key(org)}) as client:
        for term in ("STRASSE", "234 567"):
            found = client.get("/api/leads", params={"search": term}).json()["data"]
            assert [lead["id"] for lead in found] == [lead_id], term


def test_files_from_spreadsheets_and_other_tools(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    """A UTF-8 byte order mark, padded header names, CRLF line ends, blank lines."""
    csv_path = tmp_path / "excel.csv"
    csv_path.write_bytes("\ufeffname , email\r\nZoë,zoe@example.com\r\n\r\n".encode())
    jsonl_path = tmp_path / "bom.jsonl"
    jsonl_path.write_bytes('\ufeff{"name": "Émile"}\r\n\r\n'.encode())
    cli.ok("import", "--org", org.name, csv_path)
    cli.ok("import", "--org", org.name, jsonl_path)
    assert sorted((lead["name"], lead["email"]) for lead in read(org)) == [
        ("Zoë", "zoe@example.com"), ("Émile", None)
    ]


def test_unreadable_files_are_usage_errors(cli: Cli, org: Organization, read: Any,
                                          tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("name\nA\nRen\xe9e\n".encode("latin-1"))
    assert "not UTF-8" in cli.usage_error("import", "--org", org.name, latin1)
    blank_first = tmp_path / "blank.csv"
    blank_first.write_text("\nname\nA\n")
    assert "header row" in cli.usage_error("import", "--org", org.name, blank_first)
    unterminated = tmp_path / "quote.csv"
    unterminated.write_text('name\nA\n"B\n')
    assert "not valid CSV" in cli.usage_error("import", "--org", org.name, unterminated)
    bad_bytes = jsonl(tmp_path / "bytes.jsonl", {"name": "A"})
    bad_bytes.write_bytes(bad_bytes.read_bytes() + b'{"name": "Ren\xe9e"}\n')
    result = cli("import", "--org", org.name, bad_bytes)
    assert result.exit_code == 1 and set(bad_lines(result)) == {2}
    assert read(org) == []


# --- large files: checked by a second process ------------------------------------------------


def test_a_file_of_several_chunks_is_checked_in_a_worker_and_reported_by_its_own_lines(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    """Past one chunk (2,000 records) objects are checked in another process: the problems
    still come back with the file's own line numbers, in order, and nothing is written."""
    lines: list[dict[str, Any] | str] = [{"name": f"lead {i}"} for i in range(5_000)]
    lines[2_499] = {"name": "x", "status": "nope"}  # line 2,500, in the second chunk
    lines[4_099] = "{not json"  # line 4,100, in the third
    lines[4_999] = {"name": "x", "colour": "red"}  # the last line
    same_id = new_lead_id()
    lines[10] = {"id": same_id, "name": "first"}
    lines[3_000] = {"id": same_id, "name": "again"}  # a repeat across chunks
    path = jsonl(tmp_path / "big.jsonl", *lines)

    result = cli("import", "--org", org.name, path)
    reported = bad_lines(result)
    assert sorted(reported) == [2_500, 3_001, 4_100, 5_000]
    assert "status" in reported[2_500]
    assert reported[3_001] == f"id {same_id} is already on line 11"
    assert "not valid JSON" in reported[4_100]
    assert "colour" in reported[5_000]
    assert read(org) == []

    result = cli.ok("import", "--org", org.name, path, "--skip-invalid")
    assert summary(result) == "4996 created, 0 updated, 0 unchanged, 4 skipped"
    assert [lead["name"] for lead in read(org, "search=lead 4998")] == ["lead 4998"]
