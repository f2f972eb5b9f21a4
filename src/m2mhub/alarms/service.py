"""Raising, acknowledging, clearing and commenting on alarms, with their history.

Lifecycle: ``active`` -> ``acknowledged`` -> ``cleared`` (an active alarm may
also be cleared at once, by its rule or by a person). A cleared alarm is
final: when the condition comes back, a new alarm is raised. Every change is a
line in the alarm's history (who, when, comment), is announced on the bus as
:class:`~m2mhub.bus.AlarmChanged` and goes to the audit log.
"""

from __future__ import annotations

from typing import Any, Final

from m2mhub.audit.log import AuditLog
from m2mhub.bus import AlarmChanged, Bus
from m2mhub.core.errors import ConflictError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.store.base import Store
from m2mhub.store.models import Alarm

STATUSES: Final = ("active", "acknowledged", "cleared")
MAX_COMMENT: Final = 2000


class AlarmService:
    """Alarms of every tenant, kept in the store."""

    def __init__(self, store: Store, bus: Bus, *, audit: AuditLog | None = None) -> None:
        self.store = store
        self.bus = bus
        self.audit = audit

    async def raise_alarm(
        self,
        *,
        tenant_id: int,
        rule_id: int,
        rule_name: str,
        device_pk: int,
        device_id: str,
        type: str,
        severity: str,
        message: str,
        details: dict[str, Any],
        actor: str,
        at_ms: int | None = None,
    ) -> tuple[Alarm, bool]:
        """Raise the alarm of (rule, device); an open one is counted, not duplicated."""
        alarm, created = await self.store.raise_alarm(
            tenant_id=tenant_id,
            rule_id=rule_id,
            rule_name=rule_name,
            device_pk=device_pk,
            device_id=device_id,
            type=type,
            severity=severity,
            message=message,
            details=details,
            actor=actor,
            at_ms=at_ms if at_ms is not None else now_ms(),
        )
        if created:
            await self._announce(alarm, "raised", actor, None)
        return alarm, created

    async def clear_for(
        self, rule_id: int, device_pk: int, *, actor: str, comment: str | None = None
    ) -> Alarm | None:
        """Clear the open alarm of (rule, device), if there is one."""
        alarm = await self.store.open_alarm(rule_id, device_pk)
        if alarm is None:
            return None
        cleared = await self.store.change_alarm(
            alarm.id,
            to="cleared",
            allowed_from=("active", "acknowledged"),
            actor=actor,
            comment=comment,
            at_ms=now_ms(),
        )
        if cleared is None:
            return None  # cleared meanwhile by someone else
        await self._announce(cleared, "cleared", actor, comment)
        return cleared

    async def acknowledge(
        self, tenant_id: int, alarm_id: int, *, actor: str, comment: str | None = None
    ) -> Alarm:
        """active -> acknowledged; :class:`ConflictError` from any other status."""
        return await self._change(tenant_id, alarm_id, "acknowledged", ("active",), actor, comment)

    async def clear(
        self, tenant_id: int, alarm_id: int, *, actor: str, comment: str | None = None
    ) -> Alarm:
        """active or acknowledged -> cleared."""
        return await self._change(
            tenant_id, alarm_id, "cleared", ("active", "acknowledged"), actor, comment
        )

    async def comment(self, tenant_id: int, alarm_id: int, *, actor: str, text: str) -> Alarm:
        """Add a comment to the alarm's history (any status)."""
        if not text.strip() or len(text) > MAX_COMMENT:
            raise PayloadError(f"text: write 1 to {MAX_COMMENT} characters", field="text")
        alarm = await self.store.get_alarm(alarm_id, tenant_id=tenant_id)
        await self.store.add_alarm_event(
            alarm.id, kind="comment", actor=actor, comment=text, at_ms=now_ms()
        )
        await self._announce(alarm, "comment", actor, text)
        return alarm

    async def _change(
        self,
        tenant_id: int,
        alarm_id: int,
        to: str,
        allowed: tuple[str, ...],
        actor: str,
        comment: str | None,
    ) -> Alarm:
        if comment is not None and len(comment) > MAX_COMMENT:
            raise PayloadError(f"comment: at most {MAX_COMMENT} characters", field="comment")
        alarm = await self.store.get_alarm(alarm_id, tenant_id=tenant_id)
        changed = await self.store.change_alarm(
            alarm.id, to=to, allowed_from=allowed, actor=actor, comment=comment, at_ms=now_ms()
        )
        if changed is None:
            current = await self.store.get_alarm(alarm.id)
            raise ConflictError(
                f"alarm {alarm.id} is {current.status}; it cannot become {to}", field="status"
            )
        await self._announce(changed, to, actor, comment)
        return changed

    async def _announce(self, alarm: Alarm, change: str, actor: str, comment: str | None) -> None:
        self.bus.publish(
            AlarmChanged(
                alarm.tenant_id,
                alarm.device_pk,
                alarm.device_id,
                alarm.id,
                alarm.rule_name,
                alarm.severity,
                alarm.status,
                change,
            )
        )
        if self.audit is not None:
            await self.audit.record(
                tenant_id=alarm.tenant_id,
                actor=actor,
                action=f"alarm.{change}",
                target=f"alarm:{alarm.id}",
                details={
                    "device": alarm.device_id,
                    "rule": alarm.rule_name,
                    "severity": alarm.severity,
                    **({"comment": comment} if comment else {}),
                },
            )
