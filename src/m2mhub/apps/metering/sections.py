"""What a billing run bills: one section per supply point, meter kind and tariff.

1. **Tariffs.** Each tariff assigned to the account (per meter kind, over local
   dates) covers part of the period; the period is read in the tariff's time
   zone (``2024-10`` is 1 October 00:00 to 1 November 00:00 local time).
2. **Supply points.** Each supply point linked to the account during that part
   is billed on its own invoice, for the local days of the link.
3. **Meters.** Each meter of the tariff's kind installed at the supply point
   contributes the intervals that start while it was installed, so after a
   meter swap the days before come from the old meter and the days after from
   the new one. Record a swap at an interval boundary (a whole hour for hourly
   intervals): the interval holding the swap instant is counted on the old meter.
4. **Intervals** as :mod:`.series` gives them. Import registers add up (tariff
   1 and 2 of a P1 meter), a net register's negative quantities are export.
   Intervals still missing are not billed and are counted on the invoice's details.
5. **Pricing** with the tariff versions in force (:func:`.pricing.price_period`);
   for gas, water, heat and usage tariffs the kWh of the pricing core are read
   as the register's unit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from m2mhub.apps.metering.consumption import Quality
from m2mhub.apps.metering.invoices import MeterReads, RegisterRead
from m2mhub.apps.metering.models import (
    Account,
    Direction,
    Meter,
    MeterKind,
    SupplyPoint,
    TariffRecord,
)
from m2mhub.apps.metering.periods import Period, local_date, local_date_ceil, midnight
from m2mhub.apps.metering.pricing import Interval as PricedInterval
from m2mhub.apps.metering.pricing import InvoiceDraft, price_period
from m2mhub.apps.metering.series import MeterSeries
from m2mhub.apps.metering.storage import FOREVER
from m2mhub.apps.metering.tariffs import Tariff, parse_tariff_yaml
from m2mhub.core.errors import M2MHubError
from m2mhub.core.timeutil import format_ms

__all__ = ["BillingSections", "Section"]


@dataclass(frozen=True, slots=True)
class Section:
    """One invoice to be: a supply point's consumption of one kind over some local days."""

    subject: str
    point: SupplyPoint
    kind: MeterKind
    tariff: TariffRecord
    start: date
    end: date
    draft: InvoiceDraft
    meters: tuple[MeterReads, ...]
    details: dict[str, Any]


_ZERO: Final = Decimal(0)
_ESTIMATED: Final = Quality.ESTIMATED


@functools.lru_cache(maxsize=64)
def _parsed_tariff(text: str) -> Tariff:
    """A tariff's YAML loaded once per process: a billing run prices every account with
    the few tariffs there are (a :class:`Tariff` is immutable)."""
    return parse_tariff_yaml(text)


def relabel(draft: InvoiceDraft, kind: MeterKind, unit: str) -> InvoiceDraft:
    """The draft of a gas, water, heat or usage tariff in its own words: the pricing
    core counts kWh, which are here the register's unit."""
    if kind is MeterKind.ELECTRICITY:
        return draft
    title = kind.value.capitalize()
    lines = tuple(
        dataclasses.replace(
            line,
            unit=unit if line.unit == "kWh" else line.unit,
            description=(
                title + line.description[len("Energy") :]
                if line.description.startswith("Energy")
                and not line.description.startswith("Energy tax")
                else line.description
            ),
        )
        for line in draft.lines
    )
    return dataclasses.replace(draft, lines=lines, unit=unit)


