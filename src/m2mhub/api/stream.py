"""Live events over Server-Sent Events: what the bus says, filtered by tenant and device.

Each stream is a bus subscription of its own (bounded: a slow reader loses its oldest
events, never slows ingest). A comment line every ``stream_heartbeat_s`` keeps proxies from
closing an idle stream. Streams end when the client goes away or the server stops: uvicorn
waits for open responses before it shuts the application down, so a watcher notices the
server's exit flag and ends every stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.applications import Starlette

from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.bus import Event
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["live events"])

EVENT_TYPES: Final = (
    "readings_stored",
    "attributes_reported",
    "device_event",
    "connection_changed",
    "presence_changed",
    "command_changed",
    "twin_changed",
    "alarm_changed",
)
MAX_DEVICES: Final = 200
# Events one stream may have queued before it loses the oldest.
QUEUE_SIZE: Final = 500
# What an EventSource waits before reconnecting after the stream ends (ms, SSE "retry").
RETRY_MS: Final = 3000
_INTERNAL: Final = ("tenant_id", "device_pk")


def _uvicorn_exiting() -> Callable[[], bool]:
    """Reads uvicorn's exit flag (its signal handler is a method of its Server), if any."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if server is None or not hasattr(server, "should_exit"):
        return lambda: False
    return lambda: bool(server.should_exit)


class Streams:
    """The open streams of one application, and the signal that ends them all."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()
        self.open = 0
        self._watcher: asyncio.Task[None] | None = None

    def close(self) -> None:
        """End every open stream (the server stops)."""
        self.closing.set()

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[asyncio.Event]:
        self.open += 1
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(_uvicorn_exiting()))
        try:
            yield self.closing
        finally:
            self.open -= 1
            if self.open == 0 and self._watcher is not None:
                self._watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._watcher
                self._watcher = None

    async def _watch(self, exiting: Callable[[], bool]) -> None:
        while not self.closing.is_set():
            if exiting():
                self.close()
            await asyncio.sleep(0.25)


def streams_of(app: Starlette) -> Streams:
    """The streams of ``app`` (made on first use)."""
    streams: Streams | None = getattr(app.state, "streams", None)
    if streams is None:
        streams = app.state.streams = Streams()
    return streams


def _frame(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def event_data(event: Event) -> tuple[str, dict[str, Any]]:
    """The SSE event name and the JSON body of a bus event (without internal keys)."""
    data: dict[str, Any] = msgspec.to_builtins(event)
    kind = str(data.pop("type"))
    for key in _INTERNAL:
        data.pop(key, None)
    return kind, data


async def _events(
    request: Request,
    platform: Platform,
    tenant_id: int,
    devices: set[str],
    kinds: set[str],
) -> AsyncIterator[bytes]:
    heartbeat = platform.settings.stream_heartbeat_s
    subscribe = platform.bus.subscribe
    async with (
        subscribe(
            maxsize=QUEUE_SIZE,
            tenant_id=tenant_id,
            name="console",
            device_ids=frozenset(devices) if devices else None,
        ) as subscription,
        streams_of(request.app).opened() as closing,
    ):
        yield f"retry: {RETRY_MS}\n\n".encode()
        yield _frame("ready", {"ts": now_ms()})
        stop = asyncio.ensure_future(closing.wait())
        get: asyncio.Future[Event] | None = None
        try:
            while not closing.is_set():
                if get is None:
                    get = asyncio.ensure_future(subscription.get())
                waiters: set[asyncio.Future[Any]] = {get, stop}
                done, _ = await asyncio.wait(
                    waiters, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED
                )
                if get not in done:
                    if not closing.is_set():
                        yield b": keep-alive\n\n"
                    continue
                event, get = get.result(), None
                kind, data = event_data(event)
                if kind in kinds:
                    yield _frame(kind, data)
        finally:
            # Neither waiter may outlive the stream (a client gone, the server stopping).
            for waiter in (stop, get):
                if waiter is not None:
                    waiter.cancel()


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE events"}},
)
async def stream(
    request: Request,
    who: Viewer,
    platform: PlatformDep,
    device: Annotated[
        list[str] | None,
        Query(description=f"Only these devices (repeat the parameter; at most {MAX_DEVICES})."),
    ] = None,
    events: Annotated[
        str | None,
        Query(
            description=f"Comma-separated event types; all when empty: {', '.join(EVENT_TYPES)}."
        ),
    ] = None,
) -> StreamingResponse:
    """Live events of the caller's tenant as Server-Sent Events (``text/event-stream``).

    Each event's name is its type and its data a JSON object with ``device_id``. The
    stream starts with a ``ready`` event; a comment line is sent when nothing happened
    for a while. Events are not stored: what happens while a client reconnects is missed,
    so read the current state again after a ``ready``.
    """
    ids = set(device or ())
    if len(ids) > MAX_DEVICES:
        raise PayloadError(f"device: at most {MAX_DEVICES} devices per stream", field="device")
    for device_id in ids:
        # 404 for a device of another tenant, as everywhere.
        await platform.store.get_device(device_id, tenant_id=who.tenant_id)
    kinds = {k.strip() for k in (events or "").split(",") if k.strip()} or set(EVENT_TYPES)
    unknown = sorted(kinds - set(EVENT_TYPES))
    if unknown:
        raise PayloadError(
            f"events: unknown type {unknown[0]!r}; use {', '.join(EVENT_TYPES)}", field="events"
        )
    return StreamingResponse(
        _events(request, platform, who.tenant_id, ids, kinds),
        media_type="text/event-stream",
        # No caching or buffering by proxies (X-Accel-Buffering: nginx's switch).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
