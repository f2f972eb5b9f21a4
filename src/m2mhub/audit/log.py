"""The audit log: who or which rule did what, to what, when, and with which result.

Entries are only ever appended. Actors are written as ``user:<email>``,
``key:<API key id>``, ``rule:<id>``, ``cli:<OS user>`` or ``system``; targets as
``device:<id>``, ``apikey:<id>``, ``delivery:<id>``, ``recipient:<name>``...
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from m2mhub.core.errors import M2MHubError
from m2mhub.core.timeutil import now_ms
from m2mhub.store.base import Store

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 500


def error_result(exc: BaseException) -> str:
    """The ``result`` of an action that raised ``exc``: ``error: <message>``."""
    message = exc.message if isinstance(exc, M2MHubError) else f"{type(exc).__name__}: {exc}"
    return f"error: {message}"[:MAX_RESULT_CHARS]


@dataclass
class Tracked:
    """The target and details of an action being done, filled in as they become known."""

    target: str
    details: dict[str, Any] = field(default_factory=dict)


class AuditLog:
    """Appends to and reads the audit log of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(
        self,
        *,
        tenant_id: int,
        actor: str,
        action: str,
        target: str = "",
        details: dict[str, Any] | None = None,
        result: str = "ok",
    ) -> int:
        """Append one entry (``result`` is ``ok`` or ``error: ...``); returns its id."""
        return await self.store.add_audit(
            tenant_id,
            ts=now_ms(),
            actor=actor,
            action=action,
            target=target,
            details=details or {},
            result=result[:MAX_RESULT_CHARS],
        )

    @asynccontextmanager
    async def track(
        self,
        *,
        tenant_id: int,
        actor: str,
        action: str,
        target: str = "",
        details: dict[str, Any] | None = None,
    ) -> AsyncIterator[Tracked]:
        """Record the action done inside the block: ``ok``, or the error it raised
        (which propagates). The block may add details and name the target once known."""
        tracked = Tracked(target, dict(details or {}))
        try:
            yield tracked
        except Exception as exc:
            await self._record_tracked(tenant_id, actor, action, tracked, error_result(exc))
            raise
        await self._record_tracked(tenant_id, actor, action, tracked, "ok")

    async def _record_tracked(
        self, tenant_id: int, actor: str, action: str, tracked: Tracked, result: str
    ) -> None:
        await self.record(
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            target=tracked.target,
            details=tracked.details,
            result=result,
        )