class BillingSections(MeterSeries):
    """The sections part of :class:`~m2mhub.apps.metering.service.MeteringService`."""

    async def _meter_piece(
        self,
        tenant_id: int,
        meter: Meter,
        start: int,
        end: int,
        zone: ZoneInfo,
        now: int,
        quantities: dict[int, list[Any]],
    ) -> tuple[list[MeterReads], dict[str, Any]]:
        """Add one meter's intervals in ``[start, end)`` to ``quantities`` (by interval start:
        [end, import, export, estimated, registers seen, complete]); its reads and details.

        The details give each register's billed ``import`` and ``export`` (and the
        ``estimated_`` part of each) as decimal strings: the intervals billed, those
        where every register of the meter has a quantity.
        """
        reads: list[MeterReads] = []
        registers: dict[str, Any] = {}
        counted: dict[str, list[tuple[int, Decimal, bool]]] = {}
        for spec in meter.registers:
            series = await self.register_series(
                tenant_id, meter, spec, start=start, end=end, tz=zone.key, now=now
            )
            by_quality = dict.fromkeys(Quality, 0)
            mine = counted.setdefault(spec.key, [])
            is_export = spec.direction is Direction.EXPORT
            for interval in series.intervals:
                begin = interval.start
                if not start <= begin < end:
                    continue
                quality = interval.quality
                by_quality[quality] += 1
                slot = quantities.get(begin)
                if slot is None:
                    slot = quantities[begin] = [interval.end, _ZERO, _ZERO, False, 0, True]
                quantity = interval.quantity
                if quantity is None:
                    slot[5] = False
                    continue
                is_estimated = quality is _ESTIMATED
                mine.append((begin, quantity, is_estimated))
                # max(quantity, 0) without the call: the quantity unless it is below zero.
                positive = _ZERO if quantity < _ZERO else quantity
                if is_export:
                    slot[2] += positive
                else:
                    slot[1] += positive
                    if spec.net:
                        slot[2] += _ZERO if -quantity < _ZERO else -quantity
                    # else: adding zero changes neither the sum nor its exponent (<= 0).
                slot[3] = slot[3] or is_estimated
                slot[4] += 1
            if not mine:
                del counted[spec.key]
            registers[spec.key] = {
                **{quality.value: count for quality, count in by_quality.items()},
                "flags": sorted({flag.code.value for flag in series.flags}),
            }
            used = [read for read in series.derivation.reads if start <= read.ts <= end]
            if len(used) >= 2:
                first, last = used[0], used[-1]
                register = spec.register()
                # Reads on one day, or a net register that went down: no reads shown.
                with contextlib.suppress(M2MHubError):
                    reads.append(
                        MeterReads(
                            meter=meter.name,
                            register=spec.key,
                            first=RegisterRead(
                                read_on=local_date(first.ts, zone), value=first.value
                            ),
                            last=RegisterRead(read_on=local_date(last.ts, zone), value=last.value),
                            unit=spec.unit,
                            modulus=register.modulus,
                        )
                    )
        for spec in meter.registers:
            directions = (
                ("export",)
                if spec.direction is Direction.EXPORT
                else ("import", "export")
                if spec.net
                else ("import",)
            )
            totals = dict.fromkeys(
                [*directions, *(f"estimated_{name}" for name in directions)], Decimal(0)
            )
            for begin, quantity, is_estimated in counted.get(spec.key, ()):
                if not quantities[begin][5]:
                    continue  # not billed: another register has no quantity there
                for name in directions:
                    # A net register's negative quantities are export (see the docstring).
                    part = max(-quantity if name == "export" and spec.net else quantity, Decimal(0))
                    totals[name] += part
                    if is_estimated:
                        totals[f"estimated_{name}"] += part
            registers[spec.key].update(
                {"unit": spec.unit, **{name: str(total) for name, total in totals.items()}}
            )
        return reads, registers

    async def _supply_section(
        self,
        tenant_id: int,
        point: SupplyPoint,
        record: TariffRecord,
        tariff: Tariff,
        lo: int,
        hi: int,
        now: int,
    ) -> Section | None:
        zone = tariff.timezone
        links = [
            link
            for link in await self.storage.meter_links(tenant_id, supply_point_id=point.id)
            if link.from_ms < hi and (link.to_ms or FOREVER) > lo
        ]
        meters = await self.storage.meters_by_id([link.meter_id for link in links])
        quantities: dict[int, list[Any]] = {}
        all_reads: list[MeterReads] = []
        pieces: list[dict[str, Any]] = []
        units: list[str] = []
        for link in links:
            meter = meters[link.meter_id]
            if meter.kind is not record.kind:
                continue
            start, end = max(lo, link.from_ms), min(hi, link.to_ms or FOREVER)
            reads, registers = await self._meter_piece(
                tenant_id, meter, start, end, zone, now, quantities
            )
            all_reads += reads
            units += [spec.unit for spec in meter.registers]
            pieces.append({"meter": meter.name, "from": start, "to": end, "registers": registers})
        if not pieces:
            return None
        intervals: list[PricedInterval] = []
        missing = 0
        for start_ms in sorted(quantities):
            end_ms, imported, exported, estimated, _, complete = quantities[start_ms]
            if not complete:
                missing += 1
                continue
            intervals.append(
                PricedInterval(
                    start=datetime.fromtimestamp(start_ms / 1000, UTC),
                    minutes=(end_ms - start_ms) // 60_000,
                    import_kwh=imported,
                    export_kwh=exported,
                    is_estimated=estimated,
                )
            )
        first_day, last_day = local_date(lo, zone), local_date_ceil(hi, zone)
        draft = price_period(tariff, first_day, last_day, intervals)
        draft = relabel(draft, record.kind, units[0] if units else "kWh")
        notes = []
        if missing:
            notes.append(f"{missing} intervals without data are not billed")
        return Section(
            subject=f"{point.code}/{record.kind.value}/{first_day.isoformat()}",
            point=point,
            kind=record.kind,
            tariff=record,
            start=first_day,
            end=last_day,
            draft=draft,
            meters=tuple(all_reads),
            details={
                "tariff": record.name,
                "meters": pieces,
                "missing_intervals": missing,
                "notes": notes,
            },
        )

    async def _sections(
        self, tenant_id: int, account: Account, period: Period, now: int
    ) -> tuple[list[Section], list[str]]:
        sections: list[Section] = []
        notes: list[str] = []
        links = await self.storage.account_links(tenant_id, account_id=account.id)
        assignments = await self.storage.assignments(tenant_id, account.id)
        if links and not assignments:
            notes.append("no tariff is assigned to the account; nothing billed")
        for assignment in assignments:
            first = max(period.start, assignment.from_date)
            last = min(period.end, assignment.to_date or period.end)
            if first >= last:
                continue
            record = await self.storage.tariff_by_id(assignment.tariff_id)
            tariff = _parsed_tariff(record.yaml)
            zone = tariff.timezone
            lo_part, hi_part = midnight(first, zone), midnight(last, zone)
            for link in links:
                lo, hi = max(lo_part, link.from_ms), min(hi_part, link.to_ms or FOREVER)
                if lo >= hi:
                    continue
                point = await self.storage.supply_point(tenant_id, link.supply_point)
                section = await self._supply_section(tenant_id, point, record, tariff, lo, hi, now)
                if section is None:
                    notes.append(
                        f"supply point {point.code}: no {record.kind.value} meter from "
                        f"{format_ms(lo)} to {format_ms(hi)}"
                    )
                    continue
                sections.append(section)
        return sections, notes
