"""Two imports of the same new ids at once: one stores them, the other either finds them
stored or says plainly that nothing was imported. No traceback, no duplicate, no loss."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from leads_api.errors import UsageError
from leads_api.lead import new_lead_id
from leads_api.store import Store
from leads_api.store.tenants import Organization
from leads_api.transfer.formats import Record
from leads_api.transfer.importer import import_records


def test_racing_imports_of_the_same_ids(store: Store, org: Organization, client: Any) -> None:
    objects = [{"id": new_lead_id(), "name": f"Racer {i}"} for i in range(3000)]
    records = [Record(line=i + 1, obj=o) for i, o in enumerate(objects)]

    def run(_: int) -> str:
        try:
            report = import_records(store, org_name=org.name, records=records)
        except UsageError as error:
            assert "nothing was imported" in str(error)
            return "refused"
        assert report.committed, report.problems
        return "committed"

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(run, range(2)))
    assert "committed" in outcomes
    total = client.get("/api/leads?limit=1").json()["meta"]["pagination"]["total"]
    assert total == len(objects)
