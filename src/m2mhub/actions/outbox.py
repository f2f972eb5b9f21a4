"""The outbox: deliveries stored first, sent by a worker, retried with backoff.

Webhooks and notifications are enqueued as rows (committed before ``enqueue``
returns), so nothing that asks for one ever waits on a remote server, and what
is in the outbox survives a crash. The worker claims due rows with a
conditional update (several processes never attempt the same delivery at the
same time), hands each to the sender of its kind, and records the outcome:
delivered, a retry after an exponential backoff with jitter, or a dead letter
after ``delivery_max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
from collections.abc import Callable
from typing import Final, Protocol

import msgspec

from m2mhub.audit.log import AuditLog
from m2mhub.config import Settings
from m2mhub.core.timeutil import now_ms
from m2mhub.store.base import Store
from m2mhub.store.models import Delivery

log = logging.getLogger(__name__)

#: The longest ``Retry-After`` honoured; a server asking for more is retried after a day.
MAX_RETRY_AFTER_S: Final = 86_400.0
#: How often delivered rows past ``delivery_keep_days`` are deleted.
PURGE_INTERVAL_MS: Final = 3_600_000


class Outcome(msgspec.Struct, frozen=True):
    """What one attempt gave: success, or an error and whether trying again may help."""

    ok: bool
    retry: bool = True
    error: str | None = None
    code: int | None = None
    retry_after_s: float | None = None


class Sender(Protocol):
    """Sends the deliveries of one kind."""

    async def send(self, delivery: Delivery) -> Outcome: ...

    def display_target(self, delivery: Delivery) -> str:
        """The delivery's target as shown to people (passwords masked)."""
        ...

    async def aclose(self) -> None: ...


def backoff_ms(
    attempt: int, *, base_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> int:
    """The wait after failed attempt number ``attempt`` (1-based).

    Exponential (``base_s``, twice that, four times...), capped at ``max_s``, with
    jitter: between half and all of it, so receivers that come back are not hit by
    every sender at the same instant.
    """
    delay = min(max_s, base_s * 2 ** min(attempt - 1, 40))
    return int(1000 * delay * (0.5 + rand() / 2))


def parse_retry_after(value: str | None, *, now: int) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date
    (RFC 9110, section 10.2.3); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - now / 1000), MAX_RETRY_AFTER_S)


class DeliveryWorker:
    """Claims due deliveries and sends them, a bounded number at a time.

    ``start()`` runs it in the background; ``stop()`` stops claiming, lets
    attempts in flight finish for up to ``delivery_drain_s``, and hands the
    rest back to the outbox unattempted.
    """

    def __init__(self, store: Store, settings: Settings, *, holder: str, audit: AuditLog) -> None:
        self.store = store
        self.settings = settings
        self.holder = holder
        self.audit = audit
        self.senders: dict[str, Sender] = {}
        self.delivered = 0
        self.failed_attempts = 0
        self.dead = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._soonest: int | None = None  # next retry this process scheduled
        self._last_purge = 0

    def wake(self) -> None:
        """Look for due deliveries now (called after enqueueing in this process)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the delivery worker is running already")
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="delivery-worker")

    async def stop(self) -> None:
        """Stop claiming, drain what is in flight, close the senders."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._inflight:
            _, late = await asyncio.wait(
                list(self._inflight.values()), timeout=self.settings.delivery_drain_s
            )
            unfinished = [d for d, task in self._inflight.items() if task in late]
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if unfinished:
                await self.store.release_deliveries(unfinished, self.holder, now_ms())
                log.info("handed %d unfinished deliveries back to the outbox", len(unfinished))
        for sender in self.senders.values():
            await sender.aclose()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.run_once()
            except Exception:
                log.exception("delivery worker: claiming failed")
            await self._wait()

    async def _wait(self) -> None:
        timeout = self.settings.delivery_poll_s
        if self._soonest is not None:
            timeout = min(timeout, max(0.0, (self._soonest - now_ms()) / 1000))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def run_once(self) -> int:
        """Claim what is due (as many as there are free slots) and start sending it."""
        now = now_ms()
        if self._soonest is not None and self._soonest <= now:
            self._soonest = None
        if now - self._last_purge > PURGE_INTERVAL_MS:
            self._last_purge = now
            keep_ms = int(self.settings.delivery_keep_days * 86_400_000)
            await self.store.purge_deliveries(delivered_before=now - keep_ms)
        free = self.settings.delivery_concurrency - len(self._inflight)
        if free <= 0:
            return 0
        claimed = await self.store.claim_deliveries(
            holder=self.holder,
            now=now,
            lease_ms=int(self.settings.delivery_lease_s * 1000),
            limit=free,
        )
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(delivery), name=f"delivery-{delivery.id}")
            self._inflight[delivery.id] = task
        return len(claimed)

    async def _attempt(self, delivery: Delivery) -> None:
        try:
            sender = self.senders.get(delivery.kind)
            if sender is None:
                outcome = Outcome(False, retry=False, error=f"no sender for {delivery.kind!r}")
            else:
                try:
                    outcome = await sender.send(delivery)
                except Exception as exc:  # a sender's bug must not kill the worker
                    log.exception("delivery %s: the %s sender failed", delivery.id, delivery.kind)
                    outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}")
            await self._record(delivery, outcome, sender)
        except Exception:
            log.exception("delivery %s: could not record the outcome", delivery.id)
        finally:
            self._inflight.pop(delivery.id, None)
            self._wake.set()  # a slot is free

    async def _record(self, delivery: Delivery, outcome: Outcome, sender: Sender | None) -> None:
        now = now_ms()
        settings = self.settings
        if outcome.ok:
            status, next_ms = "delivered", now
        elif not outcome.retry or delivery.attempts >= settings.delivery_max_attempts:
            status, next_ms = "dead", now
        else:
            wait = backoff_ms(
                delivery.attempts,
                base_s=settings.delivery_backoff_s,
                max_s=settings.delivery_backoff_max_s,
            )
            if outcome.retry_after_s is not None:
                wait = max(wait, int(outcome.retry_after_s * 1000))
            status, next_ms = "pending", now + wait
        error = None if outcome.error is None else outcome.error[:1000]
        if not await self.store.finish_delivery(
            delivery.id,
            self.holder,
            status=status,
            next_ms=next_ms,
            error=error,
            code=outcome.code,
            at_ms=now,
        ):
            log.warning(
                "delivery %s: the claim was lost (lease expired) before it ended", delivery.id
            )
            return
        if status == "pending":
            self.failed_attempts += 1
            self._soonest = next_ms if self._soonest is None else min(self._soonest, next_ms)
            log.info(
                "delivery %s attempt %d failed (%s); retry in %.1f s",
                delivery.id,
                delivery.attempts,
                error,
                (next_ms - now) / 1000,
            )
            return
        if status == "delivered":
            self.delivered += 1
        else:
            self.dead += 1
            log.warning(
                "delivery %s is a dead letter after %d attempts: %s",
                delivery.id,
                delivery.attempts,
                error,
            )
        await self.audit.record(
            tenant_id=delivery.tenant_id,
            actor=delivery.source,
            action=f"{delivery.kind}.deliver",
            target=f"delivery:{delivery.id}",
            details={
                "url": sender.display_target(delivery) if sender else delivery.target,
                "attempts": delivery.attempts,
                "code": outcome.code,
            },
            result="ok" if outcome.ok else f"error: {error}",
        )
