"""The embedded broker: amqtt in the platform's process, checking m2mhub's credentials.

A device connects with username = its device id and password = its token, and
may publish and subscribe only under ``m2m/{its id}/``. The platform's own
subscriber uses a service account whose secret is made fresh at every start.

amqtt is fine for a laptop, a demo and small fleets (a few thousand messages
per second); production fleets use an external broker (docs/mqtt.md).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from m2mhub.connect.mqtt.topics import filter_matches, is_own_topic
from m2mhub.core.errors import AuthError, M2MHubError
from m2mhub.core.net import port_is_free
from m2mhub.registry.service import Registry

log = logging.getLogger(__name__)

SERVICE_USER_PREFIX: Final = "m2mhub-service-"

# amqtt builds plugins from dotted class names and a config dict; live objects
# reach them through this table, keyed by a name that travels in the config.
_GATES: dict[str, _Gate] = {}


class _Gate:
    """Decides who may connect and which topics they may use."""

    def __init__(self, registry: Registry, service_user: str, service_secret: str) -> None:
        self.registry = registry
        self.service_user = service_user
        self.service_secret = service_secret
        # Devices wait until the platform's subscriber listens: amqtt keeps no messages
        # for a subscriber that is not there yet, so a reading acknowledged before then
        # would be lost. A refused device retries, as after any refusal.
        self.is_open = False

    async def admits(self, username: str | None, password: str | None) -> bool:
        if not username or password is None:
            return False
        if username == self.service_user:
            return hmac.compare_digest(password, self.service_secret)
        if not self.is_open:
            log.info("MQTT connection of %r refused: the platform is still starting", username)
            return False
        try:
            await self.registry.authenticate_device(username, password)
        except AuthError:
            log.info("MQTT connection refused for %r: unknown device or wrong token", username)
            return False
        return True

    def allows(self, username: str | None, topic: str | None) -> bool:
        if not username or not topic:
            return False
        return username == self.service_user or is_own_topic(username, topic)


class DeviceAuthPlugin(BaseAuthPlugin):
    """amqtt authentication by device id and token."""

    @dataclass
    class Config:
        gate: str = ""

    async def authenticate(self, *, session: Session) -> bool:
        gate = _GATES.get(self.config.gate)
        password = session.password
        if isinstance(password, bytes | bytearray):
            password = password.decode(errors="replace")
        return gate is not None and await gate.admits(session.username, password)


class DeviceTopicPlugin(BaseTopicPlugin):
    """amqtt topic ACL: a device publishes, subscribes and receives under its own prefix."""

    @dataclass
    class Config:
        gate: str = ""

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        gate = _GATES.get(self.config.gate)
        allowed = gate is not None and gate.allows(session.username if session else None, topic)
        if not allowed and action != Action.RECEIVE:
            log.info(
                "MQTT %s refused for %r on %r",
                action.value if action else "access",
                session.username if session else None,
                topic,
            )
        return allowed


class Subscriptions(dict[str, list[tuple[Session, int]]]):
    """amqtt's table of subscriptions (filter -> [(session, qos)]), iterated over copies.

    amqtt 0.12 walks this table with awaits inside the loop (routing a message,
    sending retained messages on connect); a client subscribing meanwhile changed
    its size, and the routing of that message ended with "dictionary changed size
    during iteration": a message already acknowledged to its publisher was lost for
    every subscriber after that point (found when 23 devices connected at once).
    """

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().__iter__()))

    def items(self) -> list[tuple[str, list[tuple[Session, int]]]]:  # type: ignore[override]
        return [(topic, list(subscribers)) for topic, subscribers in super().items()]


class _Broker(Broker):
    """amqtt's broker, made to keep the QoS 1 messages it has acknowledged.

    amqtt 0.12 acknowledges a QoS 1 PUBLISH as soon as it queues it for
    delivery, then drops whatever is still queued when the publisher
    disconnects: a device that publishes a burst and hangs up loses the tail.
    After the client's loop ends, deliver what is left. Its subscriptions are
    iterated over copies (:class:`Subscriptions`).
    """

    gate: _Gate | None = None
    _subscriptions: dict[str, list[tuple[Session, int]]]

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._subscriptions = Subscriptions(self._subscriptions)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt 0.12 sends retained messages without asking the ACL: a device got another
        # device's retained status.
        # On every connect it also walks everybody's subscriptions: only this session's count.
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        subscribers = self._subscriptions.get(topic_filter, [])
        if handler is None or self.gate is None or all(s is not session for s, _ in subscribers):
            return
        sends = [
            handler.mqtt_publish(topic, kept.data, min(qos, kept.qos or qos), retain=True)
            for topic, kept in list(self._retained_messages.items())
            if filter_matches(topic_filter, topic) and self.gate.allows(session.username, topic)
        ]
        if sends:
            await asyncio.gather(*sends, return_exceptions=True)

    async def _client_message_loop(self, client_session: Session, handler: Any) -> None:
        await super()._client_message_loop(client_session, handler)
        queue = client_session.delivered_message_queue
        while not queue.empty():
            delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            delivered.set_result(queue.get_nowait())
            await self._handle_message_delivery(client_session, handler, delivered)


class EmbeddedBroker:
    """An MQTT broker inside the platform process, on ``host:port``."""

    def __init__(self, registry: Registry, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.service_user = SERVICE_USER_PREFIX + secrets.token_hex(4)
        self.service_secret = secrets.token_urlsafe(32)
        self._gate_name = secrets.token_hex(8)
        self._gate = _Gate(registry, self.service_user, self.service_secret)
        self._broker: Broker | None = None

    async def start(self) -> None:
        if not port_is_free(self.host, self.port):
            raise M2MHubError(
                f"mqtt_port: {self.host}:{self.port} is in use (another MQTT broker?); set "
                "M2MHUB_MQTT_PORT to a free port, or M2MHUB_MQTT_URL to use that broker",
                field="mqtt_port",
            )
        _GATES[self._gate_name] = self._gate
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                f"{__name__}.DeviceAuthPlugin": {"gate": self._gate_name},
                f"{__name__}.DeviceTopicPlugin": {"gate": self._gate_name},
            },
        }
        self._broker = _Broker(config)
        self._broker.gate = self._gate
        await self._broker.start()
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def open_to_devices(self, filters: tuple[str, ...], *, timeout_s: float = 10) -> None:
        """Let devices connect, once the platform's subscriber holds every filter."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._has_subscribed(filters):
            if loop.time() > deadline:
                raise M2MHubError(
                    "the platform's MQTT subscriber did not subscribe to the embedded broker "
                    f"within {timeout_s:g} s"
                )
            await asyncio.sleep(0.01)
        self._gate.is_open = True

    def _has_subscribed(self, filters: tuple[str, ...]) -> bool:
        assert self._broker is not None
        subscriptions = self._broker._subscriptions
        return all(
            any(session.username == self.service_user for session, _ in subscriptions.get(f, []))
            for f in filters
        )

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
        _GATES.pop(self._gate_name, None)
