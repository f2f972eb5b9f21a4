"""The audit log of manual and automatic actions."""

from __future__ import annotations

from m2mhub.audit.log import AuditLog, Tracked, error_result

__all__ = ["AuditLog", "Tracked", "error_result"]
