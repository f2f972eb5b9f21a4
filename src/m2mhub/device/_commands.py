"""Commands: the handlers a device registers, and the answer each command gets.

The platform publishes ``{"id", "method", "params", "oneway"}`` to
``m2m/{device}/commands/{id}`` and takes ``{"status", "result", "error"}`` on
``.../commands/{id}/result``; a one-way command gets no answer.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec

log = logging.getLogger("m2mhub.device")

#: A handler gets the command's params and returns its result (any JSON value, or None).
CommandHandler = Callable[[dict[str, Any]], Awaitable[Any] | Any]

#: Error texts are stored with the command; keep them readable.
MAX_ERROR_CHARS: Final = 1000


class Command(msgspec.Struct, frozen=True):
    """A command as the platform sends it."""

    id: str
    method: str
    params: dict[str, Any] = {}
    oneway: bool = False


class CommandRouter:
    """Maps a method to its handler and turns what the handler did into an answer."""

    def __init__(self) -> None:
        self.handlers: dict[str, CommandHandler] = {}

    def add(self, method: str, handler: CommandHandler) -> None:
        self.handlers[method] = handler

    async def answer(self, payload: bytes) -> bytes | None:
        """Run the command in ``payload``; the JSON answer for its result topic.

        None for a one-way command: the platform counts it done once delivered,
        and an answer would come too late.
        """
        try:
            command = msgspec.json.decode(payload, type=Command)
        except msgspec.DecodeError as exc:  # ValidationError included
            return _failed(f"malformed command: {exc}")
        answer = await self._run(command)
        return None if command.oneway else answer

    async def _run(self, command: Command) -> bytes:
        handler = self.handlers.get(command.method)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "none"
            return _failed(f"unknown method {command.method!r}; this device handles: {known}")
        try:
            result = handler(command.params)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            log.warning("command %s (%s) failed: %r", command.id, command.method, exc)
            return _failed(f"{type(exc).__name__}: {exc}")
        try:
            return msgspec.json.encode({"status": "succeeded", "result": result})
        except (TypeError, ValueError, OverflowError) as exc:
            return _failed(f"the result of {command.method!r} is not JSON: {exc}")


def _failed(error: str) -> bytes:
    return msgspec.json.encode({"status": "failed", "error": error[:MAX_ERROR_CHARS]})
