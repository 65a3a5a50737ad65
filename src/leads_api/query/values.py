"""Reading filter values: dates (with their whole-day meaning) and decimal numbers.

Both become half-open ranges over the integer the store keeps (epoch milliseconds, cents),
computed exactly with rationals so `value[gt]=99.999` or a microsecond instant compare as
the contract says.

>>> day_or_instant("2026-03-01")
(1772323200000, 1772409600000)
>>> day_or_instant("2026-03-01T10:00:00 02:00")  # '+' decoded to a space
Fraction(1772352000000, 1)
>>> comparison_range("gte", Fraction(10055, 2))
(5028, None)
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from fractions import Fraction

BIGINT_MIN = -(2**63) + 1
BIGINT_MAX = 2**63 - 1
DAY_MS = 86_400_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMBER = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"(Z|[+\- ][0-9]{2}:[0-9]{2})?"
)

Range = tuple[int | None, int | None]


class BadValue(ValueError):
    """The text is not a value of the expected form."""


def parse_number(text: str) -> Fraction:
    """A filter number: `-?digits[.digits]`, exactly."""
    m = _NUMBER.fullmatch(text)
    if not m:
        raise BadValue(text)
    number = _decimal(m[2], m[3] or "")
    return -number if m[1] else number


# A decimal from the query string is only ever scaled by at most 1000 (seconds -> ms) and
# then floored or ceiled against the store's 64-bit integers, so its digits past these
# limits cannot change an answer. Cutting them keeps the work bounded for a value of any
# length (int() refuses more than 4,300 digits; big-number arithmetic grows quadratically).
_MAX_WHOLE_DIGITS = 25  # 10**25 * 1000 is far beyond any 64-bit integer
_MAX_FRACTION_DIGITS = 30


def _decimal(whole: str, fraction: str) -> Fraction:
    """The non-negative decimal `whole.fraction`, exactly or, past the limits above, with a
    stand-in that floors and ceils the same after scaling by 1, 100 or 1000."""
    whole = whole.lstrip("0")
    if len(whole) > _MAX_WHOLE_DIGITS:
        return Fraction(10**_MAX_WHOLE_DIGITS)
    if len(fraction) > _MAX_FRACTION_DIGITS:
        # Any non-zero digits beyond the cut become a single 1 just after it, so the value
        # stays strictly between two consecutive 30-digit decimals, as the original was.
        rest = fraction[_MAX_FRACTION_DIGITS:]
        fraction = fraction[:_MAX_FRACTION_DIGITS] + ("1" if rest.strip("0") else "")
    return Fraction(int(whole or "0")) + Fraction(int(fraction or "0"), 10 ** len(fraction))


def _ms(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def day_or_instant(text: str) -> tuple[int, int] | Fraction:
    """A date filter value: a whole UTC day as `(start_ms, end_ms)`, or an instant in ms.

    An instant may carry a sub-millisecond fraction, hence a Fraction.
    """
    m = _DATE.fullmatch(text)
    if m:
        try:
            start = datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
        except ValueError as exc:
            raise BadValue(text) from exc
        start_ms = _ms(start)
        return start_ms, start_ms + DAY_MS
    m = _DATETIME.fullmatch(text)
    if not m:
        raise BadValue(text)
    year, month, day, hour, minute = (int(m[i]) for i in range(1, 6))
    second = int(m[6] or 0)
    fraction = _decimal("0", m[7] or "")
    zone = m[8] or "Z"
    if zone == "Z":
        offset = timedelta(0)
    else:
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            raise BadValue(text)
        offset = timedelta(hours=oh, minutes=om) * (-1 if zone[0] == "-" else 1)
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise BadValue(text) from exc
    return (_ms(local) - int(offset.total_seconds() * 1000)) + fraction * 1000


def comparison_range(op: str, x: Fraction) -> Range:
    """The integers n with `n <op> x` (op: eq gte gt lte lt) as a half-open range."""
    if op == "eq":
        return math.ceil(x), math.floor(x) + 1
    if op == "gte":
        return math.ceil(x), None
    if op == "gt":
        return math.floor(x) + 1, None
    if op == "lte":
        return None, math.floor(x) + 1
    if op == "lt":
        return None, math.ceil(x)
    raise ValueError(op)


def day_range(op: str, start: int, end: int) -> Range:
    """The whole-day meaning of a date without a time (CONTRACT.md section 4, Dates)."""
    return {
        "eq": (start, end),
        "gte": (start, None),
        "gt": (end, None),
        "lte": (None, end),
        "lt": (None, start),
    }[op]


def clamp(r: Range) -> Range | None:
    """Fit a range into the store's 64-bit integers; None when it holds no integer at all."""
    lo, hi = r
    if lo is not None and hi is not None and lo >= hi:
        return None
    if lo is not None and lo > BIGINT_MAX:
        return None
    if hi is not None and hi <= BIGINT_MIN:
        return None
    if lo is not None and lo <= BIGINT_MIN:
        lo = None
    if hi is not None and hi > BIGINT_MAX:
        hi = None
    return lo, hi
