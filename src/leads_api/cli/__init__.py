"""The `leads-api` command line (CONTRACT.md section 8)."""

from __future__ import annotations

import sys

import typer
from sqlalchemy import exc

from leads_api.cli import admin, serve, transfer, webhooks
from leads_api.errors import ServiceUnavailable, UsageError
from leads_api.store.engine import database_url_from_env, describe_database_error

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
    """Every command's failures the user can fix end in one line on stderr and exit 1."""
    try:
        app()
    except UsageError as error:
        _fail(str(error))
    except (ServiceUnavailable, exc.OperationalError, exc.InterfaceError) as error:
        _fail(describe_database_error(error, database_url_from_env()))


def _fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    sys.exit(1)
