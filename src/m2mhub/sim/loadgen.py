"""The load generator behind ``m2mhub simulate``: many devices, a rate, a bound, a tally.

Devices speak the documented protocols with their own credentials:

- MQTT, lean (the default): one asyncio connection per device writing prepared
  packets with a bounded window (:mod:`m2mhub.sim.publish_mqtt`); fast enough to
  load a broker from one process;
- MQTT through the device SDK (``sdk=True``): a :class:`m2mhub.device.DeviceClient`
  per device, with its buffer, as a real device runs; slower;
- HTTP: ``POST /api/v1/devices/{id}/telemetry`` with the device's token
  (:mod:`m2mhub.sim.publish_http`).

Message ``k`` of a run goes to device ``k % devices``, so a count splits evenly
and the first devices take the remainder. ``rate`` paces the whole run (0: as
fast as the broker or server confirms). A run ends by itself after ``count``
messages or ``duration_s`` seconds, or when :meth:`LoadRun.stop` is called; what
was sent and never confirmed by then counts as failed, as does everything a
device refused at login was due to send. ``workers`` above 1 splits the devices
between processes, each with its share of the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from m2mhub.core.errors import M2MHubError
from m2mhub.sim import loadvalues
from m2mhub.sim.publish_mqtt import CONNECTING_AT_ONCE, MqttDevice, connect_device

#: How long, after the last message, unconfirmed messages are waited for.
DRAIN_S: Final = 10.0
#: A run whose broker or server confirms nothing for this long, with messages waiting, ends.
STALL_S: Final = 30.0
#: How often progress is reported.
PROGRESS_EVERY_S: Final = 0.25
#: How often a paced run lets more messages go.
PACE_EVERY_S: Final = 0.005
#: "No limit" for a device's allowance when neither rate nor count bounds it.
UNLIMITED: Final = 1 << 62

Transport = Literal["mqtt", "http"]


class LoadError(M2MHubError):
    """A load-generator option or target that cannot be used; the message names it."""

    code = "invalid_load"


@dataclass(frozen=True)
class SimDevice:
    """A device of the run: its id and token (None: log in with the shared account)."""

    id: str
    token: str | None = None


@dataclass(frozen=True)
class LoadSpec:
    """What to run: devices, transport, pace and bound. Options mirror ``m2mhub simulate``."""

    devices: tuple[SimDevice, ...]
    transport: Transport = "mqtt"
    rate: float = 0.0  #: messages per second for the whole run; 0: as fast as confirmed
    count: int | None = None  #: messages in all
    duration_s: float | None = None
    model: str = loadvalues.RANDOM
    keys: int = 5
    seed: int = 1
    # MQTT
    host: str = "127.0.0.1"
    port: int = 1883
    qos: int = 1
    window: int = 100
    username: str | None = None  #: shared login; None: each device's id and token
    password: str | None = None
    topic: str = "m2m/{device}/telemetry"
    sdk: bool = False
    buffer_dir: Path | None = None
    # HTTP
    api_url: str = "http://127.0.0.1:8080"
    connections: int = 16
    batch: int = 1
    workers: int = 1

    def __post_init__(self) -> None:
        problems = [
            (not self.devices, "devices: give at least one device"),
            (self.rate < 0, "rate: must be 0 (as fast as possible) or more messages/s"),
            (self.count is not None and self.count < 1, "count: must be at least 1"),
            (self.duration_s is not None and self.duration_s <= 0, "duration: must be above 0 s"),
            (
                self.count is None and self.duration_s is None,
                "count: give --count or --duration, so that the run ends",
            ),
            (self.qos not in (0, 1), "qos: must be 0 or 1"),
            (not 1 <= self.window <= 65_000, "window: must be 1 to 65000 messages"),
            (self.connections < 1, "connections: must be at least 1"),
            (self.batch < 1, "batch: must be at least 1 reading per request"),
            (self.workers < 1, "workers: must be at least 1"),
            (self.workers > len(self.devices), "workers: must not exceed the number of devices"),
            ("{device}" not in self.topic, "topic: must contain {device}"),
            (
                self.sdk and (self.username is not None or self.qos != 1),
                "sdk: the device SDK logs in with each device's token and publishes at QoS 1",
            ),
            (self.sdk and self.transport != "mqtt", "sdk: the device SDK speaks MQTT only"),
        ]
        for failed, message in problems:
            if failed:
                raise LoadError(message, field=message.split(":")[0])
        missing = next((d.id for d in self.devices if d.token is None), None)
        if missing is not None and (self.transport == "http" or self.sdk):
            raise LoadError(
                f"tokens: device {missing!r} has no token; {self.transport.upper()} devices "
                "log in with their own (--tokens FILE or --provision)",
                field="tokens",
            )
        if missing is not None and self.username is None and self.password is not None:
            raise LoadError("username: --password needs --username", field="username")
        try:
            loadvalues.check_values(self.model, self.keys)
        except M2MHubError as exc:
            raise LoadError(exc.message, field=exc.field) from None

    def quota(self, index: int) -> int | None:
        """How many messages device ``index`` sends in all (None: until the time is up)."""
        if self.count is None:
            return None
        whole, rest = divmod(self.count, len(self.devices))
        return whole + (1 if index < rest else 0)

    def share(self, worker: int) -> LoadSpec:
        """The part of the run that worker ``worker`` of ``workers`` does."""
        mine = self.devices[worker :: self.workers]
        count = None
        if self.count is not None:
            count = sum(
                q or 0 for q in map(self.quota, range(worker, len(self.devices), self.workers))
            )
        rate = self.rate * len(mine) / len(self.devices)
        return replace(self, devices=mine, count=count, rate=rate, workers=1)


@dataclass
class Tally:
    """What became of the run's messages, so far or in the end."""

    sent: int = 0  #: messages written to a connection (or handed to the SDK)
    acknowledged: int = 0  #: confirmed: a PUBACK (QoS 1), a PINGRESP after them (QoS 0), a 200
    failed: int = 0  #: refused, lost, or unconfirmed at the end
    seconds: float = 0.0  #: from the first message to the last confirmation (or the end)
    errors: dict[str, int] = field(default_factory=dict)  #: why, and how many devices or requests

    @property
    def rate(self) -> float:
        """Acknowledged messages per second."""
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.acknowledged += other.acknowledged
        self.failed += other.failed
        self.seconds = max(self.seconds, other.seconds)
        for reason, n in other.errors.items():
            self.errors[reason] = self.errors.get(reason, 0) + n

    def summary(self) -> str:
        """``sent N, acknowledged N, failed N, X msg/s``."""
        return (
            f"sent {self.sent}, acknowledged {self.acknowledged}, failed {self.failed}, "
            f"{self.rate:.0f} msg/s"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "errors": dict(self.errors),
        }


