"""Conditional GET: strong ETags named by the organization's data version, and 304s.

An answer of GET /api/leads, /api/leads/{id} or /api/leads/changes is a function of the
organization's leads, the URL and this build of the service; the data version moves with
every write of the organization's leads. So the ETag is a digest of (organization, data
version, path, query string, build), known as soon as the key is checked: a request whose
If-None-Match names it gets 304 without its query being run at all. An answer is given an
ETag only when it is exactly that version's (on PostgreSQL a write may commit while an
answer is computed; that answer goes out without one).
"""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.envelope import REQUEST_ID_HEADER, request_id


def _build() -> str:
    try:
        return version("leads-api")
    except PackageNotFoundError:  # running from a source tree
        return "source"


BUILD = _build()


def etag(request: Request, *, org_id: int, data_version: int) -> str:
    query = request.scope["query_string"]
    path = request.scope["path"]  # not request.url: a query string need not be UTF-8
    head = f"{org_id}\0{data_version}\0{path}\0{BUILD}\0"
    material = head.encode("utf-8", "surrogatepass") + query
    return '"' + hashlib.blake2b(material, digest_size=16).hexdigest() + '"'


def client_has(request: Request, tag: str) -> bool:
    """Whether If-None-Match names `tag` (weak comparison, as RFC 9110 asks of it)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == tag:
            return True
    return False


def not_modified(request: Request, tag: str) -> Response:
    return Response(
        status_code=304, headers={"ETag": tag, REQUEST_ID_HEADER: request_id(request)}
    )
