"""When to try a message again: the answer's outcome, and exponential backoff with jitter.

Timeouts, connection errors, 408, 425, 429 and 5xx are retried (after 429 and 503 the
wait `Retry-After` asks for, at least 1 s); 2xx is delivered; 410 Gone disables the
subscription; any other answer (another 4xx, a redirect, which is not followed) is a
final failure. Retries go on for
about 24 hours after the event: waits of 5 s, 15 s, 45 s, ... tripling up to 4 hours.

>>> [outcome_of(code) for code in (200, 204, 410, 429, 503, 404, 301)]
['delivered', 'delivered', 'gone', 'retry', 'retry', 'failed', 'failed']
>>> DeliveryPolicy().backoff_s(1), DeliveryPolicy().backoff_s(3), DeliveryPolicy().backoff_s(20)
(5.0, 45.0, 14400.0)
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

DELIVERED, RETRY, FAILED, GONE = "delivered", "retry", "failed", "gone"
_RETRIED_STATUSES = frozenset({408, 425, 429})


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return DELIVERED
    if status == 410:
        return GONE
    if status in _RETRIED_STATUSES or status >= 500:
        return RETRY
    return FAILED


def retry_after_s(header: str | None, now_s: float) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None if absent/bad."""
    if header is None or not header.strip():
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now_s)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_s: float = 10.0  # one attempt, connection included
    retry_base_s: float = 5.0  # the first retry's wait
    retry_factor: float = 3.0
    retry_cap_s: float = 4 * 3600.0
    retry_window_s: float = 24 * 3600.0  # after the event, no new attempt is scheduled
    jitter: float = 0.2  # each wait is scaled by a random factor in [1 - j, 1 + j]
    poll_s: float = 0.2  # how often an idle deliverer looks for due messages
    batch: int = 64  # messages claimed at once by one lane
    lanes: int = 2  # claim-send-record loops per subscription: one sends while one claims
    in_flight: int = 4  # requests one lane has open at once (to its one receiver)
    keep_deliveries: int = 1_000  # attempts kept per subscription for its log

    @classmethod
    def from_env(cls) -> DeliveryPolicy:
        return cls(
            timeout_s=_env_float("LEADS_WEBHOOK_TIMEOUT_S", cls.timeout_s),
            retry_base_s=_env_float("LEADS_WEBHOOK_RETRY_BASE_S", cls.retry_base_s),
            poll_s=_env_float("LEADS_WEBHOOK_POLL_S", cls.poll_s),
            in_flight=max(1, int(_env_float("LEADS_WEBHOOK_IN_FLIGHT", cls.in_flight))),
        )

    @property
    def lease_s(self) -> float:
        """How long a claim holds a message: well past one attempt's timeout, so a message
        is only claimed again when its deliverer is gone (or far overdue)."""
        return 2 * self.timeout_s + 5.0

    def backoff_s(self, attempts: int) -> float:
        """The wait after the `attempts`-th failed attempt, before jitter."""
        return min(self.retry_cap_s, self.retry_base_s * self.retry_factor ** (attempts - 1))

    def next_attempt_ms(
        self,
        *,
        attempts: int,
        event_ms: int,
        now_ms: int,
        retry_after: float | None,
        rng: random.Random,
    ) -> int | None:
        """When to try again after `attempts` failed attempts, or None: give up."""
        if retry_after is not None:  # the receiver said when; at least a second, though
            wait = max(1.0, retry_after)
        else:
            wait = self.backoff_s(attempts) * rng.uniform(1 - self.jitter, 1 + self.jitter)
        at = now_ms + int(wait * 1000)
        if at > event_ms + int(self.retry_window_s * 1000):
            return None
        return at
