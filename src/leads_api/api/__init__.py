"""The HTTP layer: the app factory, auth, routes, rendering and the one error -> HTTP mapper."""

from leads_api.api.app import create_app

__all__ = ["create_app"]
