"""glibc's malloc arenas, capped for a server of many threads.

glibc gives a thread that finds the arenas it knows locked an arena of its own, up to eight
per core, and memory freed into one arena is reused only by allocations made there. The
API answers on a pool of up to 40 threads, and on SQLite each pooled connection's page
cache is allocated by whichever thread uses it, so freed memory spreads over arenas that
the next allocation does not look in: in the five-minute soak (bench/RESULTS.md "Soak")
the SQLite server's RSS grew 298 -> 340 MB after the warm-up, and with two arenas 288 ->
301 MB, flat for the last three minutes, at the same throughput and latency.

So `leads-api serve` over SQLite caps the arenas at MALLOC_ARENA_MAX (2 unless the
environment says otherwise): for its own process with mallopt (it may serve in process),
and for the worker processes it starts through the environment they inherit, which glibc
reads as they start. Over PostgreSQL it leaves glibc's default: the server's memory held
flat without the cap (266 -> 271 MB), and with it the soak ran slower in both of two runs
(p99 199 and 257 ms against 146-181 ms in three runs without; why was not measured).
"""

from __future__ import annotations

import ctypes
import os
import platform

ARENAS_ENV = "MALLOC_ARENA_MAX"
DEFAULT_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number for the arena cap (glibc's malloc.h)


def limit_malloc_arenas() -> int | None:
    """Cap this process's malloc arenas and those of the processes it starts; the cap, or
    None where the C library is not glibc or MALLOC_ARENA_MAX is not a positive number
    (then glibc's own handling of the variable stands)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    raw = os.environ.setdefault(ARENAS_ENV, str(DEFAULT_ARENAS))
    try:
        arenas = int(raw)
    except ValueError:
        return None
    if arenas < 1:
        return None
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    if libc.mallopt(_M_ARENA_MAX, arenas) != 1:
        return None
    return arenas
