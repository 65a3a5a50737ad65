"""GET and POST /api/check: is this key valid?"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from leads_api.api.auth import key_from_headers, require_caller
from leads_api.api.envelope import json_response
from leads_api.api.read_slots import in_read_slot
from leads_api.store import Store


async def check_endpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    key = key_from_headers(request)

    def work() -> None:
        with store.read() as conn:
            require_caller(conn, key)

    await in_read_slot(request, work)
    return json_response({"success": True})
