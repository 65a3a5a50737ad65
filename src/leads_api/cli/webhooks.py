"""`leads-api webhooks ...` (subscriptions, from the command line) and `leads-api deliver`
(webhook delivery alone, for those who run it apart from the API processes)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from typing import Annotated

import typer

from leads_api.cli.admin import _store
from leads_api.delivery.address import AddressRefused, allow_private_from_env, destination
from leads_api.delivery.deliverer import Deliverer
from leads_api.errors import ApiError, UsageError
from leads_api.store import open_store
from leads_api.store.tenants import require_organization
from leads_api.store.webhooks import (
    create_webhook,
    delete_webhook,
    list_deliveries,
    list_webhooks,
)
from leads_api.webhook_input import EVENT_TYPES, subscription_input

webhooks = typer.Typer(help="Create, list and delete webhook subscriptions.", no_args_is_help=True)
OrgOption = Annotated[str, typer.Option("--org", help="The organization's name.")]


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks, name="webhooks")
    app.command("deliver")(deliver)


@webhooks.command("create")
def webhooks_create(
    org: OrgOption,
    url: Annotated[str, typer.Option("--url", help="Where to POST the events.")],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help="An event type to send (repeatable; default all): "
            + ", ".join(t.name for t in EVENT_TYPES),
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="A note for people.")] = None,
) -> None:
    """Subscribe a URL; the secret is printed once, alone on the last line."""
    body: dict[str, object] = {"url": url, "description": description}
    if event:
        body["events"] = list(event)
    try:
        values = subscription_input(body)
        destination(values["url"], allow_private=allow_private_from_env())
    except ApiError as error:
        raise UsageError(error.message) from None
    except AddressRefused as refused:
        raise UsageError(f"--url is not allowed: {refused}") from None
    with _store("write") as conn:
        organization = require_organization(conn, org)
        webhook, secret = create_webhook(
            conn,
            org_id=organization.id,
            url=values["url"],
            events=values["events"],
            description=values["description"],
        )
    typer.echo(
        f"Created webhook {webhook.id} for {organization.name}: {webhook.url} "
        f"({', '.join(webhook.events)}). Its signing secret, shown once:"
    )
    typer.echo(secret)


@webhooks.command("list")
def webhooks_list(org: OrgOption) -> None:
    """List an organization's subscriptions (never their secrets)."""
    with _store("read") as conn:
        found = list_webhooks(conn, org_id=require_organization(conn, org).id)
    for w in found:
        state = ("enabled" if w.enabled else "disabled") + (", failing" if w.failing else "")
        typer.echo(f"{w.id}\t{w.url}\t{','.join(w.events)}\t{state}\t{w.description or '-'}")


@webhooks.command("delete")
def webhooks_delete(webhook_id: str, org: OrgOption) -> None:
    """Delete a subscription; its undelivered events are dropped."""
    try:
        with _store("write") as conn:
            delete_webhook(conn, org_id=require_organization(conn, org).id, webhook_id=webhook_id)
    except ApiError as error:
        raise UsageError(error.message) from None
    typer.echo(f"Deleted {webhook_id}")


@webhooks.command("deliveries")
def webhooks_deliveries(
    webhook_id: str,
    org: OrgOption,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
) -> None:
    """A subscription's latest delivery attempts, newest first."""
    try:
        with _store("read") as conn:
            found = list_deliveries(
                conn,
                org_id=require_organization(conn, org).id,
                webhook_id=webhook_id,
                limit=limit,
            )
    except ApiError as error:
        raise UsageError(error.message) from None
    for d in found:
        result = str(d.status_code) if d.status_code is not None else (d.error or "-")
        retry = f"\tnext {_time(d.next_retry_at)}" if d.next_retry_at else ""
        typer.echo(
            f"{_time(d.attempted_at)}\t{d.event_id}\t{d.type}\tattempt {d.attempt}\t"
            f"{d.outcome}\t{result}\t{d.duration_ms} ms{retry}"
        )


def deliver() -> None:
    """Deliver webhook events until stopped (SIGINT/SIGTERM). `leads-api serve` delivers by
    itself too; LEADS_WEBHOOK_DELIVERY=0 turns that off when this runs apart."""
    store = open_store()
    typer.echo("Delivering webhook events; Ctrl-C stops", err=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Deliverer(store).run(stop)

    try:
        asyncio.run(main())
    finally:
        store.dispose()


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M:%S}Z"
