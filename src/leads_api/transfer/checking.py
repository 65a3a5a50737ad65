"""The first stage of an import: records -> checked lead objects, in chunks, possibly in a
second process.

Checking an object (parsing its JSON line, validating every value) needs nothing from the
database, and was measured at about half of an import's Python time. A large import hands
its chunks to one worker process, a few chunks ahead, while the importing process looks
up ids and writes: the two run on two cores. Small imports (one chunk) stay in-process.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import NamedTuple

from leads_api.errors import ValidationError
from leads_api.transfer.bulk import quiet_gc
from leads_api.transfer.formats import Record, parsed
from leads_api.transfer.rows import Incoming, read_object

# Chunks handed to the worker before the first is taken back: enough to keep both
# processes busy, few enough that memory stays flat.
CHUNKS_AHEAD = 3


class Checked(NamedTuple):
    """One record, checked: its lead object read, or what is wrong with it."""

    line: int
    incoming: Incoming | None
    problem: str | None


def check(record: Record) -> Checked:
    record = parsed(record)
    if record.error is not None:
        return Checked(record.line, None, record.error)
    try:
        return Checked(record.line, read_object(record.obj), None)
    except ValidationError as error:
        return Checked(record.line, None, error.message)


def check_chunk(chunk: list[Record]) -> list[Checked]:
    return [check(record) for record in chunk]


def checked_chunks(records: Iterable[Record], size: int) -> Iterator[list[Checked]]:
    """`records` checked, `size` at a time, in order. From the second chunk on, chunks are
    checked by a worker process while the caller works on the previous ones."""
    chunks = _chunks(records, size)
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if second is None:  # a small import: not worth starting a process
        yield check_chunk(first)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=quiet_gc) as pool:
        pending: deque[Future[list[Checked]]] = deque([pool.submit(check_chunk, second)])
        yield check_chunk(first)
        for chunk in chunks:
            pending.append(pool.submit(check_chunk, chunk))
            if len(pending) >= CHUNKS_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk
