"""The intervals of a meter's registers as billing sees them.

The raw register reads are loaded from telemetry (never changed), derived into
intervals (:func:`.consumption.derive`), the missing ones estimated
(:func:`.estimation.estimate`, with four weeks of history for profiles), the
edits laid over them (:func:`.edits.apply_edits`) and the result checked
(:func:`.validation.validate`).
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final

import msgspec

from m2mhub.apps.metering.consumption import Derivation, Interval, Read, derive
from m2mhub.apps.metering.edits import apply_edits
from m2mhub.apps.metering.estimation import estimate
from m2mhub.apps.metering.models import Meter, RegisterSpec
from m2mhub.apps.metering.storage import MeteringStorage
from m2mhub.apps.metering.validation import mark, validate
from m2mhub.apps.metering.values import Edit
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.store.base import Segment, Store

__all__ = ["MeterSeries", "RegisterSeries"]

DAY_MS: Final = 86_400_000
#: History derived before a window, for profile estimates (estimation.EstimationRules.weeks).
HISTORY_MS: Final = 28 * DAY_MS
#: How far past a window to look for the reads that bound it.
LOOKAROUND_MS: Final = 2 * DAY_MS
_PAGE: Final = 5000


class RegisterSeries(msgspec.Struct, frozen=True):
    """One register of a meter over a window: the derivation, the intervals as billed
    (estimated, edited, marked with their findings) and the findings."""

    register: RegisterSpec
    derivation: Derivation
    intervals: tuple[Interval, ...]
    flags: tuple[Any, ...]


class MeterSeries:
    """The series part of :class:`~m2mhub.apps.metering.service.MeteringService`."""

    store: Store
    storage: MeteringStorage

    async def _reads(self, device_pk: int, key: str, start: int, end: int) -> list[Read]:
        """The raw reads of one telemetry key; values that are not numbers are left out."""
        reads: list[Read] = []
        after: tuple[int, int, int] | None = None
        while True:
            page = await self.store.history(
                [Segment(device_pk, start, end)], keys=[key], after=after, limit=_PAGE
            )
            for point in page:
                value = point.value
                if type(value) is float and math.isfinite(value):
                    # What Read.of makes of a float, without its checks for other types.
                    reads.append(Read(point.ts, Decimal(repr(value))))
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                reads.append(Read.of(point.ts, value))
            if len(page) < _PAGE:
                return reads
            after = await self.store.cursor_of(page[-1])

    async def register_series(
        self,
        tenant_id: int,
        meter: Meter,
        spec: RegisterSpec,
        *,
        start: int,
        end: int,
        tz: str,
        now: int | None = None,
    ) -> RegisterSeries:
        """The intervals of one register over ``[start, end)``, as billing sees them."""
        length = timedelta(minutes=meter.interval_minutes)
        register = spec.register()
        reads = await self._reads(
            meter.device_pk, spec.key, start - HISTORY_MS - LOOKAROUND_MS, end + LOOKAROUND_MS
        )
        series = derive(reads, register, length=length, tz=tz, start=start, end=end)
        earlier = [read for read in reads if read.ts <= start]
        history: tuple[Interval, ...] = ()
        if earlier:
            history = derive(
                earlier, register, length=length, tz=tz, start=start - HISTORY_MS, end=start
            ).intervals
        intervals = estimate(series, history=history)
        starts = {interval.start for interval in intervals}
        edits = [
            Edit(e.interval_start, e.quantity, e.author, e.at_ms, e.reason)
            for e in await self.storage.edits(tenant_id, meter.id, register=spec.key)
            if e.interval_start in starts
        ]
        intervals = apply_edits(intervals, edits)
        flags = validate(series, now=now if now is not None else now_ms(), intervals=intervals)
        return RegisterSeries(spec, series, mark(intervals, flags), flags)

    async def meter_series(
        self, tenant_id: int, *, meter: str, start: int, end: int, tz: str
    ) -> tuple[Meter, list[RegisterSeries]]:
        """Every register of ``meter`` over ``[start, end)`` (for the API and console)."""
        found = await self.storage.meter(tenant_id, meter)
        if end - start > 93 * DAY_MS:
            raise PayloadError("to: ask for at most 93 days at a time", field="to")
        series = [
            await self.register_series(tenant_id, found, spec, start=start, end=end, tz=tz)
            for spec in found.registers
        ]
        return found, series
