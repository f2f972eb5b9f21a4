"""The load generator over HTTP: ``POST /api/v1/devices/{id}/telemetry`` with device tokens.

``connections`` requests are in flight at once over an httpx pool of keep-alive
connections. Request ``r`` goes to device ``r % devices`` and carries up to
``batch`` of its readings (a JSON array when more than one,
docs/devices.md#the-three-payload-shapes). A reading is acknowledged when its
request is answered 200: its values are committed. Any other answer, or none,
fails every reading of the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Final

import httpx

from m2mhub.sim import loadvalues

if TYPE_CHECKING:
    from m2mhub.sim.loadgen import LoadSpec, Progress, Ready, Tally

#: Seconds a request may take before it counts as failed.
REQUEST_TIMEOUT_S: Final = 30.0


async def run_http(
    spec: LoadSpec, stop: asyncio.Event, progress: Progress | None, ready: Ready | None
) -> Tally:
    from m2mhub.sim.loadgen import PROGRESS_EVERY_S, Tally, _prepared

    n = len(spec.devices)
    rings = [loadvalues.fragments(_prepared(spec, d, i)) for i, d in enumerate(spec.devices)]
    paths = [f"/api/v1/devices/{d.id}/telemetry" for d in spec.devices]
    headers = [
        {"Authorization": f"Bearer {d.token}", "Content-Type": "application/json"}
        for d in spec.devices
    ]
    quotas = [spec.quota(i) for i in range(n)]
    # Requests per device; the last of a device carries what is left of its quota.
    requests = None if spec.count is None else -(-(quotas[0] or 0) // spec.batch) * n
    next_reading = [0] * n
    last_ts = [0] * n
    tally = Tally()
    cursor = 0
    limits = httpx.Limits(
        max_connections=spec.connections, max_keepalive_connections=spec.connections
    )

    def body(i: int, size: int) -> bytes:
        ring, first = rings[i], next_reading[i]
        now = int(time.time() * 1000)
        parts = []
        for j in range(first, first + size):
            ts = now if now > last_ts[i] else last_ts[i] + 1
            last_ts[i] = ts
            parts.append(b'{"ts":%d,"values":%b}' % (ts, ring[j % len(ring)]))
        next_reading[i] = first + size
        return parts[0] if size == 1 else b"[" + b",".join(parts) + b"]"

    def failed(reason: str, size: int) -> None:
        tally.failed += size
        tally.errors[reason] = tally.errors.get(reason, 0) + 1

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal cursor
        while not stop.is_set():
            r = cursor
            cursor += 1
            if requests is not None and r >= requests:
                return
            i = r % n
            quota = quotas[i]
            size = spec.batch if quota is None else min(spec.batch, quota - next_reading[i])
            if size <= 0:
                continue
            if spec.rate:  # readings go at ``rate``: request r is due when those before it are
                delay = start + r * spec.batch / spec.rate - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return
            content = body(i, size)
            tally.sent += size
            try:
                response = await client.post(paths[i], content=content, headers=headers[i])
            except httpx.HTTPError as exc:
                failed(f"no answer: {type(exc).__name__}", size)
                continue
            if response.status_code == 200:
                tally.acknowledged += size
                tally.seconds = time.monotonic() - start
            else:
                failed(f"HTTP {response.status_code}: {_message(response)}", size)

    async with httpx.AsyncClient(
        base_url=spec.api_url, limits=limits, timeout=REQUEST_TIMEOUT_S
    ) as client:
        if ready is not None:
            await ready()
        start = time.monotonic()
        deadline = start + spec.duration_s if spec.duration_s else None
        workers = [asyncio.create_task(worker(client)) for _ in range(spec.connections)]
        try:
            while not all(w.done() for w in workers):
                await asyncio.wait(workers, timeout=PROGRESS_EVERY_S)
                if progress is not None:
                    progress(
                        Tally(
                            tally.sent, tally.acknowledged, tally.failed, time.monotonic() - start
                        )
                    )
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    for w in workers:
        if not w.cancelled() and w.exception() is not None:
            raise w.exception()  # type: ignore[misc]
    if not tally.seconds:
        tally.seconds = time.monotonic() - start
    return tally


def _message(response: httpx.Response) -> str:
    """The error message of m2mhub's error body, or the start of any other body."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:80]
