"""Message templates for notifications: ``{name}`` placeholders filled from a fixed set.

A template is plain text with placeholders such as ``{device}``, ``{rule}``,
``{value}`` or a key of the triggering values (``{temp}``, ``{pump.state}``);
``{{`` and ``}}`` stand for literal braces. A placeholder may carry a format
spec for numbers (``{temp:.1f}``). Nothing else is interpreted: no attribute
access, no indexing, no expressions, so a rule author cannot reach anything
beyond the values the engine hands in. An unknown name is left as written
(``{devcie}`` shows up in the message, where the typo is easy to see).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

_PLACEHOLDER: Final = re.compile(
    r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]{0,99})(?::([0-9.,+\- #<>^=_%a-zA-Z]{1,20}))?\}|[{}]"
)

#: The names every template may use, besides the keys of the triggering values.
NAMES: Final = (
    "rule",
    "description",
    "device",
    "device_name",
    "event",
    "severity",
    "alarm",
    "message",
    "time",
    "value",
    "values",
)


def check_template(text: str) -> str:
    """``text`` if its braces are balanced placeholders, else ``ValueError`` naming the spot."""
    for match in _PLACEHOLDER.finditer(text):
        token = match.group(0)
        if token in ("{", "}"):
            raise ValueError(
                f"unmatched {token!r} at character {match.start() + 1}; write {{name}} for a "
                f"placeholder and {token * 2} for a literal brace"
            )
    return text


def render(text: str, names: Mapping[str, Any]) -> str:
    """Fill the placeholders of ``text`` from ``names``; unknown names stay as written."""

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name, spec = match.group(1), match.group(2)
        if name is None or name not in names:
            return token
        value = names[name]
        if spec and isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return format(value, spec)
            except ValueError:
                pass
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(fill, text)


__all__ = ["NAMES", "check_template", "render"]
