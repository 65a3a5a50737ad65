"""Who is calling: the `X-API-KEY` (or `Authorization: Bearer`) header -> Caller, or 401."""

from __future__ import annotations

from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from leads_api.api.access_log import note_organization
from leads_api.errors import Forbidden, Unauthorized
from leads_api.store import Store
from leads_api.store.tenants import Caller, authenticate


def key_from_headers(request: Request) -> str | None:
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def require_caller(conn: Connection, key: str | None) -> Caller:
    if key is None:
        raise Unauthorized("Missing API key: send it in the X-API-KEY header")
    caller = authenticate(conn, key)
    if caller is None:
        raise Unauthorized("Invalid or revoked API key")
    note_organization(caller.org.id)
    return caller


def require_writer(caller: Caller) -> None:
    if caller.read_only:
        raise Forbidden("This API key is read-only; writes need a key without --read-only")


async def request_caller(request: Request, *, writes: bool = False) -> Caller:
    """The caller, from a short read transaction of its own, before the body is read: an
    unknown key is 401 and (with `writes`) a read-only key 403 whatever the body holds."""
    store: Store = request.app.state.store
    return await run_in_threadpool(store_caller, store, key_from_headers(request), writes=writes)


def store_caller(store: Store, key: str | None, *, writes: bool = False) -> Caller:
    """The caller, from a short read transaction of its own (in a worker thread): 401 for
    an unknown key, and with `writes` 403 for a read-only one."""
    with store.read() as conn:
        caller = require_caller(conn, key)
    if writes:
        require_writer(caller)
    return caller
