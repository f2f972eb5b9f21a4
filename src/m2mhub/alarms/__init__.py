"""Alarms: raised by rules, one open per (rule, device), acknowledged and cleared by people."""

from m2mhub.alarms.service import AlarmService

__all__ = ["AlarmService"]
