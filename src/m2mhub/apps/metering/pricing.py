"""Price a billing period: a tariff and interval consumption -> an invoice draft.

:func:`price_period` is the whole public entry point. It is pure: no clock, no
database, the same inputs always give the same draft.

How a period is priced (the money rounding rule is in :mod:`.money`):

- **Period and days.** A billing period is ``[start, end)`` in local dates of
  the tariff's time zone, from local midnight to local midnight. Days are local
  days, so a 23 h or 25 h day at a DST change is one day.
- **Versions.** When a version's ``valid_from`` falls inside the period, the
  period is split there into parts; each part is priced with its own version
  and its lines carry the version date and the part's dates.
- **Intervals** are assigned by their start instant: to a part by the local
  date, to a time-of-use period by the local clock. On a 25 h day the repeated
  hour is priced by its local time (both 02:00 hours are 02:00). An interval
  that crosses a time-of-use edge is priced wholly at its start, so feed data
  at least as fine as the tariff's clock ranges (15 min or hourly).
- **Standing charge:** local days in the part times the daily charge.
- **Tiered blocks** are sized per calendar month: a part gets, of each block,
  the days it covers in each month over that month's days (10 of 31 days of
  a 100 kWh block is 32.258 kWh, rounded to the Wh). A full month gets the
  block as written; a split month's parts add up to it.
- **Demand:** the peak interval of the whole period (kW = interval kWh * 60 /
  interval minutes, rounded to 3 decimals; the earliest wins a tie) is charged
  once, at the price of the version in force on the peak's local date. It is
  not prorated for a short period.
- **Minimum charge:** if the charges (every line but export credit) add up to
  less than the minimum, a top-up line makes up the difference. A version
  change mid-period prorates the minimum by days, rounded once to cents.
- **Export credit** is a negative line: exported kWh times minus the price.
- **Tax** per rate over the sum of the rounded lines at that rate.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Final

from m2mhub.apps.metering.money import QUANTITY_PLACES, Money, round_amount, to_decimal
from m2mhub.apps.metering.tariffs import (
    DayType,
    FlatEnergy,
    Tariff,
    TariffVersion,
    TieredEnergy,
    TimeOfUseEnergy,
)
from m2mhub.core.errors import PayloadError

__all__ = [
    "ALL_DAY",
    "Interval",
    "InvoiceDraft",
    "InvoiceLine",
    "Peak",
    "PeriodConsumption",
    "PricingError",
    "TaxLine",
    "price_period",
]

_KWH: Final = Decimal(1).scaleb(-QUANTITY_PLACES)
_ZERO: Final = Decimal(0)
#: Name of the one consumption period of a flat or tiered tariff.
ALL_DAY: Final = "all day"


class PricingError(PayloadError):
    """Billing input that cannot be priced (a bad period, intervals outside it or overlapping)."""

    code = "invalid_billing_input"


@dataclass(frozen=True, slots=True)
class Interval:
    """Metered energy of one interval: its UTC start, length and kWh imported and exported.

    kWh are ``Decimal`` (``int`` and decimal strings are converted; a ``float``
    raises ``TypeError``). ``is_estimated`` marks a value filled in by estimation
    rather than read from the meter.
    """

    start: datetime
    minutes: int
    import_kwh: Decimal
    export_kwh: Decimal = Decimal(0)
    is_estimated: bool = False

    def __post_init__(self) -> None:
        imported, exported, minutes = self.import_kwh, self.export_kwh, self.minutes
        if (
            type(imported) is Decimal
            and type(exported) is Decimal
            and type(minutes) is int
            and minutes > 0
            and isinstance(self.start, datetime)
            and self.start.tzinfo is UTC
            and imported.is_finite()
            and exported.is_finite()
            and imported >= 0
            and exported >= 0
        ):
            # Already what the checks below would make of it (billing builds these).
            return
        if not isinstance(self.start, datetime) or self.start.utcoffset() is None:
            raise ValueError(f"start: {self.start!r} needs a time zone; give the UTC instant")
        if isinstance(self.minutes, bool) or not isinstance(self.minutes, int):
            raise TypeError(f"minutes: expected an int, got {self.minutes!r}")
        if self.minutes <= 0:
            raise ValueError(f"minutes: {self.minutes} must be above 0")
        for name in ("import_kwh", "export_kwh"):
            value = to_decimal(getattr(self, name), what=name)
            if value < 0:
                raise ValueError(f"{name}: {value} must be at least 0")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "start", self.start.astimezone(UTC))

    @property
    def end(self) -> datetime:
        """The instant the interval ends (exclusive)."""
        return self.start + timedelta(minutes=self.minutes)

    @property
    def kw(self) -> Decimal:
        """Average import power over the interval, rounded to 3 decimals."""
        power = self.import_kwh * 60 / self.minutes
        return power.quantize(_KWH, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line a customer can check: ``amount = round(quantity * unit_price)``.

    ``start``/``end`` are the local dates the line covers (end exclusive),
    ``version`` the ``valid_from`` of the tariff version that priced it, and
    ``tariff_period`` the time-of-use period or tier block, if any.
    """

    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Money
    tax_rate: Decimal
    version: date
    start: date
    end: date
    tariff_period: str | None = None


