"""The deliverer: drains the outbox, one task per subscription with due messages.

Each task runs a few lanes; a lane claims a batch of its subscription's due messages (each
the earliest undelivered one of its lead), sends them a few at a time, records the
outcomes, and claims again until nothing is due. Lanes overlap one batch's database work
with another's HTTP; they cannot reorder a lead's messages, because a message stays in
the outbox (blocking its lead's later ones) until its outcome is recorded. A slow or
failing receiver holds up only its own subscription. Database work runs in threads (the
store is synchronous); each subscription gets an httpx client with a few keep-alive
connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import threading
import time
from contextlib import suppress
from dataclasses import replace
from typing import Any

import httpx

from leads_api.delivery.address import (
    AddressRefused,
    allow_private_from_env,
    destination,
)
from leads_api.delivery.policy import DELIVERED, GONE, RETRY, DeliveryPolicy, outcome_of
from leads_api.delivery.policy import retry_after_s as parse_retry_after
from leads_api.errors import ServiceUnavailable
from leads_api.lead import now_ms
from leads_api.signatures import message_headers
from leads_api.store import Store
from leads_api.store.delivery_queue import (
    Attempt,
    Message,
    claim,
    due_webhooks,
    prune,
    record,
    release,
)
from leads_api.store.webhooks import Signing

log = logging.getLogger("leads_api.webhooks")
MAX_RESPONSE_BYTES = 64 * 1024  # of a receiver's answer that is read; the rest is dropped
PRUNE_EVERY_S = 30.0
ERROR_PAUSE_S = 1.0
Http = httpx.AsyncHTTPTransport
CLIENT_IDLE_S = 60.0  # a subscription's connections are closed after this long unused


def new_claimer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Deliverer:
    """Delivers the outbox of `store` until told to stop."""

    def __init__(
        self,
        store: Store,
        policy: DeliveryPolicy | None = None,
        *,
        allow_private: bool | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or DeliveryPolicy.from_env()
        self.allow_private = allow_private_from_env() if allow_private is None else allow_private
        self.claimer = new_claimer()
        self._rng = random.Random()
        self.attempted = 0  # attempts made by this deliverer (for tests and benchmarks)
        self._touched: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        drains: dict[str, asyncio.Task[None]] = {}
        clients: dict[str, tuple[Http, float]] = {}  # per subscription, last use
        next_prune = time.monotonic() + PRUNE_EVERY_S
        try:
            while not stop.is_set():
                pause = self.policy.poll_s
                for webhook_id, task in list(drains.items()):
                    if task.done():  # before looking again: its subscription may be due anew
                        del drains[webhook_id]
                        clients[webhook_id] = (clients[webhook_id][0], time.monotonic())
                try:
                    due = await asyncio.to_thread(self._due)
                    for webhook_id in due:
                        if webhook_id not in drains:
                            if webhook_id not in clients:
                                clients[webhook_id] = (self._client(), 0.0)
                            http = clients[webhook_id][0]
                            clients[webhook_id] = (http, time.monotonic())
                            drains[webhook_id] = asyncio.create_task(
                                self._lanes(http, webhook_id, stop)
                            )
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + PRUNE_EVERY_S
                        await asyncio.to_thread(self._prune)
                except ServiceUnavailable as error:  # the database is away: wait for it
                    log.warning("webhook delivery: %s", error.message)
                    pause = ERROR_PAUSE_S
                except Exception:
                    log.exception("webhook delivery: cannot read the outbox")
                    pause = ERROR_PAUSE_S
                await self._close_idle(clients, busy=drains)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
            # In-flight attempts finish (each within its timeout); no new batch is claimed.
            await asyncio.gather(*drains.values(), return_exceptions=True)
        finally:
            for http, _ in clients.values():
                await http.aclose()

    def _client(self) -> Http:
        """HTTP for one subscription: a few keep-alive connections to its one receiver.
        (One pool for all would hold every receiver's connections, and httpcore checks
        each pooled connection on every request.) httpx's transport rather than its
        client: no redirects to follow, no cookies to keep, no proxies from the
        environment, and the client's layer was measured at a third of a delivery's CPU."""
        size = self.policy.lanes * self.policy.in_flight
        return httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            trust_env=False,
        )

    async def _close_idle(
        self, clients: dict[str, tuple[Http, float]], *, busy: dict[str, Any]
    ) -> None:
        idle_since = time.monotonic() - CLIENT_IDLE_S
        for webhook_id, (http, used) in list(clients.items()):
            if webhook_id not in busy and used < idle_since:
                del clients[webhook_id]
                await http.aclose()

    async def send_once(self, signing: Signing, message: Message) -> Attempt:
        """One attempt at `message`, outside the outbox (a test event): no retry."""
        async with self._client() as http:
            [attempt] = await self._attempt_all(http, signing, [message])
        if attempt.outcome != "delivered":
            attempt = replace(attempt, outcome="failed", next_attempt_at=None)
        return attempt

    def _due(self) -> list[str]:
        with self.store.read() as conn:
            return due_webhooks(conn, now=now_ms())

    def _claim(self, webhook_id: str) -> tuple[Signing | None, list[Message]]:
        with self.store.write() as conn:
            return claim(
                conn,
                webhook_id=webhook_id,
                now=now_ms(),
                lease_ms=int(self.policy.lease_s * 1000),
                claimer=self.claimer,
                limit=self.policy.batch,
            )

    def _record(self, attempts: list[Attempt]) -> None:
        with self.store.write() as conn:
            record(conn, attempts=attempts, claimer=self.claimer)

    def _release(self, messages: list[Message]) -> None:
        with self.store.write() as conn:
            release(conn, messages=messages, claimer=self.claimer, now=now_ms())

    def _prune(self) -> None:
        touched, self._touched = sorted(self._touched), set()
        with self.store.write() as conn:
            prune(conn, now=now_ms(), webhook_ids=touched, keep=self.policy.keep_deliveries)

    async def _lanes(self, http: Http, webhook_id: str, stop: asyncio.Event) -> None:
        await asyncio.gather(
            *(self._drain(http, webhook_id, stop) for _ in range(self.policy.lanes))
        )

    async def _drain(self, http: Http, webhook_id: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                signing, messages = await asyncio.to_thread(self._claim, webhook_id)
            except Exception:
                log.exception("webhook delivery: cannot claim messages of %s", webhook_id)
                return
            if signing is None or not messages:
                return
            self._touched.add(webhook_id)
            try:
                attempts = await self._attempt_all(http, signing, messages)
            except asyncio.CancelledError:
                with suppress(Exception):
                    await asyncio.to_thread(self._release, messages)
                raise
            try:
                await asyncio.to_thread(self._record, attempts)
            except Exception:  # the claims expire and the messages are sent again
                log.exception("webhook delivery: cannot record attempts for %s", webhook_id)
                return

    async def _attempt_all(
        self, http: Http, signing: Signing, messages: list[Message]
    ) -> list[Attempt]:
        started = now_ms()
        try:
            where = await asyncio.to_thread(
                destination, signing.url, allow_private=self.allow_private
            )
        except AddressRefused as refused:
            return [
                self._settle(m, status=None, error=f"refused: {refused}", started=started,
                             duration_ms=0, retry_after=None)
                for m in messages
            ]
        url = httpx.URL(signing.url)
        fixed: dict[str, str] = {}
        extensions: dict[str, Any] = {
            "timeout": dict.fromkeys(("connect", "read", "write", "pool"), self.policy.timeout_s)
        }
        if where.addresses:  # connect to the address that was checked, not a new lookup
            fixed["host"] = url.netloc.decode("ascii")
            if url.scheme == "https":
                extensions["sni_hostname"] = where.host
            url = url.copy_with(host=where.addresses[0])
        slots = asyncio.Semaphore(self.policy.in_flight)

        async def attempt(message: Message) -> Attempt:
            async with slots:
                headers = message_headers(
                    signing.secrets, message.event_id, int(time.time()), message.body
                )
                request = httpx.Request(
                    "POST", url, headers={**headers, **fixed}, content=message.body,
                    extensions=extensions,
                )
                return await self._attempt(http, request, message)

        return list(await asyncio.gather(*(attempt(m) for m in messages)))

    async def _attempt(self, http: Http, request: httpx.Request, message: Message) -> Attempt:
        self.attempted += 1
        started = now_ms()
        clock = time.perf_counter()
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                response = await http.handle_async_request(request)
                try:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read > MAX_RESPONSE_BYTES:
                            break
                finally:
                    await response.aclose()
                status = response.status_code
                retry_header = response.headers.get("retry-after")
        except (TimeoutError, httpx.TimeoutException):
            return self._settle(
                message, status=None, error=f"timeout after {self.policy.timeout_s:g} s",
                started=started, duration_ms=_ms_since(clock), retry_after=None,
            )
        except httpx.HTTPError as error:
            return self._settle(
                message, status=None, error=f"{type(error).__name__}: {error}"[:500],
                started=started, duration_ms=_ms_since(clock), retry_after=None,
            )
        retry_after = parse_retry_after(retry_header, time.time()) if status in (429, 503) else None
        return self._settle(
            message, status=status, error=None, started=started,
            duration_ms=_ms_since(clock), retry_after=retry_after,
        )

    def _settle(
        self,
        message: Message,
        *,
        status: int | None,
        error: str | None,
        started: int,
        duration_ms: int,
        retry_after: float | None,
    ) -> Attempt:
        outcome = RETRY if status is None else outcome_of(status)
        next_at = None
        if outcome == RETRY:
            next_at = self.policy.next_attempt_ms(
                attempts=message.attempt,
                event_ms=message.event_ms,
                now_ms=now_ms(),
                retry_after=retry_after,
                rng=self._rng,
            )
        logged = {DELIVERED: "delivered", GONE: "gone"}.get(outcome)
        if logged is None:
            logged = "retrying" if next_at is not None else "failed"
        return Attempt(message, logged, status, error, duration_ms, started, next_at)


def _ms_since(clock: float) -> int:
    return int((time.perf_counter() - clock) * 1000)


class DeliveryThread:
    """A Deliverer on its own event loop in a background thread (inside `leads-api serve`,
    beside the server's loop, so request handling and delivery do not wait on each other)."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        self._thread = threading.Thread(target=self._main, name="leads-webhooks", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> DeliveryThread:
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self.deliverer.run(self._stop)
        except Exception:
            log.exception("webhook delivery stopped")
