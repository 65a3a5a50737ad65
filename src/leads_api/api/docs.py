"""GET /docs: a readable reference rendered from /openapi.json by Swagger UI, offline.

Swagger UI's files come from the `swagger-ui-py` package (its `static/` folder, Swagger UI
5, which reads OpenAPI 3.1) and are served here, under /docs/assets/: the page asks no
other host for anything, so it works on a machine without internet access.
"""

from __future__ import annotations

from functools import cache
from importlib.util import find_spec
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from leads_api.errors import NotFound

# The files the page uses; nothing else in the package's folder is served.
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>leads-api reference</title>
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<style>body { margin: 0; } .swagger-ui .topbar { display: none; }</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  persistAuthorization: false,
  tryItOutEnabled: false,
  validatorUrl: null
});
</script>
</body>
</html>
"""


@cache
def assets_dir() -> Path:
    spec = find_spec("swagger_ui")  # located, not imported: only its files are needed
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def docs_endpoint(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def docs_asset_endpoint(request: Request) -> Response:
    name: str = request.path_params["name"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"No documentation asset {name[:100]!r}", path=request.url.path)
    return FileResponse(
        assets_dir() / name, media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400"},
    )
