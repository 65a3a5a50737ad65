"""`leads-api import` and `leads-api export`: lead objects in and out as JSONL or CSV."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Import and export are added by the transfer module (issue #2, CLI section)."""
