"""`leads-api` run in-process against the test database, and the API as an independent witness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import Result
from starlette.testclient import TestClient
from typer.testing import CliRunner

from leads_api.cli import app
from leads_api.errors import UsageError


class Cli:
    """`cli("orgs", "create", "acme")` runs the command with LEADS_DATABASE_URL set."""

    def __init__(self, database_url: str) -> None:
        self.env = {"LEADS_DATABASE_URL": database_url}

    def __call__(self, *args: str | Path) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args], env=self.env)

    def ok(self, *args: str | Path) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def usage_error(self, *args: str | Path) -> str:
        """Run a command that must fail as the user's mistake; its message."""
        result = self(*args)
        assert isinstance(result.exception, UsageError), (result.output, result.exception)
        assert result.exit_code == 1
        return str(result.exception)


def api_leads(asgi_app: Any, key: str, query: str = "") -> list[dict[str, Any]]:
    """Every lead GET /api/leads returns for `query`, page by page."""
    found: list[dict[str, Any]] = []
    with TestClient(asgi_app, headers={"X-API-KEY": key}) as client:
        page = 1
        while True:
            separator = "&" if query else ""
            response = client.get(f"/api/leads?{query}{separator}limit=100&page={page}")
            assert response.status_code == 200, response.text
            body = response.json()
            found.extend(body["data"])
            if not body["meta"]["pagination"]["hasMore"]:
                return found
            page += 1