Progress = Callable[[Tally], None]
#: Awaited once every device is connected, before the first message (workers start together).
Ready = Callable[[], Awaitable[None]]


class LoadRun:
    """One run of the load generator: ``await LoadRun(spec).run(progress)`` returns the tally.

    ``progress`` is called about four times a second with the tally so far.
    ``stop()`` ends the run early and cleanly: nothing new is sent, what is in
    flight is waited for.
    """

    def __init__(self, spec: LoadSpec, *, ready: Ready | None = None) -> None:
        self.spec = spec
        self.ready = ready
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, progress: Progress | None = None) -> Tally:
        spec = self.spec
        if spec.workers > 1:
            return await _run_workers(spec, self._stop, progress)
        if spec.transport == "http":
            from m2mhub.sim.publish_http import run_http

            return await run_http(spec, self._stop, progress, self.ready)
        if spec.sdk:
            return await _run_sdk(spec, self._stop, progress, self.ready)
        return await _run_mqtt(spec, self._stop, progress, self.ready)


def _prepared(spec: LoadSpec, device: SimDevice, index: int) -> list[dict[str, Any]]:
    per_device = spec.quota(index)
    if per_device is None and spec.rate and spec.duration_s:
        per_device = int(spec.rate * spec.duration_s / len(spec.devices)) + 1
    size = loadvalues.ring_size(len(spec.devices), per_device)
    return loadvalues.readings(spec.model, spec.keys, spec.seed, device.id, size)


# -- MQTT, lean -------------------------------------------------------------------------------


