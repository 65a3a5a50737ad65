"""`leads-api serve` and `leads-api demo`."""

from __future__ import annotations

import copy
import os
import shlex
import socket
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from sqlalchemy.engine import Connection

from leads_api.cli.workers import can_share_port, run_workers
from leads_api.errors import UsageError
from leads_api.lead import now_ms
from leads_api.query.model import ListQuery
from leads_api.sample import LeadSampler
from leads_api.server.limits import HttpLimits
from leads_api.server.memory import limit_malloc_arenas
from leads_api.store import Store, open_store
from leads_api.store.engine import database_url_from_env, normalise_url
from leads_api.store.reads import count_leads
from leads_api.store.tenants import (
    Organization,
    authenticate,
    create_key,
    create_organization,
    find_organization,
)
from leads_api.store.unit_of_work import insert_leads

DEMO_ORG = "demo"
DEMO_LEADS = 3_000


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("demo")(demo)


_HOST = typer.Option(help="Interface to listen on (0.0.0.0 for every one).")
_PORT = typer.Option(help="Port to listen on.")


def serve(
    host: Annotated[str, _HOST] = "127.0.0.1",
    port: Annotated[int, _PORT] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (one per core).")] = 1,
) -> None:
    """Run the API."""
    require_free_port(host, port)
    # Open once here: a new SQLite file is created and migrated before any worker starts,
    # and an unmigrated PostgreSQL is reported now rather than by every worker.
    open_store().dispose()
    run_server(host, port, workers)


def require_free_port(host: str, port: int) -> None:
    """A port something else listens on is one clear line, before anything is written."""
    # Without SO_REUSEPORT: a port another server shares out that way counts as taken too.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise UsageError(
            f"Cannot listen on {host}:{port}: {error.strerror} (choose another --port)"
        ) from None


def run_server(host: str, port: int, workers: int) -> None:
    log_level = os.environ.get("LEADS_LOG_LEVEL", "info")
    limits = HttpLimits.from_env()  # a bad LEADS_HTTP_* is reported here, once
    if normalise_url(database_url_from_env()).get_backend_name() == "sqlite":
        # Before any request thread or worker process starts. SQLite's page caches only:
        # on PostgreSQL the server's memory held flat without the cap, and the soak ran
        # slower with it (server/memory.py).
        limit_malloc_arenas()
    config: dict[str, Any] = {
        "app": "leads_api.api.app:app_from_env",
        "factory": True,
        "access_log": False,
        "loop": "uvloop",
        # httptools with limits, timeouts and a lingering close (server/protocol.py)
        "http": "leads_api.server.protocol:LimitedHttpProtocol",
        "ws": "none",
        "timeout_keep_alive": limits.keepalive_s,
        "log_level": log_level,
        "log_config": log_config(log_level),
    }
    if workers > 1 and can_share_port():
        run_workers(config, host, port, workers)  # one socket per worker: even spread
    else:
        uvicorn.run(**config, host=host, port=port, workers=workers)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup, plus the service's own logger on the same stderr handler."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["leads_api"] = {
        "handlers": ["default"], "level": level.upper(), "propagate": False,
    }
    return config


def demo(
    host: Annotated[str, _HOST] = "127.0.0.1",
    port: Annotated[int, _PORT] = 8000,
    leads: Annotated[
        int, typer.Option(help="Leads to seed when the demo organization is new.")
    ] = DEMO_LEADS,
) -> None:
    """Seed a demo organization, print a key and a curl, and serve.

    Run again, it reuses the organization, its leads and its key.
    """
    require_free_port(host, port)
    store = open_store()
    key_file = demo_key_file(store)
    with store.write() as conn:
        org = find_organization(conn, DEMO_ORG) or create_organization(conn, DEMO_ORG)
        if count_leads(conn, org_id=org.id, query=ListQuery()) == 0:
            sampler = LeadSampler(seed=2026)
            insert_leads(
                conn,
                org_id=org.id,
                rows=sampler.leads(leads, now_ms=now_ms(), attribution_days=org.attribution_days),
            )
        secret = _kept_demo_key(conn, org, key_file)
    with store.read() as conn:  # once committed: SQLite's writers move the counts at commit
        total = count_leads(conn, org_id=org.id, query=ListQuery())
    store.dispose()
    base = f"http://{host}:{port}"
    header = shlex.quote(f"X-API-KEY: {secret}")
    typer.echo(f"\nDemo organization {DEMO_ORG!r} has {total} leads. API key (kept in "
               f"{key_file}):\n\n  {secret}\n")
    typer.echo("Try:\n")
    typer.echo(f"  curl -g -H {header} '{base}/api/leads?limit=2'")
    typer.echo(
        f"  curl -g -H {header} '{base}/api/leads?status=won&createdAt[gte]=2026-01-01"
        "&sort=value:desc&limit=20&fields=id,name,email,value'\n"
    )
    typer.echo(f"  export LEADS_API_KEY={secret}   # the README's examples use this\n")
    typer.echo(f"The reference is at {base}/docs\n")
    run_server(host, port, 1)


def demo_key_file(store: Store) -> Path:
    """Where the demo keeps its key's secret (the store holds only its hash): beside an
    SQLite file, else in the current directory."""
    database = store.engine.url.database
    if store.dialect == "sqlite" and database and database != ":memory:":
        path = Path(database)
        return path.with_name(path.name + ".demo-key")
    return Path(".leads-api-demo-key")


def _kept_demo_key(conn: Connection, org: Organization, key_file: Path) -> str:
    """The demo key from an earlier run if it still opens this organization, else a new one,
    written to `key_file` (readable by this user only)."""
    with suppress(OSError):
        kept = key_file.read_text().strip()
        caller = authenticate(conn, kept) if kept else None
        if caller is not None and caller.org.id == org.id and not caller.read_only:
            return kept
    _, secret = create_key(conn, org, name="demo")
    with suppress(OSError):
        key_file.touch(mode=0o600)
        key_file.write_text(secret + "\n")
    return secret
