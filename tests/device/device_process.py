"""A device process for tests that kill it: buffers readings, says so, then runs until killed.

python device_process.py DEVICE TOKEN PORT BUFFER_PATH|- FIRST_TS COUNT
"""

from __future__ import annotations

import asyncio
import sys

from m2mhub.device import DeviceClient


async def main(device_id: str, token: str, port: str, path: str, first_ts: str, count: str) -> None:
    buffer_path = None if path == "-" else path
    client = DeviceClient(
        device_id,
        token,
        port=int(port),
        buffer_path=buffer_path,
        reconnect_min_s=0.05,
        reconnect_max_s=0.5,
    )
    async with client as device:
        for i in range(int(count)):
            await device.send({"temp": float(i)}, ts=int(first_ts) + i)
        print(f"buffered {device.counters.buffered}", flush=True)
        await device.wait_connected()
        print("connected", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
