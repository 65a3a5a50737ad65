"""`leads-api orgs`, `keys` and `migrate`: tenants, their keys, and the schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.engine import Connection

from leads_api.errors import UsageError
from leads_api.store import create_engine, database_url_from_env, open_store
from leads_api.store.migrate import migrate
from leads_api.store.tenants import (
    create_key,
    create_organization,
    list_keys,
    list_organizations,
    require_organization,
    revoke_key,
    update_organization,
)

# One spelling of each setting for `orgs create` and `orgs update`.
_BULK_UPDATES = typer.Option(
    "--allow-bulk-updates/--no-bulk-updates",
    help="Whether one PATCH may update every lead its email or phone matches.",
)
_ATTRIBUTION_DAYS = typer.Option(
    help="Days after creation a lead's click IDs can be reported."
)

orgs = typer.Typer(help="Create, list and change organizations.", no_args_is_help=True)
keys = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(orgs, name="orgs")
    app.add_typer(keys, name="keys")
    app.command("migrate")(migrate_command)


def migrate_command() -> None:
    """Bring the database schema up to date."""
    engine = create_engine(database_url_from_env())
    try:
        migrate(engine)
    finally:
        engine.dispose()
    typer.echo(f"Schema up to date ({engine.url.render_as_string(hide_password=True)})")


@contextmanager
def _store(mode: str) -> Iterator[Connection]:
    """One transaction on the store, whose connections are closed when it ends (an engine
    left to the garbage collector leaves its PostgreSQL connections open until then)."""
    store = open_store()
    try:
        with store.write() if mode == "write" else store.read() as conn:
            yield conn
    finally:
        store.dispose()


@orgs.command("create")
def orgs_create(
    name: str,
    allow_bulk_updates: Annotated[bool, _BULK_UPDATES] = False,
    leads_limit: Annotated[
        int | None,
        typer.Option(help="Leads a calendar month may create (default unlimited)."),
    ] = None,
    attribution_days: Annotated[int, _ATTRIBUTION_DAYS] = 90,
) -> None:
    """Create an organization."""
    with _store("write") as conn:
        org = create_organization(
            conn,
            name,
            allow_bulk_updates=allow_bulk_updates,
            leads_limit=leads_limit,
            attribution_days=attribution_days,
        )
    typer.echo(f"Created organization {org.name!r} (id {org.id})")


@orgs.command("update")
def orgs_update(
    name: str,
    allow_bulk_updates: Annotated[bool | None, _BULK_UPDATES] = None,
    leads_limit: Annotated[
        int | None, typer.Option(help="A new monthly limit of created leads.")
    ] = None,
    unlimited: Annotated[
        bool, typer.Option("--unlimited", help="Remove the monthly limit.")
    ] = False,
    attribution_days: Annotated[int | None, _ATTRIBUTION_DAYS] = None,
) -> None:
    """Change an organization's settings; options not given stay as they are."""
    if unlimited and leads_limit is not None:
        raise UsageError("--leads-limit and --unlimited contradict each other: give one")
    limit: int | bool | None = None if unlimited else (leads_limit if leads_limit is not None
                                                     else False)
    with _store("write") as conn:
        org = update_organization(
            conn,
            name,
            allow_bulk_updates=allow_bulk_updates,
            leads_limit=limit,
            attribution_days=attribution_days,
        )
    typer.echo(
        f"{org.name}: allowBulkUpdates={org.allow_bulk_updates} "
        f"leadsLimit={org.leads_limit} attributionDays={org.attribution_days}"
    )


@orgs.command("list")
def orgs_list() -> None:
    """List organizations and their settings."""
    with _store("read") as conn:
        for org in list_organizations(conn):
            typer.echo(
                f"{org.id}\t{org.name}\tallowBulkUpdates={org.allow_bulk_updates}\t"
                f"leadsLimit={org.leads_limit}\tattributionDays={org.attribution_days}"
            )


@keys.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="The organization's name.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    read_only: Annotated[bool, typer.Option(help="The key may read but not write.")] = False,
) -> None:
    """Create a key; the secret is printed once, alone on the last line."""
    with _store("write") as conn:
        organization = require_organization(conn, org)
        key_id, secret = create_key(conn, organization, name=name, read_only=read_only)
    mode = "read-only" if read_only else "read-write"
    typer.echo(f"Created {mode} key {key_id} for {organization.name}. Store it now:")
    typer.echo(secret)


@keys.command("list")
def keys_list(org: Annotated[str, typer.Option("--org", help="The organization's name.")]) -> None:
    """List an organization's keys (never their secrets)."""
    with _store("read") as conn:
        found = list_keys(conn, require_organization(conn, org))
    for key in found:
        state = "revoked " + _date(key.revoked_at) if key.revoked_at else "active"
        mode = "read-only" if key.read_only else "read-write"
        typer.echo(
            f"{key.id}\t{key.prefix}…\t{key.name or '-'}\t{mode}\t"
            f"created {_date(key.created_at)}\t{state}"
        )


@keys.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: it gets 401 from then on."""
    with _store("write") as conn:
        revoke_key(conn, key_id)
    typer.echo(f"Revoked {key_id}")


def _date(ms: int | None) -> str:
    return "-" if ms is None else f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M}Z"
