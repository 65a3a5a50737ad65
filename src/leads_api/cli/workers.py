"""Several worker processes serving one port, each with a listening socket of its own.

uvicorn's `--workers` shares one listening socket between its workers, and whichever
worker wakes first accepts a whole burst of new connections: with 32 clients connecting at
once one worker may get nearly all of them while the other idles, which doubles the slow
tail of latencies. Here each worker binds the port itself with SO_REUSEPORT, so the kernel
spreads new connections over the workers evenly (by a hash of the client's address).

The parent only supervises: it starts the workers, starts a new one if one dies, and
passes SIGINT/SIGTERM on for a graceful shutdown.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from leads_api.errors import UsageError

LISTEN_BACKLOG = 2048
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SHUTDOWN_GRACE_S = 30.0


def can_share_port() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) that other processes may bind as well."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(LISTEN_BACKLOG)
    return sock


def run_workers(config: dict[str, Any], host: str, port: int, workers: int) -> None:
    """Serve `uvicorn.Config(**config)` from `workers` processes on (host, port)."""
    # Fail here, once, if the port is taken (by something not sharing it); then let go of
    # it: a listening socket nobody accepts on would get its share of the connections.
    try:
        bind(host, port).close()
    except OSError as error:
        raise UsageError(f"Cannot listen on {host}:{port}: {error.strerror}") from None
    context = multiprocessing.get_context("spawn")
    # Metrics (when on, api/metrics.py) are added up over the workers from files in one
    # fresh directory; the spawned workers inherit its name.
    metrics_dir = tempfile.TemporaryDirectory(prefix="leads-api-metrics-")
    os.environ.setdefault(MULTIPROC_ENV, metrics_dir.name)
    print(f"leads-api serving on http://{_shown_host(host)}:{port} with {workers} worker "
          "processes (Ctrl-C to stop)", file=sys.stderr, flush=True)

    def start() -> BaseProcess:
        process = context.Process(target=_serve, args=(config, host, port), daemon=False)
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        # SIGTERM whatever came: a Ctrl-C has already sent the workers a SIGINT, and a
        # second SIGINT would make uvicorn skip its graceful shutdown.
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            for i, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    processes[i] = start()  # a worker died: keep serving with a new one
            time.sleep(0.5)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        metrics_dir.cleanup()


def _shown_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _serve(config: dict[str, Any], host: str, port: int) -> None:
    sock = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(**config))
    server.run(sockets=[sock])