@dataclass(frozen=True, slots=True)
class TaxLine:
    """Tax at one rate: ``amount = round(rate * base)``, base the sum of its lines."""

    name: str
    rate: Decimal
    base: Money
    amount: Money


@dataclass(frozen=True, slots=True)
class PeriodConsumption:
    """Imported kWh in one tariff period (``"all day"`` for flat and tiered energy)."""

    period: str
    kwh: Decimal


@dataclass(frozen=True, slots=True)
class Peak:
    """The interval of highest demand: its power and its start (UTC and local)."""

    kw: Decimal
    start: datetime
    local_start: datetime


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    """A priced billing period: lines, taxes, totals and the reads behind them.

    ``actual_kwh``/``estimated_kwh`` split the imported kWh by how they were
    obtained; the interval counts say how many reads of each kind were used and
    ``estimated_dates`` the local dates with an estimated interval. ``unit`` is
    what the pricing core's kWh are (a gas tariff's m3, a usage tariff's h).
    """

    tariff: str
    currency: str
    timezone: str
    start: date
    end: date
    days: int
    lines: tuple[InvoiceLine, ...]
    taxes: tuple[TaxLine, ...]
    consumption: tuple[PeriodConsumption, ...]
    import_kwh: Decimal
    export_kwh: Decimal
    actual_kwh: Decimal
    estimated_kwh: Decimal
    actual_intervals: int
    estimated_intervals: int
    peak: Peak | None
    subtotal: Money
    tax: Money
    total: Money
    estimated_dates: tuple[date, ...] = ()
    unit: str = "kWh"


@dataclass(frozen=True, slots=True)
class _Part:
    version: TariffVersion
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _local_midnight(day: date, tariff: Tariff) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tariff.timezone).astimezone(UTC)


def _parts(tariff: Tariff, start: date, end: date) -> list[_Part]:
    """Split ``[start, end)`` at every version change inside it."""
    first = tariff.version_at(start)
    edges = [start] + [v.valid_from for v in tariff.versions if start < v.valid_from < end]
    edges.append(end)
    return [
        _Part(first if a == start else tariff.version_at(a), a, b)
        for a, b in itertools.pairwise(edges)
    ]


