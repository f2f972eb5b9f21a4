"""A rule turning on or off for a device, as webhooks and notifications describe it.

The webhook body (docs/rules.md, "The webhook payload") and the names a
notification template may use both come from one :class:`Firing`, so a
receiver and a person read the same facts.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from m2mhub.core.timeutil import format_ms
from m2mhub.rules.model import NotifyAction, Rule
from m2mhub.rules.template import render


class FiredAlarm(msgspec.Struct, frozen=True):
    """The alarm a transition raised or cleared."""

    id: int
    severity: str
    type: str
    message: str
    status: str


class Firing(msgspec.Struct, frozen=True):
    """One raise or clear of a rule for a device."""

    rule: Rule
    device: str
    device_name: str
    event: Literal["raised", "cleared"]
    ts: int  # the reading's timestamp, or the engine's clock for timers and presence
    trigger: str  # reading, timer, presence
    values: dict[str, Any]
    alarm: FiredAlarm | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON body of the rule's webhooks."""
        return {
            "event": self.event,
            "rule": self.rule.name,
            "description": self.rule.description,
            "device": self.device,
            "device_name": self.device_name,
            "ts": self.ts,
            "time": format_ms(self.ts),
            "trigger": self.trigger,
            "values": self.values,
            "alarm": msgspec.to_builtins(self.alarm) if self.alarm else None,
        }

    def severity(self, action: NotifyAction) -> str:
        """A notification's severity: its own, else the rule's alarm's, else info."""
        if action.severity is not None:
            return action.severity
        if self.alarm is not None:
            return self.alarm.severity
        alarm = self.rule.alarm
        return alarm.severity if alarm is not None else "info"

    def names(self, action: NotifyAction) -> dict[str, Any]:
        """What the title and body templates of ``action`` may refer to."""
        values = ", ".join(f"{k}={v}" for k, v in self.values.items())
        first = next(iter(self.values.values()), None)
        alarm = self.rule.alarm
        message = (
            self.alarm.message
            if self.alarm
            else (alarm.message if alarm and alarm.message else None)
            or self.rule.description
            or self.rule.name
        )
        return {
            **self.values,
            "rule": self.rule.name,
            "description": self.rule.description,
            "device": self.device,
            "device_name": self.device_name,
            "event": self.event,
            "severity": self.severity(action),
            "alarm": self.alarm.id if self.alarm else "",
            "message": message,
            "time": format_ms(self.ts),
            "value": first,
            "values": values or "no values",
        }

    def title(self, action: NotifyAction) -> str:
        return render(action.title, self.names(action))

    def body(self, action: NotifyAction) -> str:
        return render(action.body, self.names(action))


__all__ = ["FiredAlarm", "Firing"]
