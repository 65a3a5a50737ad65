"""Rendered timestamps: the table-driven formatter equals datetime's isoformat everywhere."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leads_api.lead import format_timestamp

_EPOCH = datetime(1970, 1, 1)
_FIRST_MS = (datetime(1, 1, 1) - _EPOCH) // timedelta(milliseconds=1)
_LAST_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000) - _EPOCH) // timedelta(milliseconds=1)


def isoformat(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


@given(st.integers(_FIRST_MS, _LAST_MS))
def test_any_instant_renders_as_isoformat_does(ms: int) -> None:
    assert format_timestamp(ms) == isoformat(ms)


@pytest.mark.parametrize("ms", [0, -1, 1, 86_399_999, 86_400_000, -86_400_000, _FIRST_MS,
                                _LAST_MS, 1_768_473_000_123])
def test_edges(ms: int) -> None:
    assert format_timestamp(ms) == isoformat(ms)


@pytest.mark.parametrize("ms", [_FIRST_MS - 1, _LAST_MS + 1])
def test_out_of_range_fails_as_datetime_does(ms: int) -> None:
    with pytest.raises(OverflowError):
        format_timestamp(ms)
