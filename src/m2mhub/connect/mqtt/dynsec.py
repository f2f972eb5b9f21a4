"""Device accounts at Mosquitto, through its dynamic-security plugin.

With an external Mosquitto, devices authenticate at the broker, not at
m2mhub. m2mhub keeps the broker's accounts in step with its registry by
sending commands on ``$CONTROL/dynamic-security/v1``: a device gets a client
(username = device id, password = its token) and a role of its own whose ACL
allows ``m2m/{id}/#`` only (Mosquitto 2.0's dynamic security has no
``%u`` substitution, hence one role per device). m2mhub's own account gets the
``m2mhub-platform`` role, which reads and writes every device's topics.

The account m2mhub connects with needs the plugin's ``admin`` role, as made
by ``mosquitto_ctrl dynsec init`` (docs/mqtt.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from gmqtt import Client

from m2mhub.connect.mqtt.topics import PREFIX
from m2mhub.connect.mqtt.transport import BrokerAddress
from m2mhub.core.errors import UnavailableError

log = logging.getLogger(__name__)

CONTROL: Final = "$CONTROL/dynamic-security/v1"
RESPONSE: Final = f"{CONTROL}/response"
PLATFORM_ROLE: Final = "m2mhub-platform"
DEVICE_ROLE_PREFIX: Final = "m2mhub-device-"
#: Commands per control message: large imports go in chunks the broker answers quickly.
CHUNK: Final = 200
TIMEOUT_S: Final = 10.0


class BrokerAccountError(UnavailableError):
    """The broker refused or did not answer an account change."""

    code = "broker_error"


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def _device_commands(device_id: str, token: str) -> list[dict[str, Any]]:
    role = device_role(device_id)
    topic = f"{PREFIX}/{device_id}/#"
    # Delete first, so re-adding a device (a restored database) resets its account.
    return [
        {"command": "deleteClient", "username": device_id},
        {"command": "deleteRole", "rolename": role},
        {"command": "createRole", "rolename": role},
        *(
            {
                "command": "addRoleACL",
                "rolename": role,
                "acltype": acl,
                "topic": topic,
                "allow": True,
            }
            for acl in ("publishClientSend", "publishClientReceive", "subscribePattern")
        ),
        {
            "command": "createClient",
            "username": device_id,
            "password": token,
            "roles": [{"rolename": role}],
        },
    ]


class DynamicSecurity:
    """Sends account commands to Mosquitto and waits for its answers."""

    def __init__(self, address: BrokerAddress) -> None:
        self.address = address
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._answer: asyncio.Future[list[dict[str, Any]]] | None = None
        self._exchange_id = ""  # tags the commands of the exchange waiting for its answer
        self._ready = asyncio.Event()

    async def __aenter__(self) -> DynamicSecurity:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect, and make sure m2mhub's account may use every device topic."""
        await self._open()
        await self.ensure_platform_role()

    async def _open(self) -> None:
        client = Client(f"m2mhub-dynsec-{secrets.token_hex(4)}")
        client.set_auth_credentials(self.address.username, self.address.password)
        client.on_message = self._on_message
        # Ready once subscribed to the answers; again after every reconnect (a broker restart).
        client.on_connect = lambda c, flags, rc, properties: c.subscribe(RESPONSE, qos=1)
        client.on_subscribe = lambda *args: self._ready.set()
        client.on_disconnect = lambda *args: self._ready.clear()
        client.set_config({"reconnect_retries": -1, "reconnect_delay": 2})
        self._ready.clear()
        try:
            await client.connect(
                self.address.host, self.address.port, ssl=self.address.tls or False
            )
        except Exception as exc:
            raise BrokerAccountError(
                f"mqtt_url: cannot connect to {self.address.host}:{self.address.port} as "
                f"{self.address.username!r}: {exc}",
                field="mqtt_url",
            ) from exc
        self._client = client
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), TIMEOUT_S)
        except TimeoutError:
            raise BrokerAccountError(
                f"the MQTT broker at {self.address.host}:{self.address.port} is not reachable; "
                "try again"
            ) from None

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.disconnect(), TIMEOUT_S)
            self._client = None

    async def _on_message(
        self, client: Client, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        if topic != RESPONSE or self._answer is None or self._answer.done():
            return 0
        responses = msgspec.json.decode(payload).get("responses", [])
        # Only the answer to the commands in flight: a late answer to an earlier exchange
        # (sent again after a timeout, or cut by a reconnect) would be taken for this one.
        tags = {str(r.get("correlationData", "")).partition(":")[0] for r in responses}
        if tags == {self._exchange_id}:
            self._answer.set_result(responses)
        return 0

    async def run(
        self, commands: Sequence[dict[str, Any]], *, tolerate: frozenset[str] = frozenset()
    ) -> list[dict[str, Any]]:
        """Send commands in order; raise on the first error not in ``tolerate``."""
        if self._client is None:
            raise BrokerAccountError("not connected to the broker; call connect() first")
        answers: list[dict[str, Any]] = []
        for start in range(0, len(commands), CHUNK):
            chunk = list(commands[start : start + CHUNK])
            async with self._lock:
                responses = await self._exchange(chunk)
            for command, response in zip(chunk, responses, strict=False):
                error = response.get("error")
                if error and error not in tolerate:
                    raise BrokerAccountError(
                        f"broker refused {command['command']} "
                        f"{command.get('username') or command.get('rolename')}: {error}"
                    )
            answers += responses
        return answers

    async def _exchange(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One control message and its answer.

        Sent a second time if unanswered: a broker that just restarted may have taken
        the first one on a connection that was already dead. Every command m2mhub sends
        can be repeated (a device's account is deleted before it is created).
        """
        assert self._client is not None
        for attempt in (1, 2):
            await self._wait_ready()
            # Mosquitto returns each command's correlationData in its response.
            self._exchange_id = secrets.token_hex(6)
            tagged = [
                {**command, "correlationData": f"{self._exchange_id}:{index}"}
                for index, command in enumerate(chunk)
            ]
            self._answer = asyncio.get_running_loop().create_future()
            self._client.publish(CONTROL, msgspec.json.encode({"commands": tagged}), qos=1)
            try:
                return await asyncio.wait_for(self._answer, TIMEOUT_S / 2)
            except TimeoutError:
                if attempt == 2:
                    raise BrokerAccountError(
                        "the broker did not answer dynamic-security commands; is the plugin "
                        "loaded and does m2mhub's account have the admin role?"
                    ) from None
        raise AssertionError("unreachable")

    async def ensure_platform_role(self) -> None:
        """Give m2mhub's own account read and write access to every device topic."""
        topic = f"{PREFIX}/#"
        await self.run(
            [
                {"command": "createRole", "rolename": PLATFORM_ROLE},
                *(
                    {
                        "command": "addRoleACL",
                        "rolename": PLATFORM_ROLE,
                        "acltype": acl,
                        "topic": topic,
                        "allow": True,
                    }
                    for acl in ("publishClientSend", "publishClientReceive", "subscribePattern")
                ),
            ],
            tolerate=frozenset({"Role already exists", "ACL with this topic already exists"}),
        )
        [answer] = await self.run([{"command": "getClient", "username": self.address.username}])
        roles = answer.get("data", {}).get("client", {}).get("roles", [])
        if PLATFORM_ROLE in {r.get("rolename") for r in roles}:
            return
        # Mosquitto disconnects a client whose roles change (so new ACLs apply at once),
        # this one included, before it answers: send, wait to be dropped, reconnect.
        assert self._client is not None
        dropped = asyncio.Event()

        def on_disconnect(*args: Any) -> None:
            dropped.set()
            self._ready.clear()

        self._client.on_disconnect = on_disconnect
        command = {"command": "addClientRole", "username": self.address.username}
        command["rolename"] = PLATFORM_ROLE
        self._client.publish(CONTROL, msgspec.json.encode({"commands": [command]}), qos=1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(dropped.wait(), TIMEOUT_S)
        await self.close()
        await self._open()

    async def add_devices(self, accounts: Sequence[tuple[str, str]]) -> None:
        """Create broker accounts for (device id, token) pairs."""
        commands = [c for device_id, token in accounts for c in _device_commands(device_id, token)]
        await self.run(commands, tolerate=frozenset({"Client not found", "Role not found"}))

    async def set_token(self, device_id: str, token: str) -> None:
        await self.run([{"command": "setClientPassword", "username": device_id, "password": token}])

    async def remove_device(self, device_id: str) -> None:
        await self.run(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ],
            tolerate=frozenset({"Client not found", "Role not found"}),
        )
