"""Each lead's stored object (`lead_json`) is, byte for byte, the object built from its
columns: after every kind of write (create, PATCH with the values SQL computes, bulk PATCH,
imports that insert and that rewrite, by INSERT and by COPY), and after an upgrade from a
database made before the column existed. Whole-lead pages pass it on as it is; the one-lead
GET still builds its object from the columns, so the two are checked against each other."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from cli_support import Cli
from conftest import ClientFor, insert_old_leads, lead_row, upgrade_to
from leads_api.fields import LEAD_FIELDS
from leads_api.lead import row_to_object
from leads_api.store import Store
from leads_api.store.schema import LEAD_JSON_COLUMN, leads
from leads_api.store.sql import columns_for
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import COPY_FROM_ROWS, insert_leads


def stored_and_built(store: Store, org_id: int) -> dict[str, tuple[str | None, bytes]]:
    """Each lead's stored object and the one its columns give, as JSON."""
    with store.read() as conn:
        rows = conn.execute(
            sa.select(leads.c[LEAD_JSON_COLUMN], *columns_for(LEAD_FIELDS)).where(
                leads.c.org_id == org_id
            )
        ).all()
    return {
        str(row[1]): (row[0], orjson.dumps(row_to_object(LEAD_FIELDS, row[1:]))) for row in rows
    }


def assert_stored_objects_are_built_ones(store: Store, org_id: int, count: int) -> None:
    objects = stored_and_built(store, org_id)
    assert len(objects) == count
    for lead_id, (stored, built) in objects.items():
        assert stored is not None, lead_id
        assert stored.encode() == built, lead_id


def jsonl(path: Path, leads_: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(lead) + b"\n" for lead in leads_))
    return path


def test_every_write_stores_the_object_its_columns_give(
    store: Store, make_org: Callable[..., Organization], client_for: ClientFor, cli: Cli,
    tmp_path: Path,
) -> None:
    org = make_org(allow_bulk_updates=True)
    with client_for(org) as client:
        created = [
            client.post("/api/leads", json=body).json()["data"]["id"]
            for body in (
                {"name": "Ada", "email": "ada@example.com", "ad_storage": True},
                {"name": "Grace", "phone": "+1 555 0100", "custom": '{"plan":"pro"}'},
                {"email": "same@example.com", "gclid": "Cj0", "ad_user_data": False},
                {"email": "same@example.com", "utm_source": "google"},
            )
        ]
        # PATCHes whose values SQL computes from the row: qualifiedAt only when null,
        # updatedAt never backwards, the loss reason only on a lost lead.
        for body in (
            {"id": created[0], "status": "qualified", "value": "10"},
            {"id": created[0], "status": "won"},
            {"id": created[1], "status": "lost", "lossReason": "price"},
            {"id": created[1], "lossReason": "timing", "note": "called back"},
            {"email": "same@example.com", "status": "qualified", "value": 99.99},  # bulk
        ):
            response = client.patch("/api/leads", json=body)
            assert response.status_code == 200, response.text
    assert_stored_objects_are_built_ones(store, org.id, 4)

    # An import: new leads (by COPY on PostgreSQL, a multi-row INSERT on SQLite), and leads
    # it rewrites in place, some of them the API's.
    with client_for(org) as client:
        listed = client.get("/api/leads?limit=100").json()["data"]
    rewritten = [{**lead, "note": "imported again", "status": "won"} for lead in listed[:3]]
    new = [{"name": f"Imported {n}", "value": n / 4, "ad_storage": n % 2 == 0}
           for n in range(COPY_FROM_ROWS + 5)]
    cli.ok("import", "--org", org.name, jsonl(tmp_path / "a.jsonl", [*rewritten, *new]))
    small = [{"name": "One more", "email": "one@example.com"}]  # a single-row INSERT
    cli.ok("import", "--org", org.name, jsonl(tmp_path / "b.jsonl", small))
    total = 4 + COPY_FROM_ROWS + 5 + 1
    assert_stored_objects_are_built_ones(store, org.id, total)

    # Every way of reading whole leads agrees with the one-lead GET (built from columns).
    with client_for(org) as client:
        by_list = [lead for page in (1, 2)
                   for lead in client.get(f"/api/leads?limit=100&page={page}").json()["data"]]
        by_feed = client.get("/api/leads/changes?limit=1000").json()["data"]
        one = {lead["id"]: client.get(f"/api/leads/{lead['id']}").json()["data"]
               for lead in by_list}
    assert len(by_list) == len(by_feed) == len(one) == total
    assert all(lead == one[lead["id"]] for lead in [*by_list, *by_feed])
    assert one[created[0]]["status"] == "won" and one[created[0]]["qualifiedAt"] is not None


def test_an_upgrade_renders_the_leads_stored_before_the_column(unmigrated: Engine) -> None:
    upgrade_to(unmigrated, "0010")
    rows = [
        lead_row(name=f"Old {n}", value_cents=n * 125, ad_storage=n % 2 == 0,
                 qualified_at=None if n % 3 else 1_767_225_600_000 + n)
        for n in range(7)
    ]
    org_id = insert_old_leads(unmigrated, rows)
    upgrade_to(unmigrated, "head")
    assert_stored_objects_are_built_ones(Store(unmigrated), org_id, len(rows))


def test_a_whole_page_and_a_chosen_fields_page_show_the_same_lead(
    client: TestClient, add_leads: Any
) -> None:
    add_leads({"name": "Ada", "value_cents": 1050, "ad_storage": True})
    whole = client.get("/api/leads").json()["data"][0]
    names = ",".join(f.name for f in LEAD_FIELDS[::-1])  # every field, in another order
    chosen = client.get(f"/api/leads?fields={names}").json()["data"][0]
    assert whole == chosen and whole["value"] == 10.5 and whole["ad_storage"] is True


def test_a_lead_written_without_its_object_is_still_answered_whole(
    store: Store, org: Organization, client: TestClient, cli: Cli, tmp_path: Path,
    add_leads: Any,
) -> None:
    """A process of a version before the column, still running after the upgrade (a
    rolling upgrade), writes leads without their objects: every read renders them."""
    add_leads({"name": "Rendered"})
    old = lead_row(name="Written by an older version", value_cents=1999, ad_storage=True,
                   created_at=1_767_225_600_000 - 86_400_000)  # after the other, newest first
    with store.write() as conn:
        insert_leads(conn, org_id=org.id, rows=[old])
        conn.execute(sa.update(leads).where(leads.c.id == old["id"])
                     .values({LEAD_JSON_COLUMN: None}))
    one = client.get(f"/api/leads/{old['id']}").json()["data"]
    assert one["value"] == 19.99
    after_first = client.get("/api/leads?limit=1").json()["meta"]["pagination"]["nextCursor"]
    paths = ("/api/leads", "/api/leads/changes", "/api/leads?search=older",
             f"/api/leads?cursor={after_first}")
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert one in response.json()["data"], path
    out = tmp_path / "all.jsonl"
    cli.ok("export", "--org", org.name, "-o", out)
    assert one in [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert stored_and_built(store, org.id)[old["id"]][0] is None  # a read writes nothing
