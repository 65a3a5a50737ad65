"""The client's errors: one base class, a subclass per error code and per status family.

Every error the server sends carries its contract code, message, details, HTTP status and
request id; `error_from_response` picks the most specific class for an answer (by code,
then by status, then by family) so that `except NotFoundError` and `except ClientError`
both work. No answer at all (refused or dropped connections, timeouts) is a
`LeadsConnectionError`, after the retries the client's policy allows.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from leads_api_client.retry import parse_retry_after


class LeadsApiError(Exception):
    """Anything that went wrong calling the service.

    `code` is the contract's error code (`VALIDATION_ERROR`, `NOT_FOUND`, ...);
    `status` the HTTP status (None when no answer came); `details` the error's details
    (`{"parameter": "status"}`, `{"field": "email"}`); `request_id` the `req_...` id the
    server logged the request under (None when there was none).
    """

    CODE: ClassVar[str | None] = None
    STATUS: ClassVar[int | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: str = code or type(self).CODE or "UNKNOWN"
        self.status = status
        self.details: dict[str, Any] = details or {}
        self.request_id = request_id
        self.headers = headers if headers is not None else httpx.Headers()

    def __str__(self) -> str:
        where = f" (request {self.request_id})" if self.request_id else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"message={self.message!r}, details={self.details!r}, "
            f"request_id={self.request_id!r})"
        )


class ClientError(LeadsApiError):
    """A 4xx answer: the request was wrong (repeating it unchanged will not help)."""


class ServerError(LeadsApiError):
    """A 5xx answer."""


class BadRequestError(ClientError):
    """400: a parameter or body field was wrong; `details` names it."""

    STATUS = 400


class ValidationError(BadRequestError):
    CODE = "VALIDATION_ERROR"


class InvalidFilterError(BadRequestError):
    CODE = "INVALID_FILTER"


class InvalidDateError(BadRequestError):
    CODE = "INVALID_DATE"


class UnauthorizedError(ClientError):
    """401: a missing, unknown or revoked key."""

    CODE = "UNAUTHORIZED"
    STATUS = 401


class ForbiddenError(ClientError):
    """403: a read-only key on a write, or the organization's monthly leads limit."""

    CODE = "FORBIDDEN"
    STATUS = 403


class NotFoundError(ClientError):
    CODE = "NOT_FOUND"
    STATUS = 404


class MethodNotAllowedError(ClientError):
    CODE = "METHOD_NOT_ALLOWED"
    STATUS = 405


class ConflictError(ClientError):
    """409: a PATCH matching several leads without bulk updates, or an Idempotency-Key
    reused with a different body."""

    CODE = "CONFLICT"
    STATUS = 409


class PayloadTooLargeError(ClientError):
    CODE = "PAYLOAD_TOO_LARGE"
    STATUS = 413


class UnsupportedMediaTypeError(ClientError):
    CODE = "UNSUPPORTED_MEDIA_TYPE"
    STATUS = 415


class InternalServerError(ServerError):
    CODE = "INTERNAL_ERROR"
    STATUS = 500


class ServiceUnavailableError(ServerError):
    """503: the service's database cannot be reached. Raised once the retries are spent;
    `retry_after` is the server's `Retry-After` in seconds (None if it sent none)."""

    CODE = "SERVICE_UNAVAILABLE"
    STATUS = 503

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


class LeadsConnectionError(LeadsApiError):
    """No answer: the connection was refused, dropped or timed out. `__cause__` is the
    httpx exception. Its code, `CONNECTION_ERROR`, is the client's own."""

    CODE = "CONNECTION_ERROR"


class UnexpectedResponseError(LeadsApiError):
    """An answer that is not the API's envelope (a proxy's HTML page, a truncated body)."""

    CODE = "UNEXPECTED_RESPONSE"


_SPECIFIC: tuple[type[LeadsApiError], ...] = (
    ValidationError,
    InvalidFilterError,
    InvalidDateError,
    UnauthorizedError,
    ForbiddenError,
    NotFoundError,
    MethodNotAllowedError,
    ConflictError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    InternalServerError,
    ServiceUnavailableError,
)
_BY_CODE: dict[str, type[LeadsApiError]] = {cls.CODE: cls for cls in _SPECIFIC if cls.CODE}
# Every 400 code shares BadRequestError; the other statuses have one code each.
_BY_STATUS: dict[int, type[LeadsApiError]] = {
    400: BadRequestError,
    **{cls.STATUS: cls for cls in _SPECIFIC if cls.STATUS is not None and cls.STATUS != 400},
}
_BY_FAMILY: dict[int, type[LeadsApiError]] = {4: ClientError, 5: ServerError}


def error_class(status: int, code: str | None) -> type[LeadsApiError]:
    """The most specific class for an answer: by code, else by status, else by family.

    >>> error_class(404, "NOT_FOUND").__name__
    'NotFoundError'
    >>> error_class(400, "SOMETHING_NEW").__name__
    'BadRequestError'
    >>> error_class(429, None).__name__, error_class(502, None).__name__
    ('ClientError', 'ServerError')
    """
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return _BY_FAMILY.get(status // 100, UnexpectedResponseError)


def error_from_response(response: httpx.Response) -> LeadsApiError:
    """The typed error for a non-2xx answer (or a 2xx one that is not an envelope)."""
    request_id = response.headers.get("X-Request-Id")
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        meta = body.get("meta") if isinstance(body, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("requestId"), str):
            request_id = meta["requestId"]
        details = error.get("details")
        return error_class(response.status_code, error["code"])(
            str(error.get("message", "")),
            code=error["code"],
            status=response.status_code,
            details=details if isinstance(details, dict) else {},
            request_id=request_id,
            headers=response.headers,
        )
    cls = error_class(response.status_code, None)
    return cls(
        f"HTTP {response.status_code} without the API's error envelope: "
        f"{response.text[:200]!r}",
        code=cls.CODE or f"HTTP_{response.status_code}",
        status=response.status_code,
        request_id=request_id,
        headers=response.headers,
    )
