"""GET /openapi.json: the document the app was built with (api/openapi.py makes it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response


async def openapi_endpoint(request: Request) -> Response:
    body: bytes = request.app.state.openapi_json
    return Response(body, media_type="application/json")
