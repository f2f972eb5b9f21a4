"""Downlink: commands to devices and their desired state (twins)."""

from m2mhub.commands.service import CommandService, parse_command_result

__all__ = ["CommandService", "parse_command_result"]
