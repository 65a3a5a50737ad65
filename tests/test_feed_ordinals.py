"""The change feed's order within one write: each lead's ordinal (`change_ord`) in the order
the unit of work wrote it; and positions named before ordinals existed (revision 0009)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from conftest import lead_row, upgrade_to
from leads_api.query import parse_changes_query
from leads_api.query.model import FeedPosition, LegacyFeedPosition
from leads_api.query.tokens import _encode, decode_position
from leads_api.store import Store
from leads_api.store.feed import changed_leads
from leads_api.store.rollups import ROLLUP_COLUMNS
from leads_api.store.schema import leads
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import UPDATE_CHUNK_ROWS, insert_leads, lead_writes


def positions(store: Store, org_id: int) -> list[tuple[int, int, str]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(leads.c.change_seq, leads.c.change_ord, leads.c.id)
            .where(leads.c.org_id == org_id)
            .order_by(leads.c.change_seq, leads.c.change_ord)
        ).all()
    return [(int(s), int(o), str(i)) for s, o, i in rows]


def feed_ids(store: Store, org_id: int, since: str | None) -> list[str]:
    pairs = [("fields", "id"), ("limit", "1000")] + ([("since", since)] if since else [])
    with store.read() as conn:
        page = changed_leads(conn, org_id=org_id, query=parse_changes_query(pairs, org_id=org_id))
    assert not page.more
    return [str(row[0]) for row in page.rows]


def test_a_write_numbers_its_rows_in_the_order_it_writes_them(
    store: Store, org: Organization
) -> None:
    rows = [lead_row(name=f"n{i}") for i in range(COPY_AND_MORE)]
    with store.write() as conn:
        insert_leads(conn, org_id=org.id, rows=rows[:3])  # plain INSERT
    with store.write() as conn, lead_writes(conn, org_id=org.id) as writes:
        writes.insert(rows[3:])  # COPY on PostgreSQL
    held = positions(store, org.id)
    first, second = held[:3], held[3:]
    assert [(o, i) for _, o, i in first] == [(n, r["id"]) for n, r in enumerate(rows[:3])]
    assert [(o, i) for _, o, i in second] == [(n, r["id"]) for n, r in enumerate(rows[3:])]
    assert len({s for s, _, _ in first}) == 1 and len({s for s, _, _ in second}) == 1


COPY_AND_MORE = 2 * UPDATE_CHUNK_ROWS + 50


def test_an_update_of_many_leads_gives_each_its_own_ordinal(
    store: Store, org: Organization
) -> None:
    rows = [lead_row(email="same@example.com") for _ in range(COPY_AND_MORE)]
    with store.write() as conn:
        insert_leads(conn, org_id=org.id, rows=rows)
    with store.write() as conn, lead_writes(conn, org_id=org.id) as writes:
        writes.lock()
        matched = [
            dict(r)
            for r in conn.execute(
                sa.select(leads.c.id, *(leads.c[c] for c in ROLLUP_COLUMNS))
                .where(leads.c.org_id == org.id)
                .order_by(leads.c.id)
            ).mappings()
        ]
        writes.insert([lead_row(name="first in this write")])
        after = writes.update(matched, {"status": "won"})
    assert [r["status"] for r in after] == ["won"] * len(rows)
    held = positions(store, org.id)
    assert {s for s, _, _ in held} == {held[0][0]}  # one write
    assert [o for _, o, _ in held] == list(range(len(rows) + 1))
    assert [i for _, _, i in held[1:]] == [r["id"] for r in matched]


# --- tokens made before revision 0009 --------------------------------------------------------


def test_a_token_made_before_ordinals_still_names_its_place(unmigrated: Engine) -> None:
    upgrade_to(unmigrated, "0008")
    # Leads as revision 0008 stamped them: some from before positions (0), an import at
    # position 5 (ids random, so id order is not write order), one create at 6.
    stamps = [0] * 3 + [5] * 8 + [6]
    rows = [lead_row(change_seq=seq) for seq in stamps]
    with unmigrated.begin() as conn:
        org_id = conn.execute(sa.text(
            "INSERT INTO organizations (name, allow_bulk_updates, attribution_days, created_at,"
            " data_version) VALUES ('old', false, 90, 0, 6) RETURNING id"
        )).scalar_one()
        columns = ["org_id", "id", "status", "source", "created_at", "updated_at",
                   "expires_at", "change_seq"]
        conn.execute(
            sa.text(f"INSERT INTO leads ({', '.join(columns)}) "
                    f"VALUES ({', '.join(':' + c for c in columns)})"),
            [{**r, "org_id": org_id} for r in rows],
        )
    old_order = [r["id"] for r in sorted(rows, key=lambda r: (r["change_seq"], r["id"]))]
    seq_of = {r["id"]: r["change_seq"] for r in rows}
    tokens = [_encode({"k": "feed", "o": org_id, "s": 0, "i": ""})] + [
        _encode({"k": "feed", "o": org_id, "s": seq_of[i], "i": i}) for i in old_order
    ]

    upgrade_to(unmigrated, "head")
    store = Store(unmigrated)
    held = positions(store, org_id)
    assert [i for _, _, i in held] == old_order  # ranked by id within each position
    assert [o for _, o, _ in held] == [0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 0]
    for n, token in enumerate(tokens):
        assert isinstance(decode_position(token, org_id=org_id), LegacyFeedPosition)
        assert feed_ids(store, org_id, token) == old_order[n:], n

    # A lead a token names is written again: the token still means "after it in its old
    # position", and the lead comes again at its new one.
    named = old_order[6]
    with store.write() as conn, lead_writes(conn, org_id=org_id) as writes:
        writes.lock()
        matched = conn.execute(
            sa.select(leads.c.id, *(leads.c[c] for c in ROLLUP_COLUMNS)).where(
                leads.c.org_id == org_id, leads.c.id == named)
        ).mappings().all()
        writes.update([dict(m) for m in matched], {"note": "again"})
    assert feed_ids(store, org_id, tokens[7]) == [*old_order[7:], named]  # it is gone
    assert feed_ids(store, org_id, tokens[6]) == [*old_order[7:], named]  # it is there
    # and the next token of an answer is a new one
    with store.read() as conn:
        page = changed_leads(conn, org_id=org_id, query=parse_changes_query(
            [("since", tokens[7]), ("limit", "2")], org_id=org_id))
    assert isinstance(page.next, FeedPosition)
