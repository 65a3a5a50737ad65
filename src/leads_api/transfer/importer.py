"""Loading a file of lead objects into an organization, in one transaction.

Records are taken in chunks: each chunk's objects are checked (in a second process for a
large import, see checking.py), its ids looked up with one query, and its new and changed
leads written with one statement each. Every bad record is
collected with its line number; unless bad records are to be skipped, the first one stops
the writing (reading and checking go on, so every problem is reported) and the transaction
is rolled back at the end, so nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from leads_api.errors import UsageError, ValidationError
from leads_api.lead import now_ms
from leads_api.store import Store
from leads_api.store.tenants import Organization, require_organization
from leads_api.store.unit_of_work import LeadWrites, lead_writes, prepared_row
from leads_api.store.upserts import find_leads
from leads_api.transfer.checking import Checked, checked_chunks
from leads_api.transfer.formats import Record
from leads_api.transfer.progress import Tracker
from leads_api.transfer.rows import Incoming, merged_row, new_row

CHUNK_SIZE = 2_000

# A chunk with its objects read (line, object); and with their ids looked up too.
_Incoming = tuple[list[Checked], list[tuple[int, Incoming]]]
_LookedUp = tuple[list[Checked], list[tuple[int, Incoming]], dict[str, Any], set[str]]


@dataclass(frozen=True)
class Problem:
    line: int
    message: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    committed: bool = False

    @property
    def skipped(self) -> int:
        return len(self.problems)


class _Rollback(Exception):
    """Raised inside the transaction to undo it when bad records may not be skipped."""


def import_records(
    store: Store,
    *,
    org_name: str,
    records: Iterable[Record],
    skip_invalid: bool = False,
    progress: Tracker | None = None,
) -> ImportReport:
    """Import `records` into the organization named `org_name`, all or (with
    `skip_invalid`) all the good ones; the report says what happened."""
    report = ImportReport()
    try:
        with store.bulk_write() as conn:
            org = require_organization(conn, org_name)
            # One unit of work for the whole run: the rollups move once, before the commit.
            with lead_writes(conn, org_id=org.id) as writes:
                _Load(conn, writes, org, report, skip_invalid=skip_invalid).run(records, progress)
            if report.problems and not skip_invalid:
                raise _Rollback
    except _Rollback:
        pass
    except IntegrityError as error:
        # Another writer stored one of these ids after this import looked them up.
        raise UsageError(
            "Another import or request stored some of the same lead ids at the same time; "
            "nothing was imported. Run the import again."
        ) from error
    else:
        report.committed = True
    report.problems.sort(key=lambda p: p.line)
    return report


class _Load:
    """One import run inside its transaction."""

    def __init__(
        self,
        conn: Connection,
        writes: LeadWrites,
        org: Organization,
        report: ImportReport,
        *,
        skip_invalid: bool,
    ) -> None:
        self.conn = conn
        self.writes = writes
        self.org = org
        self.report = report
        self.skip_invalid = skip_invalid
        self.now = now_ms()
        self.lines_of_ids: dict[str, int] = {}  # every id seen so far, by its first line

    def run(self, records: Iterable[Record], progress: Tracker | None) -> None:
        """Chunk by chunk, with the database writing one chunk while this thread prepares
        the next: the writes run in a thread of their own, which waits for the database
        with the GIL released (PostgreSQL's COPY, SQLite's own insert work), so the
        database's work and this process's Python overlap instead of taking turns.

        The next chunk's ids are looked up before the current chunk is written: the two
        never share an id (a repeated id is refused by `_read`), so the lookup finds what
        it would find after the write."""
        chunks = checked_chunks(records, CHUNK_SIZE)
        with ThreadPoolExecutor(1, thread_name_prefix="import-writes") as writer:
            pending: Future[int] | None = None
            current = self._looked_up(next(chunks, None))
            while current is not None:
                chunk, incoming, stored, foreign = current
                new, changed = self._rows(incoming, stored, foreign)
                following = self._incoming(next(chunks, None))
                if pending is not None:
                    pending.result()  # the writer is idle again: the connection is free
                    pending = None
                after = None if following is None else self._find(*following)
                if not (self.report.problems and not self.skip_invalid):
                    pending = writer.submit(self._write, new, changed, len(chunk), progress)
                elif progress is not None:
                    progress.advance(len(chunk))
                current = after
            if pending is not None:
                pending.result()

    def _incoming(self, chunk: list[Checked] | None) -> _Incoming | None:
        if chunk is None:
            return None
        return chunk, [(c.line, i) for c in chunk if (i := self._read(c)) is not None]

    def _find(self, chunk: list[Checked], incoming: list[tuple[int, Incoming]]) -> _LookedUp:
        ids = {i.id for _, i in incoming if i.id is not None}
        stored, foreign = find_leads(self.conn, org_id=self.org.id, ids=ids)
        return chunk, incoming, stored, foreign

    def _looked_up(self, chunk: list[Checked] | None) -> _LookedUp | None:
        read = self._incoming(chunk)
        return None if read is None else self._find(*read)

    def _rows(
        self, incoming: list[tuple[int, Incoming]], stored: dict[str, Any], foreign: set[str]
    ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
        new: list[dict[str, Any]] = []
        changed: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for line, item in incoming:
            if item.id in foreign:
                self._problem(line, f"id {item.id} belongs to another organization")
                continue
            old = stored.get(item.id) if item.id is not None else None
            try:
                if old is None:
                    new.append(self._new_row(item))
                elif (row := self._merged_row(item, old)) is not None:
                    changed.append((old, row))
                else:
                    self.report.unchanged += 1
            except ValidationError as error:
                self._problem(line, error.message)
        return new, changed

    def _write(
        self,
        new: list[dict[str, Any]],
        changed: list[tuple[dict[str, Any], dict[str, Any]]],
        records: int,
        progress: Tracker | None,
    ) -> int:
        self.report.created += self.writes.insert(new)
        self.report.updated += self.writes.replace(changed)
        if progress is not None:
            progress.advance(records)
        return records

    def _read(self, checked: Checked) -> Incoming | None:
        incoming, line = checked.incoming, checked.line
        if incoming is None:
            self._problem(line, checked.problem or "not a lead")
            return None
        if incoming.id is not None:
            first = self.lines_of_ids.setdefault(incoming.id, line)
            if first != line:
                self._problem(line, f"id {incoming.id} is already on line {first}")
                return None
        return incoming

    def _new_row(self, item: Incoming) -> dict[str, Any]:
        # Prepared here, in the thread that reads ahead, not in the one that writes.
        return prepared_row(
            new_row(item, now=self.now, attribution_days=self.org.attribution_days)
        )

    def _merged_row(self, item: Incoming, old: dict[str, Any]) -> dict[str, Any] | None:
        return merged_row(item, old, now=self.now, attribution_days=self.org.attribution_days)

    def _problem(self, line: int, message: str) -> None:
        self.report.problems.append(Problem(line, message))

