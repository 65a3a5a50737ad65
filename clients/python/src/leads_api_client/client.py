"""`LeadsClient`: the service's endpoints as Python methods, over one httpx connection pool.

Each method sends one request (the iterators one per page) through `_send`, which retries
what the `RetryPolicy` allows and turns every answer that is not a success into a typed
error.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import date
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from leads_api_client.errors import (
    LeadsConnectionError,
    UnexpectedResponseError,
    error_from_response,
)
from leads_api_client.query import QueryValue, encode_query, encode_value
from leads_api_client.results import (
    Change,
    ChangesPage,
    CreatedLead,
    Lead,
    LeadPage,
    UpdatedLeads,
)
from leads_api_client.retry import RETRYABLE_TRANSPORT_ERRORS, RetryPolicy, parse_retry_after

__version__ = "0.1.0"
Params = list[tuple[str, str]]
QUIET_POLLS_KEPT = 64  # empty change-feed answers remembered for conditional polls


class LeadsClient:
    """A client of one leads-api (or Octanist Leads API) service, as one API key.

    >>> with LeadsClient("http://127.0.0.1:8000", "lak_...") as leads:  # doctest: +SKIP
    ...     for lead in leads.iter_leads(status="won", sort="value:desc"):
    ...         print(lead["name"], lead["value"])

    `base_url` is the service root (the part before `/api/...`). `retry` says how often
    and how patiently failed requests are tried again (see `RetryPolicy`); `timeout` is
    httpx's, in seconds. `transport` replaces httpx's default transport (a proxy, a
    custom TLS setup). The client is thread-safe as httpx.Client is; close it, or use it
    as a context manager, to release its connections.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "X-API-KEY": api_key,
                "Accept": "application/json",
                "User-Agent": f"leads-api-client/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )
        self._quiet_polls: dict[tuple[tuple[str, str], ...], tuple[str, ChangesPage]] = {}
        self._quiet_lock = threading.Lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- reading -----------------------------------------------------------------------

    def list_leads(self, **query: QueryValue) -> LeadPage:
        """One page of `GET /api/leads` with the given filters, `search`, `sort`,
        `fields`, `limit`, `page` (or `cursor`)."""
        return self._lead_page(encode_query(query))

    def iter_leads(self, *, limit: int = 100, **query: QueryValue) -> Iterator[Lead]:
        """Every lead matching the query, page after page by cursor (keyset, not offsets).

        A lead that matches throughout and whose sort keys do not change comes exactly
        once, whatever is written meanwhile. `limit` is the page size (1-100).
        """
        page = self._lead_page(encode_query({**query, "limit": limit}))
        while True:
            yield from page.leads
            if page.next_cursor is None:
                return
            page = self._lead_page([("cursor", page.next_cursor), ("limit", str(limit))])

    def get_lead(self, lead_id: str, *, fields: QueryValue = None) -> Lead:
        """One lead by id (`NotFoundError` if the key's organization has none such)."""
        response = self._send(
            "GET", f"/api/leads/{quote(lead_id, safe='')}", params=encode_query({"fields": fields})
        )
        lead: Lead = _envelope(response)[0]
        return lead

    def list_changes(
        self, since: str | None = None, *, limit: int = 1000, **query: QueryValue
    ) -> ChangesPage:
        """One page of `GET /api/leads/changes` after the position `since`.

        A poll that found nothing new is asked again conditionally (`If-None-Match` with
        that answer's ETag): while the organization's leads have not changed the server
        answers 304 without running the query, and this returns the same empty page.
        """
        params = encode_query({"since": since, "limit": limit, **query})
        asked = tuple(params)
        with self._quiet_lock:
            quiet = self._quiet_polls.get(asked)
        headers = {"If-None-Match": quiet[0]} if quiet else None
        response = self._send("GET", "/api/leads/changes", params=params, headers=headers)
        if quiet and response.status_code == 304:
            return replace(quiet[1], request_id=response.headers.get("X-Request-Id"))
        data, meta = _envelope(response)
        changes = meta.get("changes")
        if not isinstance(changes, dict) or not isinstance(changes.get("next"), str):
            raise _unexpected(response, "a change feed answer without meta.changes.next")
        page = ChangesPage(
            leads=data,
            next=changes["next"],
            has_more=bool(changes.get("hasMore")),
            request_id=meta.get("requestId"),
        )
        self._remember_quiet_poll(asked, page, response.headers.get("ETag"))
        return page

    def _remember_quiet_poll(
        self, asked: tuple[tuple[str, str], ...], page: ChangesPage, tag: str | None
    ) -> None:
        """Keep the ETag of an empty, caught-up answer (only those: they are what a poller
        asks for again and again, and they cost nothing to keep)."""
        with self._quiet_lock:
            self._quiet_polls.pop(asked, None)
            if tag is None or page.leads or page.has_more:
                return
            while len(self._quiet_polls) >= QUIET_POLLS_KEPT:
                del self._quiet_polls[next(iter(self._quiet_polls))]
            self._quiet_polls[asked] = (tag, page)

    def iter_changes(
        self, since: str | None = None, *, limit: int = 1000, **query: QueryValue
    ) -> Iterator[Change]:
        """Every lead changed after `since` (from the beginning if None), oldest change
        first, each once at its current version, until the feed is caught up.

        Each lead comes with the token to resume from once it is handled: the page's
        `since` for all but the page's last lead, and the page's `next` for the last. So
        a consumer that stores the token of the last lead it handled and later passes it
        as `since` never skips a lead, and sees again at most that lead's page up to it
        (fewer than `limit` leads). Call again later to follow new changes.
        """
        position = since
        while True:
            page = self.list_changes(position, limit=limit, **query)
            last = len(page.leads) - 1
            for index, lead in enumerate(page.leads):
                yield Change(lead, page.next if index == last else position)
            if not page.has_more:
                return
            if not page.leads and page.next == position:
                raise UnexpectedResponseError(
                    "the change feed reported more leads but did not move forward",
                    status=200,
                    request_id=page.request_id,
                )
            position = page.next

    # --- writing -----------------------------------------------------------------------

    def create_lead(
        self,
        lead: Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> CreatedLead:
        """Create a lead from a mapping and/or keyword fields (the API's names).

        Every create carries an `Idempotency-Key`: `idempotency_key` if given (reuse it to
        make a retry of your own safe, e.g. a form submission's id), else a fresh random
        one, so that the client's own retries after a dropped connection never create a
        lead twice.
        """
        key = idempotency_key if idempotency_key is not None else f"lac_{uuid.uuid4().hex}"
        body = {**(lead or {}), **fields}
        response = self._send("POST", "/api/leads", json=body, headers={"Idempotency-Key": key})
        data = _envelope(response)[0]
        return CreatedLead(
            id=data["id"],
            message=data.get("message", ""),
            replayed=response.headers.get("Idempotent-Replayed", "").lower() == "true",
            idempotency_key=key,
        )

    def update_leads(
        self, patch: Mapping[str, Any] | None = None, /, **fields: Any
    ) -> UpdatedLeads:
        """PATCH the leads matched by `id`, `email` or `phone` (the first given) with
        `status`, `value`, `note`, `lossReason`, `alsoQualified`."""
        body = {**(patch or {}), **fields}
        data = _envelope(self._send("PATCH", "/api/leads", json=body))[0]
        return UpdatedLeads(
            lead_id=data["leadId"],
            lead_ids=list(data["leadIds"]),
            leads_updated=data["leadsUpdated"],
            message=data.get("message", ""),
        )

    def stats(
        self,
        period: str | None = None,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
    ) -> dict[str, Any]:
        """`POST /api/stats`: `period` is `current` (the server's default), `previous` or
        `custom` (with `start_date` and `end_date`)."""
        body: dict[str, str] = {}
        if period is not None:
            body["period"] = period
        if start_date is not None:
            body["startDate"] = encode_value(start_date)
        if end_date is not None:
            body["endDate"] = encode_value(end_date)
        data: dict[str, Any] = _envelope(self._send("POST", "/api/stats", json=body))[0]
        return data

    def check(self) -> None:
        """Return if the key is valid; raise `UnauthorizedError` if it is not."""
        response = self._send("GET", "/api/check")
        body = _json(response)
        if not isinstance(body, dict) or body.get("success") is not True:
            raise _unexpected(response, "the check answer is not {'success': true}")

    # --- one request, with retries -----------------------------------------------------

    def _lead_page(self, params: Params) -> LeadPage:
        response = self._send("GET", "/api/leads", params=params)
        data, meta = _envelope(response)
        pagination = meta.get("pagination")
        if not isinstance(pagination, dict):
            raise _unexpected(response, "a list answer without meta.pagination")
        return LeadPage(
            leads=data,
            total=pagination.get("total", 0),
            next_cursor=pagination.get("nextCursor"),
            pagination=pagination,
            request_id=meta.get("requestId"),
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request, retrying as the policy allows; a 2xx answer, or raise."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method, path, params=tuple(params or ()), json=json,
                    headers=headers,
                )
            except RETRYABLE_TRANSPORT_ERRORS as error:
                delay = self.retry.delay(attempt)
                if delay is None:
                    raise _no_answer(method, path, attempt, error) from error
                time.sleep(delay)
                continue
            except httpx.TransportError as error:
                raise _no_answer(method, path, attempt, error) from error
            if response.is_success or (
                response.status_code == 304 and headers and "If-None-Match" in headers
            ):
                return response
            if response.status_code in self.retry.retry_statuses:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                delay = self.retry.delay(attempt, retry_after=retry_after)
                if delay is not None:
                    response.close()
                    time.sleep(delay)
                    continue
            raise error_from_response(response)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise _unexpected(response, "an answer that is not JSON") from error


def _envelope(response: httpx.Response) -> tuple[Any, dict[str, Any]]:
    """The `data` and `meta` of a success envelope."""
    body = _json(response)
    if not isinstance(body, dict) or body.get("success") is not True or "data" not in body:
        raise _unexpected(response, "an answer that is not a success envelope")
    meta = body.get("meta")
    return body["data"], meta if isinstance(meta, dict) else {}


def _unexpected(response: httpx.Response, what: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        f"HTTP {response.status_code}: {what}",
        status=response.status_code,
        request_id=response.headers.get("X-Request-Id"),
        headers=response.headers,
    )


def _no_answer(
    method: str, path: str, attempts: int, error: httpx.TransportError
) -> LeadsConnectionError:
    tries = "once" if attempts == 1 else f"{attempts} times"
    return LeadsConnectionError(
        f"{method} {path} got no answer (tried {tries}): {type(error).__name__}: {error}",
        status=None,
    )