def _check_intervals(
    intervals: Sequence[Interval], period_start: datetime, period_end: datetime
) -> list[Interval]:
    for i, interval in enumerate(intervals):
        if not isinstance(interval, Interval):
            raise PricingError(
                f"intervals[{i}]: expected an Interval, got {type(interval).__name__}",
                field=f"intervals[{i}]",
            )
    starts = [interval.start for interval in intervals]
    order = sorted(range(len(intervals)), key=starts.__getitem__)
    previous: int | None = None
    previous_end: datetime | None = None
    lengths: dict[int, timedelta] = {}  # Interval.end's timedelta, made once per length
    for i in order:
        interval = intervals[i]
        length = lengths.get(interval.minutes)
        if length is None:
            length = lengths[interval.minutes] = timedelta(minutes=interval.minutes)
        end = interval.start + length
        if interval.start < period_start or end > period_end:
            raise PricingError(
                f"intervals[{i}]: {interval.start.isoformat()} + {interval.minutes} min lies "
                f"outside the billing period {period_start.isoformat()} to "
                f"{period_end.isoformat()}; pass only the period's intervals",
                field=f"intervals[{i}].start",
            )
        if previous_end is not None and interval.start < previous_end:
            raise PricingError(
                f"intervals[{i}]: starts at {interval.start.isoformat()}, inside "
                f"intervals[{previous}]; remove the duplicate or overlapping read",
                field=f"intervals[{i}].start",
            )
        previous, previous_end = i, end
    return [intervals[i] for i in order]


def _month_shares(start: date, end: date) -> list[tuple[int, int]]:
    """(days of ``[start, end)`` in a month, days of that month) per month touched."""
    shares = []
    day = start
    while day < end:
        next_month = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        month_days = (next_month - day.replace(day=1)).days
        shares.append(((min(end, next_month) - day).days, month_days))
        day = next_month
    return shares


def _prorate(kwh: Decimal, shares: list[tuple[int, int]]) -> Decimal:
    exact = Fraction(kwh) * sum((Fraction(d, m) for d, m in shares), Fraction(0))
    value = Decimal(exact.numerator) / Decimal(exact.denominator)
    return value.quantize(_KWH, rounding=ROUND_HALF_UP)


def _plain(number: Decimal) -> str:
    """A decimal without trailing zeros or exponent, for descriptions."""
    return format(number.normalize(), "f")


class _Invoice:
    """Collects lines in the order they appear on the invoice."""

    def __init__(self, tariff: Tariff) -> None:
        self.currency = tariff.currency
        self.lines: list[InvoiceLine] = []
        self.tax_names: dict[Decimal, str] = {}

    def add(
        self,
        part: _Part,
        description: str,
        quantity: Decimal,
        unit: str,
        unit_price: Decimal,
        tax_rate: Decimal,
        *,
        tariff_period: str | None = None,
    ) -> None:
        amount = round_amount(quantity * unit_price, self.currency)
        self.tax_names.setdefault(tax_rate, part.version.tax.name)
        self.lines.append(
            InvoiceLine(
                description=description,
                quantity=quantity,
                unit=unit,
                unit_price=unit_price,
                amount=Money(amount, self.currency),
                tax_rate=tax_rate,
                version=part.version.valid_from,
                start=part.start,
                end=part.end,
                tariff_period=tariff_period,
            )
        )


def _price_energy(
    invoice: _Invoice,
    part: _Part,
    kwh_by_period: dict[str, Decimal],
) -> None:
    energy = part.version.energy
    rate = part.version.tax_rate(energy)
    if isinstance(energy, FlatEnergy):
        kwh = kwh_by_period.get(ALL_DAY, Decimal(0))
        invoice.add(part, "Energy", kwh, "kWh", energy.price_per_kwh, rate)
    elif isinstance(energy, TieredEnergy):
        _price_blocks(invoice, part, energy, kwh_by_period.get(ALL_DAY, Decimal(0)))
    else:
        for period in energy.periods:
            used = kwh_by_period.get(period.name)
            if used is not None:
                invoice.add(
                    part,
                    f"Energy {period.name}",
                    used,
                    "kWh",
                    period.price_per_kwh,
                    rate,
                    tariff_period=period.name,
                )


