"""JSONL and CSV files of lead objects: reading them as numbered records, writing them.

JSONL holds one lead object per line, exactly as GET returns it. CSV holds a header row of
field names, then one lead per record: an empty cell is null, consent is `true`/`false`,
`value` a plain number. Line numbers are the file's own (a CSV header is line 1; a record
spanning several lines is numbered by its first).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from leads_api.errors import UsageError
from leads_api.fields import FIELD_NAMES
from leads_api.json_shape import MAX_LINE_BYTES
from leads_api.transfer.rows import unknown_field

JSONL = "jsonl"
CSV = "csv"
FORMATS = (JSONL, CSV)
_SUFFIXES = {".jsonl": JSONL, ".csv": CSV}
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Record:
    """One lead as read from a file: its parsed object, or why the line could not be read,
    or (JSONL) the line itself, parsed where it is checked (see `parsed`)."""

    line: int
    obj: Any = None
    error: str | None = None
    raw: bytes | None = None


def parsed(record: Record) -> Record:
    """`record` with its raw JSONL line parsed into an object (or an error)."""
    if record.raw is None:
        return record
    try:
        return Record(record.line, orjson.loads(record.raw))
    except orjson.JSONDecodeError as error:
        return Record(record.line, error=f"not valid JSON ({error})")


def format_of(path: Path) -> str | None:
    """The format a file name implies (`.jsonl`, `.csv`, any case), or None."""
    return _SUFFIXES.get(path.suffix.lower())


@contextmanager
def open_records(path: Path) -> Iterator[Iterator[Record]]:
    """The records of a `.jsonl` or `.csv` file; a missing file or bad header is a UsageError."""
    fmt = format_of(path)
    if fmt is None:
        raise UsageError(f"{path}: unsupported file type; use a .jsonl or .csv file")
    try:
        handle: IO[Any] = (
            path.open("rb") if fmt == JSONL else path.open(encoding="utf-8-sig", newline="")
        )
    except OSError as error:
        raise UsageError(f"{path}: cannot read the file ({error.strerror})") from None
    with handle:
        yield _jsonl_records(handle) if fmt == JSONL else _csv_records(handle, path)


ESTIMATE_SAMPLE_BYTES = 1024 * 1024


def estimated_records(path: Path) -> int | None:
    """About how many leads the file holds, for a progress bar's total: its lines counted
    when it is small, else its size over the mean line length of its first MiB (exact
    enough for a bar; a CSV record spanning lines is rare). None when it cannot tell.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = f.write_text("name\\nAda\\nBob\\n"); estimated_records(f)
    2
    """
    fmt = format_of(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(ESTIMATE_SAMPLE_BYTES)
    except OSError:
        return None
    lines = head.count(b"\n") + (1 if head and not head.endswith(b"\n") else 0)
    if lines == 0:
        return None
    estimate = lines if len(head) == size else round(size * lines / len(head))
    return max(0, estimate - 1) if fmt == CSV else estimate


def _jsonl_records(lines: IO[bytes]) -> Iterator[Record]:
    # Lines are left unparsed: the import parses them where it checks them, which may be
    # another process (a bytes line is far cheaper to hand over than a parsed object).
    for number, raw in enumerate(lines, 1):
        text = raw[len(_BOM):] if number == 1 and raw.startswith(_BOM) else raw
        if not text.strip():
            continue
        if len(text) > MAX_LINE_BYTES:  # as large as a request body may be, and no larger
            yield Record(number, error=f"the line is over 1 MiB ({MAX_LINE_BYTES} bytes)")
            continue
        yield Record(number, raw=text)


def _csv_records(handle: IO[str], path: Path) -> Iterator[Record]:
    reader = csv.reader(handle, strict=True)
    try:
        first = next(reader, None)
        if first is None:
            return  # an empty file
        header = [name.strip() for name in first]
        _check_header(header, path)
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells:
                continue  # a blank line
            if len(cells) != len(header):
                yield Record(line, error=f"{len(cells)} cells, but the header has {len(header)}")
                continue
            yield Record(line, {k: v or None for k, v in zip(header, cells, strict=True)})
    except csv.Error as error:
        raise UsageError(f"{path}: line {reader.line_num}: not valid CSV ({error})") from None
    except UnicodeDecodeError:
        raise UsageError(
            f"{path}: not UTF-8 text (near line {reader.line_num + 1})"
        ) from None


def _check_header(header: list[str], path: Path) -> None:
    """Unknown or repeated columns spoil every row, so they reject the file, not rows."""
    if not header:
        raise UsageError(f"{path}: line 1: expected a header row of field names")
    known = set(FIELD_NAMES)
    for name in header:
        if name not in known:
            raise UsageError(f"{path}: line 1: {unknown_field(name)}")
        if header.count(name) > 1:
            raise UsageError(f"{path}: line 1: column {name!r} appears twice")


# --- writing -------------------------------------------------------------------------------

PROGRESS_STEP = 1_000


def write_leads(
    leads: Iterable[Any],
    out: IO[bytes],
    fmt: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write lead objects (all fields) to a binary stream; returns how many were written.
    JSONL takes them as dicts or as orjson.Fragments of their JSON; CSV as dicts."""
    count = 0
    with _emitter(out, fmt) as emit:
        for lead in leads:
            emit(lead)
            count += 1
            if progress is not None and count % PROGRESS_STEP == 0:
                progress(PROGRESS_STEP)
    if progress is not None:
        progress(count % PROGRESS_STEP)
    return count


@contextmanager
def _emitter(out: IO[bytes], fmt: str) -> Iterator[Callable[[dict[str, Any]], object]]:
    if fmt == JSONL:
        yield lambda lead: out.write(orjson.dumps(lead, option=orjson.OPT_APPEND_NEWLINE))
        out.flush()
        return
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(FIELD_NAMES)
        yield lambda lead: writer.writerow([_cell(lead[name]) for name in FIELD_NAMES])
    finally:
        text.detach()  # flushes, and leaves `out` open: it belongs to the caller


def _cell(value: Any) -> Any:
    """A JSON value as a CSV cell: null empty, booleans as true/false, the rest as written."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value  # text, or a number the csv module writes as Python's repr (99.5, 5000)
