"""The device SDK: connect a device (or a simulated one) to m2mhub over MQTT.

::

    from m2mhub.device import DeviceClient

    async with DeviceClient("meter-001", token, host="127.0.0.1", buffer_path="meter.db") as device:
        @device.command("set_relay")
        def set_relay(params):
            return {"relay": params["on"]}

        await device.send({"power_kw": 2.5})

Readings go through a buffer (a SQLite file with ``buffer_path``) and leave it
only when the broker has acknowledged them, so nothing is lost while the
device is offline or restarts. See docs/sdk.md.
"""

from m2mhub.core.errors import M2MHubError, PayloadError
from m2mhub.device._client import Counters, DeviceClient
from m2mhub.device._twin import DesiredState

__all__ = ["Counters", "DesiredState", "DeviceClient", "M2MHubError", "PayloadError"]