async def _run_mqtt(
    spec: LoadSpec, stop: asyncio.Event, progress: Progress | None, ready: Ready | None
) -> Tally:
    devices = [
        MqttDevice(
            d.id,
            spec.topic.format(device=d.id),
            loadvalues.fragments(_prepared(spec, d, i)),
            qos=spec.qos,
            window=spec.window,
            quota=spec.quota(i),
        )
        for i, d in enumerate(spec.devices)
    ]
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    await asyncio.gather(
        *(
            connect_device(
                device,
                spec.host,
                spec.port,
                username=spec.username if spec.username is not None else d.id,
                password=spec.password if spec.username is not None else d.token,
                gate=gate,
            )
            for device, d in zip(devices, spec.devices, strict=True)
        )
    )
    if ready is not None:
        await ready()
    start = time.monotonic()
    deadline = start + spec.duration_s if spec.duration_s else None
    released = 0
    if not spec.rate:
        for i, device in enumerate(devices):
            device.allow(spec.quota(i) or UNLIMITED)
    last_acked, last_change, shown = 0, start, start
    try:
        while not stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if spec.rate:
                due = int(spec.rate * (now - start))
                if spec.count is not None:
                    due = min(due, spec.count)
                _release(devices, released, due)
                released = due
            acked = sum(d.acked for d in devices)
            if acked != last_acked:
                last_acked, last_change = acked, now
            if _all_done(devices):
                break
            if now - last_change > STALL_S and any(d.sent > d.acked for d in devices):
                break
            if progress is not None and now - shown >= PROGRESS_EVERY_S:
                shown = now
                progress(_mqtt_tally(devices, now - start))
            await asyncio.sleep(PACE_EVERY_S if spec.rate else PROGRESS_EVERY_S / 5)
        # Nothing new from here: wait for what is in flight.
        for device in devices:
            device.finish()
        end_by = time.monotonic() + DRAIN_S
        for device in devices:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(device.settled.wait(), max(0.0, end_by - time.monotonic()))
        seconds = _last_confirmation(devices, start, time.monotonic())
        tally = _mqtt_tally(devices, seconds, final=True)
    finally:
        for device in devices:
            device.close()
    return tally


def _release(devices: list[MqttDevice], released: int, due: int) -> None:
    """Let messages ``released`` to ``due`` go: message ``k`` to device ``k % len(devices)``."""
    n = len(devices)
    if due - released >= n:
        whole, rest = divmod(due - released, n)
        for j in range(n):
            devices[(released + j) % n].allow(whole + (1 if j < rest else 0))
        return
    for k in range(released, due):
        devices[k % n].allow(1)


def _all_done(devices: list[MqttDevice]) -> bool:
    return all(not d.is_alive or (d.quota is not None and d.acked >= d.quota) for d in devices)


def _last_confirmation(devices: list[MqttDevice], start: float, now: float) -> float:
    ends = [d.confirmed_at for d in devices if d.confirmed_at is not None]
    return (max(ends) if ends else now) - start


def _mqtt_tally(devices: list[MqttDevice], seconds: float, *, final: bool = False) -> Tally:
    tally = Tally(seconds=seconds)
    for d in devices:
        tally.sent += d.sent
        tally.acknowledged += d.acked
        if not d.is_alive:
            due = max(d.sent, min(d.allowed, d.quota if d.quota is not None else d.sent))
            tally.failed += due - d.acked
            reason = d.error or "stopped"
            tally.errors[reason] = tally.errors.get(reason, 0) + 1
        elif final:
            tally.failed += d.sent - d.acked
    return tally


# -- MQTT through the device SDK ---------------------------------------------------------------


