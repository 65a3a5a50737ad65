"""What the log says about failures: a real unexpected error is one ERROR line carrying the
request id the client got, with its traceback once; the client still gets the envelope."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient

from api_support import assert_error
from leads_api.api import create_app
from leads_api.store import Store


class FaultyReads(Store):
    """The test database, except that every read hits a bug (not an outage)."""

    @contextmanager
    def read(self) -> Iterator[Connection]:
        raise RuntimeError("a bug in the read path")
        yield  # pragma: no cover


def test_an_unexpected_error_is_one_error_line_with_the_request_id(
    store: Store, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(FaultyReads(store.engine))
    with TestClient(app, headers={"X-API-KEY": api_key}, raise_server_exceptions=False) as c:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            response = c.get("/api/leads")
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert "bug" not in error["message"]  # nothing of the failure reaches the client
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    record = records[0]
    assert record.levelno == logging.ERROR
    assert response.headers["X-Request-Id"] in record.getMessage()
    assert "GET /api/leads" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
