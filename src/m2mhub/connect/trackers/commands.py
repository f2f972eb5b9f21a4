"""The commands tracker protocols understand, under one name whatever the protocol.

Declare them as methods of the trackers' device type so that the console offers them
(docs/trackers.md#commands):

- ``engine_stop`` / ``engine_resume``: cut the engine (the tracker's relay output) and
  give it back;
- ``send_text`` with ``{"text": "..."}``: any command in the tracker's own text syntax
  (Teltonika SMS/GPRS commands such as ``getinfo``, GT06 commands such as ``WHERE#``).

The tracker's text answer becomes the command's result: ``{"text": "..."}``.
"""

from __future__ import annotations

from typing import Any, Final

from m2mhub.core.errors import PayloadError

ENGINE_STOP: Final = "engine_stop"
ENGINE_RESUME: Final = "engine_resume"
SEND_TEXT: Final = "send_text"
METHODS: Final = (ENGINE_STOP, ENGINE_RESUME, SEND_TEXT)
#: Longest text command accepted (GT06 and Teltonika firmware limits are around this).
MAX_TEXT: Final = 512


def command_text(method: str, params: dict[str, Any], engine: dict[str, str]) -> str:
    """The text of a command, ``engine`` giving the protocol's texts for the engine methods;
    :class:`PayloadError` for anything else."""
    if method in engine:
        return engine[method]
    if method == SEND_TEXT:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise PayloadError(
                f"params.text: the command text to send, 1 to {MAX_TEXT} characters",
                field="params.text",
            )
        if not text.isascii():
            raise PayloadError("params.text: trackers take ASCII text", field="params.text")
        return text
    raise PayloadError(
        f"method: {method!r} is not a tracker command; use one of {', '.join(METHODS)}",
        field="method",
    )


__all__ = ["ENGINE_RESUME", "ENGINE_STOP", "METHODS", "SEND_TEXT", "command_text"]
