"""An electricity meter on m2mhub's device SDK: readings, a relay command, a desired interval.

    python examples/meter.py --host 127.0.0.1 --port 1883 --device meter-001 --token m2d_...

It reports power and energy every ``report_interval_s`` seconds (the desired
state can change it), handles the ``set_relay`` command (``{"on": false}``
opens the relay and power drops to 0), and keeps unsent readings in
``meter-001.buffer`` so that they survive a restart. Stop it with Ctrl-C, or
give ``--count`` or ``--duration``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
from typing import Any

from m2mhub.device import DeviceClient

FIRMWARE = "1.4.2"


async def run(args: argparse.Namespace) -> None:
    device = DeviceClient(
        args.device,
        args.token,
        host=args.host,
        port=args.port,
        tls=args.ca_file,
        buffer_path=args.buffer or f"{args.device}.buffer",
    )
    state: dict[str, Any] = {"relay": True, "interval_s": args.interval, "energy_kwh": 0.0}
    interval_changed = asyncio.Event()

    @device.command("set_relay")
    async def set_relay(params: dict[str, Any]) -> dict[str, bool]:
        on = params.get("on")
        if not isinstance(on, bool):
            raise ValueError('params: give {"on": true} or {"on": false}')
        state["relay"] = on
        await device.send({"relay": on})
        return {"relay": on}

    @device.on_desired
    def follow(desired: dict[str, Any]) -> None:
        interval = desired.get("report_interval_s", args.interval)
        if not isinstance(interval, int | float) or interval <= 0:
            raise ValueError(f"report_interval_s: {interval!r} is not a positive number")
        state["interval_s"] = float(interval)
        interval_changed.set()
        # Returning None reports the desired state as applied.

    async with device:
        await device.send_attributes({"firmware": FIRMWARE, "model": "M-1"})
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + args.duration if args.duration else None
        sent = 0
        while args.count is None or sent < args.count:
            power = round(random.uniform(1.5, 3.5), 2) if state["relay"] else 0.0
            state["energy_kwh"] += power * state["interval_s"] / 3600
            values = {"power_kw": power, "energy_kwh": round(state["energy_kwh"], 4)}
            ts = await device.send({**values, "relay": state["relay"]})
            sent += 1
            print(f"{ts} {values} (connected: {device.connected})", flush=True)
            wait = state["interval_s"]
            if stop_at is not None:
                wait = min(wait, stop_at - loop.time())
                if wait <= 0:
                    break
            interval_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interval_changed.wait(), wait)
        # Give the last readings a moment to go out; what does not stays in the buffer.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(device.flush(), 10)
        print(device.counters, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="1883, or 8883 with --ca-file")
    parser.add_argument("--device", required=True, help="the device id, e.g. meter-001")
    parser.add_argument("--token", required=True, help="the device token, m2d_...")
    parser.add_argument("--ca-file", default=None, help="CA certificate: connect with TLS")
    parser.add_argument("--buffer", default=None, help="buffer file (default: DEVICE.buffer)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between readings")
    parser.add_argument("--count", type=int, default=None, help="stop after this many readings")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many s")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
