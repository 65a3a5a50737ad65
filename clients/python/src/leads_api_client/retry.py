"""When a failed request is tried again, and how long the client waits before it does.

Retried: answers with a status in `retry_statuses` (503 by default, also the 502/504 a
load balancer sends when an API process goes away) and requests that got no answer
because the connection could not be made or was dropped. Not retried: timeouts while
waiting for an answer (the server may still be working on it; piling on does not help),
and every other status. Every request the client sends is safe to repeat: reads are
reads, a PATCH sets the same values again, and each create carries an `Idempotency-Key`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# Failures after which the request certainly or possibly never reached the application,
# or its answer was lost on the way back: trying again (with the same idempotency key) is
# the only way to learn the outcome.
RETRYABLE_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to try a request.

    `max_attempts` counts the first try (1 turns retries off). Without `Retry-After` the
    n-th retry waits a random time between half and all of
    `min(backoff_max, backoff_base * 2 ** (n - 1))` seconds. With `Retry-After` it waits
    exactly that long, unless that is more than `max_retry_after`: then the error is raised
    at once, since waiting less would not honour it.

    >>> policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    >>> [policy.backoff_ceiling(n) for n in (1, 2, 3, 4)]
    [1.0, 2.0, 4.0, 5.0]
    >>> policy.delay(1, retry_after=3.0)
    3.0
    >>> policy.delay(1, retry_after=600.0) is None
    True
    """

    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    retry_statuses: frozenset[int] = field(default=frozenset({502, 503, 504}))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts counts the first try: it must be at least 1")
        if min(self.backoff_base, self.backoff_max, self.max_retry_after) < 0:
            raise ValueError("delays cannot be negative")

    def backoff_ceiling(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float | None:
        """Seconds to wait after attempt number `attempt` (1-based) failed in a retryable
        way, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        ceiling = self.backoff_ceiling(attempt)
        return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delay-seconds or an HTTP date; None if absent or unreadable.

    >>> parse_retry_after("2"), parse_retry_after(" 0 "), parse_retry_after(None)
    (2.0, 0.0, None)
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT",
    ...                   now=datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC))
    10.0
    >>> parse_retry_after("soon"), parse_retry_after("-5")
    (None, None)
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
