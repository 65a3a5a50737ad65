"""`leads-api import` and `leads-api export`: lead objects in and out as JSONL or CSV."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated

import typer

from leads_api.errors import UsageError
from leads_api.store import open_store
from leads_api.transfer.bulk import quiet_gc
from leads_api.transfer.exporter import export_leads, export_query
from leads_api.transfer.formats import FORMATS, estimated_records, format_of, open_records
from leads_api.transfer.importer import import_records
from leads_api.transfer.progress import tracker


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
    app.command("export")(export_command)


def import_command(
    file: Annotated[Path, typer.Argument(help="A .jsonl or .csv file of lead objects.")],
    org: Annotated[str, typer.Option("--org", help="The organization's name.")],
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid leads and report the others.")
    ] = False,
) -> None:
    """Load lead objects (as GET returns them) into an organization, in one transaction.

    A lead whose id the organization has is updated in place, so importing a file twice
    changes nothing. Any invalid lead stops the whole import unless --skip-invalid.
    """
    quiet_gc()  # this process only imports, then exits
    store = open_store()
    try:
        with open_records(file) as records, tracker(f"Importing {file.name}") as progress:
            if progress is not None:
                progress.start(estimated_records(file))
            report = import_records(
                store, org_name=org, records=records, skip_invalid=skip_invalid,
                progress=progress,
            )
    finally:
        store.dispose()
    for problem in report.problems:
        typer.echo(f"{file}: line {problem.line}: {problem.message}", err=True)
    if not report.committed:
        raise UsageError(
            f"{report.skipped} invalid lead(s) in {file}; nothing was imported "
            "(--skip-invalid imports the valid ones)"
        )
    typer.echo(
        f"Imported {file} into {org}: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.skipped} skipped"
    )


def export_command(
    org: Annotated[str, typer.Option("--org", help="The organization's name.")],
    query: Annotated[
        str, typer.Option(help="GET /api/leads filters, search and sort, e.g. 'status=won'.")
    ] = "",
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: from -o, else jsonl).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
) -> None:
    """Write an organization's matching leads, in full, as JSONL or CSV."""
    chosen = _export_format(fmt, output)
    parsed = export_query(query)
    quiet_gc()  # this process only exports, then exits
    store = open_store()
    try:
        to_terminal = output is None and sys.stdout.isatty()
        with _output(output) as out, tracker("Exporting", enabled=not to_terminal) as progress:
            count = export_leads(
                store, org_name=org, query=parsed, out=out, fmt=chosen, progress=progress
            )
    finally:
        store.dispose()
    if output is not None:
        typer.echo(f"Exported {count} leads to {output}", err=True)


def _export_format(fmt: str | None, output: Path | None) -> str:
    if fmt is not None:
        if fmt.lower() not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt.lower()
    if output is None:
        return "jsonl"
    implied = format_of(output)
    if implied is None:
        raise UsageError(
            f"Cannot tell the format from {output.name!r}: name it .jsonl or .csv, "
            "or give --format"
        )
    return implied


@contextmanager
def _output(path: Path | None) -> Iterator[IO[bytes]]:
    """stdout, or a file that appears under its name only once it is complete."""
    if path is None:
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = path.with_name(path.name + ".partial")
    try:
        handle = partial.open("wb")
    except OSError as error:
        raise UsageError(f"{path}: cannot write the file ({error.strerror})") from None
    try:
        with handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
