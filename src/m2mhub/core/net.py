"""Network facts the CLI and the embedded broker check before they listen."""

from __future__ import annotations

import socket


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on ``host:port`` (a port in TIME_WAIT counts as free)."""
    with socket.socket() as probe:
        # As a server binding the port will: TIME_WAIT from a previous run does not block.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
