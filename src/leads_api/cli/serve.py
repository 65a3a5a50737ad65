"""`leads-api serve` and `leads-api demo`."""

from __future__ import annotations

import os
import shlex
from typing import Annotated, Any

import typer
import uvicorn

from leads_api.cli.workers import can_share_port, run_workers
from leads_api.lead import now_ms
from leads_api.query.model import ListQuery
from leads_api.sample import LeadSampler
from leads_api.store import open_store
from leads_api.store.reads import count_leads
from leads_api.store.tenants import create_key, create_organization, find_organization
from leads_api.store.unit_of_work import insert_leads

DEMO_ORG = "demo"
DEMO_LEADS = 3_000


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("demo")(demo)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run the API."""
    # Open once here: a new SQLite file is created and migrated before any worker starts,
    # and an unmigrated PostgreSQL is reported now rather than by every worker.
    open_store().dispose()
    run_server(host, port, workers)


def run_server(host: str, port: int, workers: int) -> None:
    config: dict[str, Any] = {
        "app": "leads_api.api.app:app_from_env",
        "factory": True,
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": os.environ.get("LEADS_LOG_LEVEL", "info"),
    }
    if workers > 1 and can_share_port():
        run_workers(config, host, port, workers)  # one socket per worker: even spread
    else:
        uvicorn.run(**config, host=host, port=port, workers=workers)


def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    leads: Annotated[int, typer.Option(help="Leads to seed in a new demo org.")] = DEMO_LEADS,
) -> None:
    """Seed a demo organization with realistic leads, print a key and a curl, and serve."""
    store = open_store()
    with store.write() as conn:
        org = find_organization(conn, DEMO_ORG) or create_organization(conn, DEMO_ORG)
        if count_leads(conn, org_id=org.id, query=ListQuery()) == 0:
            sampler = LeadSampler(seed=2026)
            insert_leads(
                conn,
                org_id=org.id,
                rows=sampler.leads(leads, now_ms=now_ms(), attribution_days=org.attribution_days),
            )
        _, secret = create_key(conn, org, name="demo")
        total = count_leads(conn, org_id=org.id, query=ListQuery())
    store.dispose()
    base = f"http://{host}:{port}"
    header = shlex.quote(f"X-API-KEY: {secret}")
    typer.echo(f"\nDemo organization {DEMO_ORG!r} has {total} leads. API key:\n\n  {secret}\n")
    typer.echo("Try:\n")
    typer.echo(f"  curl -g -H {header} '{base}/api/leads?limit=2'")
    typer.echo(
        f"  curl -g -H {header} '{base}/api/leads?status=won&createdAt[gte]=2026-01-01"
        "&sort=value:desc&limit=20&fields=id,name,email,value'\n"
    )
    typer.echo(f"  export LEADS_API_KEY={secret}   # the README's examples use this\n")
    run_server(host, port, 1)
