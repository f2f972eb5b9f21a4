"""Errors of the fleet app."""

from __future__ import annotations

from m2mhub.core.errors import PayloadError


class FleetError(PayloadError):
    """Fleet settings or readings that cannot be used as given; the message names the field."""

    code = "invalid_fleet_data"


class LateReadingError(FleetError):
    """A reading at or before what a detector has already decided: replay from a checkpoint."""

    code = "late_reading"

    def __init__(self, ts: int, last_ts: int) -> None:
        super().__init__(
            f"ts: {ts} is not after {last_ts}, which this detector has already passed; "
            "replay from an earlier checkpoint with detect(..., state=checkpoint)",
            field="ts",
        )
        self.ts = ts
        self.last_ts = last_ts


__all__ = ["FleetError", "LateReadingError"]
