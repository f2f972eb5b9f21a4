"""The tracker protocols m2mhub serves, by the name used in ``M2MHUB_TRACKERS``."""

from __future__ import annotations

from collections.abc import Callable

from m2mhub.connect.trackers.server import TrackerProtocol
from m2mhub.core.errors import M2MHubError


def _teltonika() -> TrackerProtocol:
    from m2mhub.connect.trackers.teltonika.protocol import TeltonikaProtocol

    return TeltonikaProtocol()


def _gt06() -> TrackerProtocol:
    from m2mhub.connect.trackers.gt06.protocol import Gt06Protocol

    return Gt06Protocol()


_FACTORIES: dict[str, Callable[[], TrackerProtocol]] = {
    "teltonika": _teltonika,
    "gt06": _gt06,
}

#: The names ``M2MHUB_TRACKERS`` accepts.
NAMES = tuple(sorted(_FACTORIES))


def tracker_protocol(name: str) -> TrackerProtocol:
    """A protocol by name; :class:`M2MHubError` naming the known ones otherwise."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise M2MHubError(
            f"trackers (M2MHUB_TRACKERS): unknown protocol {name!r}; known: {', '.join(NAMES)}",
            field="trackers",
        )
    return factory()


__all__ = ["NAMES", "tracker_protocol"]
