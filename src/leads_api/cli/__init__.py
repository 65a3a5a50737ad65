"""The `leads-api` command line (CONTRACT.md section 8)."""

from __future__ import annotations

import sys

import typer

from leads_api.cli import admin, serve, transfer, webhooks
from leads_api.errors import UsageError

app = typer.Typer(
    help="leads-api: a self-hostable leads service compatible with the Octanist Leads API.\n\n"
    "The store is chosen by LEADS_DATABASE_URL (default sqlite:///./leads.db).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve.register(app)
admin.register(app)
transfer.register(app)
webhooks.register(app)


def main() -> None:
    try:
        app()
    except UsageError as error:
        typer.echo(f"Error: {error}", err=True)
        sys.exit(1)
