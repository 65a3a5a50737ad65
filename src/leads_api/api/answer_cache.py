"""Encoded list answers of this process, reused while the organization's data is unchanged.

A list answer is a pure function of (organization, query string, the organization's leads).
Every write of an organization's leads moves its data version in the same transaction
(store/rollups.py), and every request reads the version with its API key, so an answer
stored under version V is exactly the answer for as long as the version is V, across any
number of processes sharing the database. A poller asking the same question every few
seconds then costs one indexed lookup instead of a count and a page.

Concurrent requests for an answer not yet kept wait for one of them to compute it (a
burst of pollers after a write costs one computation, not one each), and get its answer:
it is as new as the version they read, or newer.

Only what does not change between two answers is kept (see envelope.success_head); each
response still gets its own requestId and timestamp. Bounded by bytes, least recently used
first out; LEADS_ANSWER_CACHE_MB (default 64, 0 turns it off) per process.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_MB = 64
# How long a request waits for another one computing the same answer before computing
# it itself (only a stuck computation takes that long).
SHARED_WAIT_S = 60.0

CacheKey = tuple[int, str]  # (organization id, raw query string)


class _Flight:
    """One computation of an answer that other requests wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: bytes | None = None  # None if it failed: waiters compute their own
        self.exact = False  # the answer is exactly the version's (see AnswerCache.answer)


class AnswerCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        # One answer per entry is at most this big, so one deep page of wide leads cannot
        # push out everything else.
        self.max_entry_bytes = self.max_bytes // 8
        self._entries: OrderedDict[CacheKey, tuple[int, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # requests run on a thread pool
        self._flights: dict[tuple[CacheKey, int], _Flight] = {}
        self.hits = 0
        self.misses = 0
        self.shared = 0  # answers a request waited for instead of computing its own

    @classmethod
    def from_env(cls) -> AnswerCache:
        raw = os.environ.get("LEADS_ANSWER_CACHE_MB")
        megabytes = DEFAULT_MAX_MB if raw is None or raw.strip() == "" else float(raw)
        return cls(int(megabytes * 1024 * 1024))

    @property
    def enabled(self) -> bool:
        return self.max_entry_bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def answer(
        self,
        org_id: int,
        query_string: str,
        version: int,
        compute: Callable[[], bytes],
        still_at_version: Callable[[], bool],
    ) -> tuple[bytes, bool]:
        """The answer kept for `version`, or `compute()`'s, kept if `still_at_version()`
        (no write committed while it was computed, so it is exactly version's answer); and
        whether it is exactly version's answer (an ETag may then name it)."""
        if not self.enabled:
            answer = compute()
            return answer, still_at_version()
        key = (org_id, query_string)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                self.hits += 1
                self._entries.move_to_end(key)
                return entry[1], True
            flight = self._flights.get((key, version))
            leader = flight is None
            if flight is None:
                self.misses += 1
                flight = self._flights[(key, version)] = _Flight()
        if not leader:
            flight.done.wait(SHARED_WAIT_S)
            if flight.answer is not None:
                with self._lock:
                    self.shared += 1
                return flight.answer, flight.exact
            answer = compute()
            return answer, still_at_version()
        try:
            answer = compute()
            flight.exact = still_at_version()
            flight.answer = answer
            if flight.exact:
                self.put(org_id, query_string, version, answer)
            return answer, flight.exact
        finally:
            with self._lock:
                del self._flights[(key, version)]
            flight.done.set()

    def put(self, org_id: int, query_string: str, version: int, answer: bytes) -> None:
        if len(answer) > self.max_entry_bytes:
            return
        key = (org_id, query_string)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                if old[0] > version:  # a slower request must not put back an older answer
                    self._entries[key] = old
                    return
                self._bytes -= len(old[1])
            self._entries[key] = (version, answer)
            self._bytes += len(answer)
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= len(evicted)