def _price_blocks(invoice: _Invoice, part: _Part, energy: TieredEnergy, kwh: Decimal) -> None:
    shares = _month_shares(part.start, part.end)
    share_text = " + ".join(f"{d}/{m}" for d, m in shares)
    is_whole = all(d == m for d, m in shares) and len(shares) == 1
    remaining = kwh
    lower = Decimal(0)
    for number, block in enumerate(energy.blocks, start=1):
        name = f"block {number}"
        if block.up_to_kwh is None:
            quantity = remaining
            size = f"above {_plain(lower)} kWh"
        else:
            upper = _prorate(block.up_to_kwh, shares)
            size = f"up to {_plain(block.up_to_kwh)} kWh/month"
            if not is_whole:
                size += f" x {share_text} month = {_plain(upper)} kWh"
            quantity = min(remaining, upper - lower)
            lower = upper
        if quantity > 0 or number == 1:
            invoice.add(
                part,
                f"Energy {name} ({size})",
                quantity,
                "kWh",
                block.price_per_kwh,
                part.version.tax_rate(energy),
                tariff_period=name,
            )
        remaining -= quantity
        if remaining <= 0:
            break


def price_period(
    tariff: Tariff, start: date, end: date, intervals: Sequence[Interval]
) -> InvoiceDraft:
    """Price the local-date period ``[start, end)`` of ``tariff`` for ``intervals``.

    Every interval must lie within the period, none may overlap another; gaps
    are allowed (estimation fills them before billing). Raises
    :class:`PricingError` for bad input, naming ``start``, ``end`` or
    ``intervals[i]`` (also when ``start`` is before the tariff's first version).
    """
    for name, day in (("start", start), ("end", end)):
        if not isinstance(day, date) or isinstance(day, datetime):
            raise PricingError(f"{name}: {day!r} is not a local date (datetime.date)", field=name)
    if end <= start:
        raise PricingError(f"end: {end} must be after start ({start})", field="end")
    if start < tariff.versions[0].valid_from:
        raise PricingError(
            f"start: {start} is before tariff {tariff.name!r} begins "
            f"({tariff.versions[0].valid_from}); bill that time on the tariff before it",
            field="start",
        )
    period_start, period_end = _local_midnight(start, tariff), _local_midnight(end, tariff)
    ordered = _check_intervals(intervals, period_start, period_end)
    parts = _parts(tariff, start, end)
    zone = tariff.timezone

    # Sort every interval's kWh into its part and time-of-use period.
    by_part: list[dict[str, Decimal]] = [{} for _ in parts]
    exports = [Decimal(0) for _ in parts]
    consumption: dict[str, Decimal] = {}
    peak: Peak | None = None
    actual = estimated = Decimal(0)
    actual_count = estimated_count = 0
    estimated_dates: set[date] = set()
    # A local day's part and day type, and the period of a (part, day type, minute), are
    # the same for every interval that shares them: looked up once.
    peak_kwh, peak_minutes = _ZERO, 0
    local_days: dict[date, tuple[int, DayType | None, date | None]] = {}
    names: dict[tuple[int, DayType | None, date | None, int], str] = {}
    for interval in ordered:
        local = interval.start.astimezone(zone)
        day = local.date()
        known = local_days.get(day)
        if known is None:
            index = next(i for i, p in enumerate(parts) if p.start <= day < p.end)
            energy = parts[index].version.energy
            if isinstance(energy, TimeOfUseEnergy):
                seasonal = any(period.seasons for period in energy.periods)
                known = (index, tariff.day_type(day), day if seasonal else None)
            else:
                known = (index, None, None)
            local_days[day] = known
        index, day_type, season_day = known
        if day_type is None:
            name = ALL_DAY
        else:
            minute = local.hour * 60 + local.minute
            key = (index, day_type, season_day, minute)
            found = names.get(key)
            if found is None:
                energy = parts[index].version.energy
                assert isinstance(energy, TimeOfUseEnergy)
                found = names[key] = energy.period_at(day_type, day, minute).name
            name = found
        imported = interval.import_kwh
        bucket = by_part[index]
        bucket[name] = bucket.get(name, _ZERO) + imported
        consumption[name] = consumption.get(name, _ZERO) + imported
        exports[index] += interval.export_kwh
        if interval.is_estimated:
            estimated += imported
            estimated_count += 1
            estimated_dates.add(day)
        else:
            actual += imported
            actual_count += 1
        # No more kWh than the peak's in as many minutes: no more kW, no new peak.
        if peak is None or interval.minutes != peak_minutes or imported > peak_kwh:
            kw = interval.kw
            if peak is None or kw > peak.kw:
                peak = Peak(kw, interval.start, local)
                peak_kwh, peak_minutes = imported, interval.minutes

    invoice = _Invoice(tariff)
    for part, kwh_by_period in zip(parts, by_part, strict=True):
        version = part.version
        if version.standing_charge is not None:
            charge = version.standing_charge
            days = Decimal(part.days)
            rate = version.tax_rate(charge)
            invoice.add(part, "Standing charge", days, "day", charge.per_day, rate)
        _price_energy(invoice, part, kwh_by_period)
        if version.energy_tax is not None:
            levy = version.energy_tax
            kwh = sum(kwh_by_period.values(), Decimal(0))
            invoice.add(part, "Energy tax", kwh, "kWh", levy.per_kwh, version.tax_rate(levy))

    if peak is not None:
        at_peak = next(p for p in parts if p.start <= peak.local_start.date() < p.end)
        demand = at_peak.version.demand
        if demand is not None:
            invoice.add(
                _Part(at_peak.version, start, end),
                f"Demand charge (peak {peak.local_start.isoformat(timespec='minutes')})",
                peak.kw,
                "kW",
                demand.per_kw,
                at_peak.version.tax_rate(demand),
            )

    _add_minimum(invoice, parts, start, end)

    for part, exported in zip(parts, exports, strict=True):
        credit = part.version.export
        if credit is not None and exported > 0:
            rate = part.version.tax_rate(credit)
            invoice.add(part, "Export credit", exported, "kWh", -credit.per_kwh, rate)

    currency = tariff.currency
    subtotal = sum((line.amount for line in invoice.lines), Money.zero(currency))
    taxes = []
    for rate, name in invoice.tax_names.items():
        base = sum(
            (line.amount for line in invoice.lines if line.tax_rate == rate),
            Money.zero(currency),
        )
        taxes.append(TaxLine(name, rate, base, (base * rate).rounded()))
    tax = sum((t.amount for t in taxes), Money.zero(currency))
    return InvoiceDraft(
        tariff=tariff.name,
        currency=currency,
        timezone=zone.key,
        start=start,
        end=end,
        days=(end - start).days,
        lines=tuple(invoice.lines),
        taxes=tuple(taxes),
        consumption=tuple(
            PeriodConsumption(name, consumption[name])
            for name in _period_names(parts)
            if name in consumption
        ),
        import_kwh=actual + estimated,
        export_kwh=sum(exports, Decimal(0)),
        actual_kwh=actual,
        estimated_kwh=estimated,
        actual_intervals=actual_count,
        estimated_intervals=estimated_count,
        peak=peak,
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
        estimated_dates=tuple(sorted(estimated_dates)),
    )


