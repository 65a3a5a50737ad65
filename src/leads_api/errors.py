"""The error hierarchy: each error carries its contract code, HTTP status, message and details.

Every layer raises these; exactly one place (`leads_api.api.errors`) turns them into HTTP
responses. Nothing else, and nothing from a database driver, ever reaches a client.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.details!r})"


class ValidationError(ApiError):
    code = "VALIDATION_ERROR"
    status = 400


class InvalidFilter(ApiError):
    code = "INVALID_FILTER"
    status = 400


class InvalidDate(ApiError):
    code = "INVALID_DATE"
    status = 400


class Unauthorized(ApiError):
    code = "UNAUTHORIZED"
    status = 401


class Forbidden(ApiError):
    code = "FORBIDDEN"
    status = 403


class NotFound(ApiError):
    code = "NOT_FOUND"
    status = 404


class MethodNotAllowed(ApiError):
    code = "METHOD_NOT_ALLOWED"
    status = 405


class RequestTimeout(ApiError):
    code = "REQUEST_TIMEOUT"
    status = 408


class Conflict(ApiError):
    code = "CONFLICT"
    status = 409


class PayloadTooLarge(ApiError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class UriTooLong(ApiError):
    code = "URI_TOO_LONG"
    status = 414


class HeadersTooLarge(ApiError):
    code = "HEADERS_TOO_LARGE"
    status = 431


class UnsupportedMediaType(ApiError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class InternalError(ApiError):
    code = "INTERNAL_ERROR"
    status = 500


class ServiceUnavailable(ApiError):
    code = "SERVICE_UNAVAILABLE"
    status = 503
    retry_after_seconds: ClassVar[int] = 2


class UsageError(Exception):
    """A command-line mistake (unknown organization, bad file): shown to the user, exit 1."""
