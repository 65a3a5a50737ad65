"""How many reads one server process works on at once (LEADS_READ_THREADS, default 2).

A read runs in a worker thread: its statements wait for the database with the GIL released,
and the rest of it (the key, parsing, the statement's parameters, rendering) is Python that
holds it. Starlette's thread pool lets 40 of them run at once, and with 32 clients on two
worker processes about 16 did: they took the GIL from each other, and on PostgreSQL 32
statements ran at once on two CPUs. Bounded to a few per process, the others wait their turn
on the event loop in arrival order (anyio's limiter), and each read, once started, runs
with less to share. Measured on PostgreSQL at a million leads, 32 connections, two worker
processes, fresh URLs, run alternately (bench/RESULTS.md, "Measured alone: reads in
turn, stop 24"): fresh Q3 668-788 -> 985-993 req/s and its p99 166-171 -> 48 ms, Q7's
p99 810-860 -> 148-198 ms; two slots ran as fast as one and faster than three or more.

Writes keep Starlette's pool: the writers of a group wait for its commit in their threads
(store/write_groups.py), and two at a time would make groups of two.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

DEFAULT_READ_THREADS = 2
MAX_READ_THREADS = 40  # Starlette's whole pool

T = TypeVar("T")


def read_threads_from_env() -> int:
    """LEADS_READ_THREADS: reads in worker threads at once per process, 1 to 40."""
    raw = os.environ.get("LEADS_READ_THREADS", "").strip()
    return max(1, min(MAX_READ_THREADS, int(raw))) if raw else DEFAULT_READ_THREADS


class ReadSlots:
    """Runs reads in worker threads, at most `size` at once; the rest wait in turn."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.ran = 0  # reads run (for tests and benchmarks)
        self.peak = 0  # the most that ran at once
        self._running = 0
        self._count_lock = threading.Lock()
        # A limiter belongs to one event loop; an app may be served by several in turn
        # (tests start one per client).
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter]
        self._limiters = weakref.WeakKeyDictionary()

    async def run(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = CapacityLimiter(self.size)
        return await anyio.to_thread.run_sync(self._counted, work, limiter=limiter)

    def _counted(self, work: Callable[[], T]) -> T:
        with self._count_lock:
            self._running += 1
            self.ran += 1
            self.peak = max(self.peak, self._running)
        try:
            return work()
        finally:
            with self._count_lock:
                self._running -= 1


async def in_read_slot(request: Request, work: Callable[[], T]) -> T:
    """`work` run as one of the app's reads (`app.state.read_slots`)."""
    slots: ReadSlots = request.app.state.read_slots
    return await slots.run(work)