def _period_names(parts: Sequence[_Part]) -> list[str]:
    """Consumption periods in the order the tariff lists them, each once."""
    names: dict[str, None] = {}
    for part in parts:
        energy = part.version.energy
        if isinstance(energy, TimeOfUseEnergy):
            names.update((p.name, None) for p in energy.periods)
        else:
            names[ALL_DAY] = None
    return list(names)


def _add_minimum(invoice: _Invoice, parts: list[_Part], start: date, end: date) -> None:
    with_minimum = [p for p in parts if p.version.minimum_charge is not None]
    if not with_minimum:
        return
    total_days = (end - start).days
    exact = sum(
        (
            p.version.minimum_charge.amount * p.days / total_days
            for p in with_minimum
            if p.version.minimum_charge is not None
        ),
        Decimal(0),
    )
    minimum = round_amount(exact, invoice.currency)
    charges = sum((line.amount.amount for line in invoice.lines), Decimal(0))
    if charges >= minimum:
        return
    last = with_minimum[-1]
    assert last.version.minimum_charge is not None
    invoice.add(
        _Part(last.version, start, end),
        f"Minimum charge top-up (minimum {minimum}, charges {charges})",
        Decimal(1),
        "period",
        minimum - charges,
        last.version.tax_rate(last.version.minimum_charge),
    )