async def _run_sdk(
    spec: LoadSpec, stop: asyncio.Event, progress: Progress | None, ready: Ready | None
) -> Tally:
    from m2mhub.device import DeviceClient, PayloadError

    loop = asyncio.get_running_loop()
    n = len(spec.devices)
    clients = [
        DeviceClient(
            d.id,
            d.token or "",
            host=spec.host,
            port=spec.port,
            buffer_path=spec.buffer_dir / f"{d.id}.buffer" if spec.buffer_dir else None,
        )
        for d in spec.devices
    ]
    handed = [0] * n
    refused = [0] * n
    start = loop.time()
    deadline = start + spec.duration_s if spec.duration_s else None

    async def one(i: int, device: DeviceClient) -> None:
        values = _prepared(spec, spec.devices[i], i)
        quota = spec.quota(i)
        j = 0
        while (quota is None or j < quota) and not stop.is_set():
            if spec.rate:  # message k = j * n + i is due at k / rate
                await _sleep_until(loop, start + (j * n + i) / spec.rate, stop)
            if (deadline is not None and loop.time() >= deadline) or stop.is_set():
                return
            if device.counters.buffered >= spec.window:
                await _until(device.flush(), stop, deadline, loop)
                continue
            try:
                await device.send(values[j % len(values)])
                handed[i] += 1
            except PayloadError:
                refused[i] += 1
            j += 1

    def tally(seconds: float) -> Tally:
        t = Tally(seconds=seconds)
        for i, device in enumerate(clients):
            c = device.counters
            t.sent += handed[i]
            t.acknowledged += c.acknowledged
            t.failed += refused[i] + c.dropped
        return t

    async with contextlib.AsyncExitStack() as stack:
        for device in clients:
            await stack.enter_async_context(device)
        connecting = [asyncio.create_task(d.wait_connected()) for d in clients]
        await asyncio.wait(connecting, timeout=DRAIN_S)  # a refused device keeps retrying
        for task in connecting:
            task.cancel()
        if ready is not None:
            await ready()
        start = loop.time()
        deadline = start + spec.duration_s if spec.duration_s else None
        senders = [asyncio.create_task(one(i, d)) for i, d in enumerate(clients)]
        while not all(s.done() for s in senders):
            await asyncio.wait(senders, timeout=PROGRESS_EVERY_S)
            if progress is not None:
                progress(tally(loop.time() - start))
        for s in senders:
            s.result()
        flushing = [asyncio.create_task(d.flush()) for d in clients]
        await asyncio.wait(flushing, timeout=DRAIN_S)
        for f in flushing:
            f.cancel()
        seconds = loop.time() - start
        result = tally(seconds)
        unconfirmed = sum(d.counters.buffered for d in clients)
        result.failed += unconfirmed
        offline = sum(1 for d in clients if not d.connected)
        if offline:
            result.errors["not connected at the end (refused login or broker gone)"] = offline
    return result


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float, stop: asyncio.Event) -> None:
    delay = when - loop.time()
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


async def _until(
    work: Coroutine[Any, Any, None],
    stop: asyncio.Event,
    deadline: float | None,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Run ``work`` until it ends, the run is stopped or the deadline passes."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    timeout = None if deadline is None else max(0.0, deadline - loop.time())
    await asyncio.wait([task, stopping], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, stopping):
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t


# -- several processes ------------------------------------------------------------------------


async def _run_workers(spec: LoadSpec, stop: asyncio.Event, progress: Progress | None) -> Tally:
    """Each worker runs its share in a process of its own; they start publishing together."""
    context = multiprocessing.get_context("spawn")
    reports: multiprocessing.Queue[tuple[str, int, Tally]] = context.Queue()
    ready = context.Barrier(spec.workers)
    processes = [
        context.Process(
            target=_worker_main,
            args=(spec.share(w), w, reports, ready),
            name=f"m2mhub-simulate-{w}",
            daemon=True,
        )
        for w in range(spec.workers)
    ]
    for p in processes:
        p.start()
    loop = asyncio.get_running_loop()
    latest: dict[int, Tally] = {}
    finished: dict[int, Tally] = {}
    stopped = False
    try:
        while len(finished) < spec.workers:
            if stop.is_set() and not stopped:
                stopped = True
                for p in processes:
                    if p.pid is not None and p.is_alive():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p.pid, signal.SIGINT)
            try:
                kind, worker, tally = await loop.run_in_executor(None, reports.get, True, 0.25)
            except Exception:  # queue.Empty
                if any(p.exitcode not in (None, 0) for p in processes):
                    dead = [p.name for p in processes if p.exitcode not in (None, 0)]
                    raise LoadError(f"workers: {', '.join(dead)} exited early") from None
                continue
            (finished if kind == "done" else latest)[worker] = tally
            if progress is not None and kind == "progress":
                total = Tally()
                for w in range(spec.workers):
                    part = finished.get(w) or latest.get(w)
                    if part is not None:
                        total.add(part)
                progress(total)
    finally:
        for p in processes:
            p.join(timeout=DRAIN_S + 5)
            if p.is_alive():
                p.kill()
                p.join()
    total = Tally()
    for part in finished.values():
        total.add(part)
    return total


def _worker_main(
    spec: LoadSpec,
    worker: int,
    reports: multiprocessing.Queue[tuple[str, int, Tally]],
    ready: Any,
) -> None:
    """A worker process: run its share, report progress and the end."""
    try:
        import uvloop

        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        new_loop = asyncio.new_event_loop

    async def main() -> Tally:
        run = LoadRun(spec)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, run.stop)

        async def together() -> None:
            await loop.run_in_executor(None, ready.wait)

        run.ready = together
        return await run.run(lambda t: reports.put(("progress", worker, t)))

    with asyncio.Runner(loop_factory=new_loop) as runner:
        result = runner.run(main())
    reports.put(("done", worker, result))
