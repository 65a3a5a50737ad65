"""The README's import and export examples, run as written after the demo has seeded its
organization, in a fresh directory with the venv at `.venv` (as in a clone)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from server import free_port, start_demo, stop_demo

pytestmark = pytest.mark.server

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(heading: str) -> str:
    section = README.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"no sh block under {heading}"
    return match[1]


def test_the_import_and_export_examples_work_after_the_demo(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / ".venv").symlink_to(sys.prefix)  # this venv, where leads-api is
    demo, _key, _printed = start_demo(database_url, tmp_path, free_port())
    stop_demo(demo)
    script = readme_block("Import and export")
    assert ".venv/bin/leads-api import" in script and "--org demo" in script
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, check=False,
        env={**os.environ, "LEADS_DATABASE_URL": database_url},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"Imported all\.jsonl into demo: 0 created, 0 updated, \d+ unchanged",
                     done.stdout), done.stdout
    assert re.search(r"Imported copy\.jsonl into demo-copy: [1-9]\d* created", done.stdout)
    assert (tmp_path / "won.csv").read_text().startswith("id,name,email,")
