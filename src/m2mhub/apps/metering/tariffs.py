"""Tariffs as data: what a tariff file holds, validated with the field path named.

A tariff has a currency, a time zone, an optional holiday calendar and one or
more *versions*. Each version applies from its ``valid_from`` (a local date in
the tariff's time zone, from local midnight) until the next version's. A
version is complete on its own: a price change repeats every component.

A version's components (only ``energy`` is required)::

    name: Residential time-of-use
    currency: EUR
    timezone: Europe/Amsterdam
    holidays: {country: NL, subdivision: null, extra: [2026-12-31]}
    versions:
      - valid_from: 2026-01-01
        tax: {name: VAT, rate: "0.21"}              # applies to every line
        standing_charge: {per_day: "0.45"}          # per local day
        energy:                                     # one of three types
          type: flat                                # price_per_kwh
          # type: tiered -> blocks: [{up_to_kwh: "200", price_per_kwh: "0.20"},
          #                          {price_per_kwh: "0.30"}]   (last block open)
          # type: time_of_use -> seasons: {summer: {from: "04-01", to: "09-30"}}
          #   periods: [{name: peak, price_per_kwh: "0.30", days: [weekday],
          #              seasons: [summer], hours: [{from: "07:00", to: "23:00"}]},
          #             {name: off-peak, price_per_kwh: "0.20"}]
          price_per_kwh: "0.25"
        energy_tax: {per_kwh: "0.1088"}            # per imported kWh
        demand: {per_kw: "4.00"}                    # on the period's peak interval
        minimum_charge: {amount: "20.00"}           # per billing period
        export: {per_kwh: "0.07", tax_rate: "0"}    # credit per exported kWh

Every component may carry its own ``tax_rate``, overriding ``tax.rate``.

Numbers are decimals: write them as strings (``"0.25"``) in a mapping, or load
YAML text with :func:`parse_tariff_yaml`, which reads unquoted decimals exactly.
A float in a mapping is refused, since ``0.1`` as a float is not 0.1.

Tiered blocks are sized per calendar month: a period that covers part of a
month gets that share of each block (see :mod:`m2mhub.apps.metering.pricing`).
Inclining or declining blocks are the same data with rising or falling prices.

Time-of-use periods partition the calendar: every local time belongs to
exactly one period, so their order does not matter. A period matches when the
day type (``weekday``, ``weekend`` = Saturday and Sunday, ``holiday`` = a
public holiday or an extra date, which takes precedence over the other two),
the season and the local clock range (``from`` inclusive, ``to`` exclusive,
may wrap midnight, ``"24:00"`` allowed) all match; an omitted condition
matches everything. Day type and season are those of the local date, so the
hours after midnight of a 23:00-07:00 range belong to the next day (a Friday
night's 02:00 is a weekend hour).

Loading checks the calendar and refuses, naming the paths at fault and an
example: a local time of some day type that no period covers (a gap), a local
time that two periods cover (an overlap: a catch-all last period is one, list
its complement instead, e.g. ``{days: [weekday], hours: [{from: "23:00", to:
"07:00"}]}`` and ``{days: [weekend, holiday]}``), seasons (inclusive
month-day ranges, which may wrap the year end) that overlap or leave a day of
a leap year out, and versions whose ``valid_from`` repeat or are out of order.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, TypeAlias, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml

from m2mhub.apps.metering.money import PRICE_PLACES, minor_unit
from m2mhub.core.errors import PayloadError

__all__ = [
    "Block",
    "DayType",
    "DemandCharge",
    "Energy",
    "EnergyTax",
    "ExportCredit",
    "FlatEnergy",
    "HolidayCalendar",
    "MinimumCharge",
    "Season",
    "StandingCharge",
    "Tariff",
    "TariffError",
    "TariffVersion",
    "Tax",
    "TieredEnergy",
    "TimeOfUseEnergy",
    "TouPeriod",
    "load_tariff",
    "parse_tariff_yaml",
]

DayType: TypeAlias = Literal["weekday", "weekend", "holiday"]
DAY_TYPES: Final[tuple[DayType, ...]] = get_args(DayType)
_MINUTES_PER_DAY: Final = 24 * 60
_CLOCK: Final = re.compile(r"^(\d{1,2}):([0-5]\d)$")
_MONTH_DAY: Final = re.compile(r"^(\d\d)-(\d\d)$")
_LEAP_YEAR: Final = 2024  # a year with 29 February, to check month-days and coverage
_C = TypeVar("_C")


class TariffError(PayloadError):
    """A tariff that cannot be accepted; ``field`` is the path of the culprit."""

    code = "invalid_tariff"


# --- the model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Season:
    """Inclusive month-day range, e.g. 10-01 to 03-31 (wraps the year end)."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]

    def contains(self, day: date) -> bool:
        """Whether ``day`` falls in this season."""
        md = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end


@dataclass(frozen=True, slots=True)
class ClockRange:
    """Local clock minutes ``[start, end)`` of a day; wraps midnight when end <= start."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        """Whether the minute of the day (0..1439) is in the range."""
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True, slots=True)
class TouPeriod:
    """One time-of-use period: its price and when it applies (empty = always)."""

    name: str
    price_per_kwh: Decimal
    days: frozenset[DayType]
    seasons: tuple[Season, ...]
    hours: tuple[ClockRange, ...]

    def matches(self, day_type: DayType, day: date, minute: int) -> bool:
        """Whether a local time (day type, local date, minute of day) is in this period."""
        return (
            day_type in self.days
            and (not self.seasons or any(s.contains(day) for s in self.seasons))
            and (not self.hours or any(h.contains(minute) for h in self.hours))
        )


@dataclass(frozen=True, slots=True)
class FlatEnergy:
    """One price for every kWh."""

    price_per_kwh: Decimal
    tax_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """A tier: kWh up to ``up_to_kwh`` (per calendar month, cumulative) at a price."""

    up_to_kwh: Decimal | None  # None: the open last block
    price_per_kwh: Decimal


@dataclass(frozen=True, slots=True)
class TieredEnergy:
    """Blocks filled in order; the last block is open-ended."""

    blocks: tuple[Block, ...]
    tax_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TimeOfUseEnergy:
    """Prices by local time: exactly one period matches each local time."""

    periods: tuple[TouPeriod, ...]
    tax_rate: Decimal | None = None

    def period_at(self, day_type: DayType, day: date, minute: int) -> TouPeriod:
        """The period that prices a local time; loading guarantees there is one."""
        for period in self.periods:
            if period.matches(day_type, day, minute):
                return period
        raise AssertionError(f"no period covers {day_type} {day} minute {minute}")


Energy: TypeAlias = FlatEnergy | TieredEnergy | TimeOfUseEnergy


@dataclass(frozen=True, slots=True)
class StandingCharge:
    """A fixed charge per local day (a 23 h or 25 h day is one day)."""

    per_day: Decimal
    tax_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class EnergyTax:
    """A levy per imported kWh, shown as its own line (and itself subject to tax)."""

    per_kwh: Decimal
    tax_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class DemandCharge:
    """A price per kW of the billing period's peak interval."""

    per_kw: Decimal
    tax_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class MinimumCharge:
    """The least the charges of a billing period add up to (before export credit)."""

    amount: Decimal
    tax_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExportCredit:
    """A credit per exported kWh."""

    per_kwh: Decimal
    tax_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Tax:
    """The tax every line bears unless its component names another rate (0.21 = 21 %)."""

    name: str = "VAT"
    rate: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class TariffVersion:
    """The prices in force from ``valid_from`` (a local date) until the next version."""

    valid_from: date
    energy: Energy
    tax: Tax = Tax()
    standing_charge: StandingCharge | None = None
    energy_tax: EnergyTax | None = None
    demand: DemandCharge | None = None
    minimum_charge: MinimumCharge | None = None
    export: ExportCredit | None = None

    def tax_rate(
        self,
        component: Energy
        | StandingCharge
        | EnergyTax
        | DemandCharge
        | MinimumCharge
        | ExportCredit,
    ) -> Decimal:
        """The tax rate a component's lines bear: its own, else the version's."""
        return self.tax.rate if component.tax_rate is None else component.tax_rate


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """Public holidays of a country (and subdivision) plus extra dates."""

    country: str | None = None
    subdivision: str | None = None
    extra: frozenset[date] = frozenset()
    _calendar: holidays.HolidayBase | None = field(
        default=None, compare=False, hash=False, repr=False
    )

    def is_holiday(self, day: date) -> bool:
        """Whether ``day`` is a public holiday or one of the extra dates."""
        # The holidays calendar fills in years as they are asked for.
        return day in self.extra or (self._calendar is not None and day in self._calendar)


@dataclass(frozen=True, slots=True)
class Tariff:
    """A named tariff: currency, time zone, holiday calendar and dated versions."""

    name: str
    currency: str
    timezone: ZoneInfo
    versions: tuple[TariffVersion, ...]
    holidays: HolidayCalendar = HolidayCalendar()

    def day_type(self, day: date) -> DayType:
        """``holiday`` before ``weekend`` (Saturday, Sunday) before ``weekday``."""
        if self.holidays.is_holiday(day):
            return "holiday"
        return "weekend" if day.weekday() >= 5 else "weekday"

    def version_at(self, day: date) -> TariffVersion:
        """The version in force on a local date; ``TariffError`` before the first one."""
        found: TariffVersion | None = None
        for version in self.versions:
            if version.valid_from <= day:
                found = version
        if found is None:
            first = self.versions[0].valid_from
            raise TariffError(
                f"tariff {self.name!r} has no version in force on {day}; "
                f"its first version is valid from {first}",
                field="versions[0].valid_from",
            )
        return found


# --- loading ---------------------------------------------------------------------------


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _fail(path: str, message: str) -> TariffError:
    return TariffError(f"{path}: {message}", field=path)


def _mapping(value: object, path: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path or "tariff", f"expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise _fail(_at(path, str(key)), f"unknown field; expected one of {', '.join(allowed)}")
    return value


def _required(data: Mapping[str, Any], key: str, path: str) -> Any:
    if data.get(key) is None:
        raise _fail(_at(path, key), "is required")
    return data[key]


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _fail(path, f"expected a list, got {type(value).__name__}")
    return list(value)


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, "expected a non-empty text")
    return value.strip()


def _decimal(
    value: object,
    path: str,
    *,
    places: int | None = PRICE_PLACES,
    positive: bool = False,
    at_most_one: bool = False,
) -> Decimal:
    if isinstance(value, float):
        raise _fail(
            path,
            f"{value!r} is a float; quote it ('{value}') or load the YAML with "
            "parse_tariff_yaml so the decimal is read exactly",
        )
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise _fail(path, f"expected a decimal number such as '0.25', got {value!r}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise _fail(path, f"{value!r} is not a decimal number; write e.g. '0.25'") from None
    if not number.is_finite():
        raise _fail(path, f"{value!r} is not a finite number")
    exponent = number.as_tuple().exponent
    if places is not None and isinstance(exponent, int) and -exponent > places:
        raise _fail(path, f"{value} has more than {places} decimal places")
    if number < 0 or (positive and number == 0):
        raise _fail(path, f"{value} must be {'above' if positive else 'at least'} 0")
    if at_most_one and number > 1:
        raise _fail(path, f"{value} is a rate; write 21 % as '0.21'")
    return number


def _date(value: object, path: str) -> date:
    if isinstance(value, datetime):
        raise _fail(path, f"{value} has a time; write a local date such as 2026-01-01")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail(path, f"{value!r} is not a date; write YYYY-MM-DD, e.g. 2026-01-01")


def _month_day(value: object, path: str) -> tuple[int, int]:
    match = _MONTH_DAY.match(value.strip()) if isinstance(value, str) else None
    if match:
        month, day = int(match.group(1)), int(match.group(2))
        try:
            date(_LEAP_YEAR, month, day)
        except ValueError:
            pass
        else:
            return month, day
    raise _fail(path, f"{value!r} is not a month-day; write MM-DD in quotes, e.g. '04-01'")


def _clock(value: object, path: str) -> int:
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if match:
        minute = int(match.group(1)) * 60 + int(match.group(2))
        if minute <= _MINUTES_PER_DAY:
            return minute
    raise _fail(path, f"{value!r} is not a local time; write HH:MM in quotes, e.g. '07:00'")


def _tax_rate(data: Mapping[str, Any], path: str) -> Decimal | None:
    value = data.get("tax_rate")
    return None if value is None else _decimal(value, _at(path, "tax_rate"), at_most_one=True)


def _blocks(data: Mapping[str, Any], path: str) -> tuple[Block, ...]:
    items = _list(_required(data, "blocks", path), _at(path, "blocks"))
    if not items:
        raise _fail(_at(path, "blocks"), "needs at least one block")
    blocks: list[Block] = []
    previous = Decimal(0)
    for i, item in enumerate(items):
        where = _at(_at(path, "blocks"), i)
        block = _mapping(item, where, ("up_to_kwh", "price_per_kwh"))
        price = _decimal(_required(block, "price_per_kwh", where), _at(where, "price_per_kwh"))
        is_last = i == len(items) - 1
        if is_last:
            if block.get("up_to_kwh") is not None:
                raise _fail(
                    _at(where, "up_to_kwh"),
                    "the last block is open-ended; leave up_to_kwh out",
                )
            blocks.append(Block(None, price))
            continue
        where_up = _at(where, "up_to_kwh")
        up_to = _decimal(_required(block, "up_to_kwh", where), where_up, places=3, positive=True)
        if up_to <= previous:
            raise _fail(where_up, f"{up_to} must be above the previous block's {previous}")
        previous = up_to
        blocks.append(Block(up_to, price))
    return tuple(blocks)


def _seasons(data: Mapping[str, Any], path: str) -> dict[str, Season]:
    raw = data.get("seasons")
    if raw is None:
        return {}
    where = _at(path, "seasons")
    if not isinstance(raw, Mapping):
        raise _fail(where, "expected a mapping of season name to {from: MM-DD, to: MM-DD}")
    seasons: dict[str, Season] = {}
    for name, item in raw.items():
        at = _at(where, str(name))
        season = _mapping(item, at, ("from", "to"))
        start = _month_day(_required(season, "from", at), _at(at, "from"))
        end = _month_day(_required(season, "to", at), _at(at, "to"))
        seasons[str(name)] = Season(str(name), start, end)
    _check_seasons(seasons, where)
    return seasons


def _check_seasons(seasons: Mapping[str, Season], path: str) -> None:
    """Seasons, when given, hold every day of a leap year exactly once."""
    if not seasons:
        return
    uncovered: list[date] = []
    for day in _leap_year_days():
        holding = [s for s in seasons.values() if s.contains(day)]
        if len(holding) > 1:
            first, second = holding[0], holding[1]
            raise _fail(
                _at(path, second.name),
                f"overlaps season {first.name} on {day:%m-%d}; "
                "seasons must not share a day, end one the day before the other starts",
            )
        if not holding:
            uncovered.append(day)
    if uncovered:
        gap_start = uncovered[0]
        gap_end = gap_start
        for day in uncovered[1:]:
            if day.toordinal() != gap_end.toordinal() + 1:
                break
            gap_end = day
        raise _fail(
            path,
            f"no season covers {gap_start:%m-%d} to {gap_end:%m-%d}; "
            "seasons must cover the whole year (29 February included), add one for these days",
        )


def _leap_year_days() -> list[date]:
    first = date(_LEAP_YEAR, 1, 1).toordinal()
    return [date.fromordinal(n) for n in range(first, date(_LEAP_YEAR, 12, 31).toordinal() + 1)]


def _periods(data: Mapping[str, Any], path: str) -> tuple[TouPeriod, ...]:
    seasons = _seasons(data, path)
    where = _at(path, "periods")
    items = _list(_required(data, "periods", path), where)
    if not items:
        raise _fail(where, "needs at least one period")
    periods: list[TouPeriod] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        at = _at(where, i)
        raw = _mapping(item, at, ("name", "price_per_kwh", "days", "seasons", "hours"))
        name = _text(_required(raw, "name", at), _at(at, "name"))
        if name in names:
            raise _fail(_at(at, "name"), f"{name!r} is used by another period")
        names.add(name)
        price = _decimal(_required(raw, "price_per_kwh", at), _at(at, "price_per_kwh"))
        days: set[DayType] = set(DAY_TYPES)
        if raw.get("days") is not None:
            days = set()
            for j, day in enumerate(_list(raw["days"], _at(at, "days"))):
                if day not in DAY_TYPES:
                    raise _fail(
                        _at(_at(at, "days"), j),
                        f"{day!r} is not a day type; use {', '.join(DAY_TYPES)}",
                    )
                days.add(day)
        chosen: list[Season] = []
        for j, season in enumerate(_list(raw.get("seasons") or [], _at(at, "seasons"))):
            if season not in seasons:
                known = ", ".join(seasons) or "none are defined; add energy.seasons"
                raise _fail(
                    _at(_at(at, "seasons"), j), f"unknown season {season!r}; known: {known}"
                )
            chosen.append(seasons[season])
        hours: list[ClockRange] = []
        for j, item_hours in enumerate(_list(raw.get("hours") or [], _at(at, "hours"))):
            at_h = _at(_at(at, "hours"), j)
            rng = _mapping(item_hours, at_h, ("from", "to"))
            start = _clock(_required(rng, "from", at_h), _at(at_h, "from"))
            end = _clock(_required(rng, "to", at_h), _at(at_h, "to"))
            if start == _MINUTES_PER_DAY:
                raise _fail(_at(at_h, "from"), "24:00 can only end a range; start at 00:00")
            if start == end % _MINUTES_PER_DAY:
                raise _fail(at_h, "from equals to; leave hours out for the whole day")
            hours.append(ClockRange(start, end))
        periods.append(TouPeriod(name, price, frozenset(days), tuple(chosen), tuple(hours)))
    _check_overlaps(periods, where)
    _check_coverage(periods, where)
    return tuple(periods)


def _in_hours(period: TouPeriod, minute: int) -> bool:
    return not period.hours or any(h.contains(minute) for h in period.hours)


def _clock_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _check_overlaps(periods: Sequence[TouPeriod], path: str) -> None:
    """No local time may fall in two periods.

    Seasons are disjoint (see :func:`_check_seasons`), so two periods share a day
    exactly when they share a day type and a season (or one names no season); the
    clock is then tried on each stretch between range edges.
    """
    for j, later in enumerate(periods):
        for i, earlier in enumerate(periods[:j]):
            shared_days = [d for d in DAY_TYPES if d in earlier.days and d in later.days]
            if not shared_days:
                continue
            season_text = ""
            if earlier.seasons or later.seasons:
                names = [s.name for s in earlier.seasons or later.seasons]
                if earlier.seasons and later.seasons:
                    other = {s.name for s in later.seasons}
                    names = [n for n in names if n in other]
                if not names:
                    continue
                season_text = f" in season {names[0]}"
            stretch = _shared_stretch(earlier, later)
            if stretch is None:
                continue
            start, end = stretch
            raise _fail(
                _at(path, j),
                f"overlaps periods[{i}] ({earlier.name}) on {shared_days[0]}s "
                f"{_clock_text(start)}-{_clock_text(end)}{season_text}; "
                "every local time must belong to one period only, so narrow one of them",
            )


def _shared_stretch(a: TouPeriod, b: TouPeriod) -> tuple[int, int] | None:
    """The first run of local minutes both periods' clock ranges hold, if any."""
    edges = sorted(
        {0, _MINUTES_PER_DAY}
        | {m % _MINUTES_PER_DAY for p in (a, b) for h in p.hours for m in (h.start, h.end)}
    )
    found: tuple[int, int] | None = None
    for start, end in itertools.pairwise(edges):
        both = _in_hours(a, start) and _in_hours(b, start)
        if both and found is None:
            found = (start, end)
        elif both and found is not None and found[1] == start:
            found = (found[0], end)
        elif found is not None:
            break
    return found


def _check_coverage(periods: Sequence[TouPeriod], path: str) -> None:
    """Every (day type, month-day, local minute) must fall in some period.

    Coverage can only change at a clock-range edge, so those minutes (and 00:00)
    are the only ones to try on each day of a leap year.
    """
    edges = sorted(
        {0} | {m % _MINUTES_PER_DAY for p in periods for h in p.hours for m in (h.start, h.end)}
    )
    for day in _leap_year_days():
        for day_type in DAY_TYPES:
            for minute in edges:
                if not any(p.matches(day_type, day, minute) for p in periods):
                    raise _fail(
                        path,
                        f"no period covers a {day_type} on {day:%m-%d} at "
                        f"{_clock_text(minute)}; add a period (or widen one) for it",
                    )


def _energy(value: object, path: str) -> Energy:
    if not isinstance(value, Mapping):
        raise _fail(path, "expected a mapping with type: flat, tiered or time_of_use")
    kind = value.get("type")
    if kind == "flat":
        data = _mapping(value, path, ("type", "price_per_kwh", "tax_rate"))
        price = _decimal(_required(data, "price_per_kwh", path), _at(path, "price_per_kwh"))
        return FlatEnergy(price, _tax_rate(data, path))
    if kind == "tiered":
        data = _mapping(value, path, ("type", "blocks", "tax_rate"))
        return TieredEnergy(_blocks(data, path), _tax_rate(data, path))
    if kind == "time_of_use":
        data = _mapping(value, path, ("type", "seasons", "periods", "tax_rate"))
        return TimeOfUseEnergy(_periods(data, path), _tax_rate(data, path))
    raise _fail(
        _at(path, "type"), f"{kind!r} is not an energy type; use flat, tiered or time_of_use"
    )


def _component(
    data: Mapping[str, Any],
    key: str,
    path: str,
    price_key: str,
    build: Callable[[Decimal, Decimal | None], _C],
    *,
    places: int = PRICE_PLACES,
) -> _C | None:
    if data.get(key) is None:
        return None
    where = _at(path, key)
    raw = _mapping(data[key], where, (price_key, "tax_rate"))
    price = _decimal(_required(raw, price_key, where), _at(where, price_key), places=places)
    return build(price, _tax_rate(raw, where))


def _version(value: object, path: str, currency: str) -> TariffVersion:
    data = _mapping(
        value,
        path,
        (
            "valid_from",
            "tax",
            "energy",
            "standing_charge",
            "energy_tax",
            "demand",
            "minimum_charge",
            "export",
        ),
    )
    valid_from = _date(_required(data, "valid_from", path), _at(path, "valid_from"))
    tax = Tax()
    if data.get("tax") is not None:
        where = _at(path, "tax")
        raw = _mapping(data["tax"], where, ("name", "rate"))
        name = _text(raw["name"], _at(where, "name")) if raw.get("name") is not None else "VAT"
        rate = _decimal(_required(raw, "rate", where), _at(where, "rate"), at_most_one=True)
        tax = Tax(name, rate)
    return TariffVersion(
        valid_from=valid_from,
        energy=_energy(_required(data, "energy", path), _at(path, "energy")),
        tax=tax,
        standing_charge=_component(data, "standing_charge", path, "per_day", StandingCharge),
        energy_tax=_component(data, "energy_tax", path, "per_kwh", EnergyTax),
        demand=_component(data, "demand", path, "per_kw", DemandCharge),
        minimum_charge=_component(
            data,
            "minimum_charge",
            path,
            "amount",
            MinimumCharge,
            places=minor_unit(currency),
        ),
        export=_component(data, "export", path, "per_kwh", ExportCredit),
    )


def _calendar(value: object) -> HolidayCalendar:
    if value is None:
        return HolidayCalendar()
    data = _mapping(value, "holidays", ("country", "subdivision", "extra"))
    extra = frozenset(
        _date(item, _at("holidays.extra", i))
        for i, item in enumerate(_list(data.get("extra") or [], "holidays.extra"))
    )
    if data.get("country") is None:
        if data.get("subdivision") is not None:
            raise _fail("holidays.country", "is required when a subdivision is given")
        return HolidayCalendar(extra=extra)
    country = _text(data["country"], "holidays.country").upper()
    subdivision = data.get("subdivision")
    if subdivision is not None:
        subdivision = _text(subdivision, "holidays.subdivision")
    try:
        calendar = holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:
        where = "holidays.subdivision" if "subdivision" in str(exc) else "holidays.country"
        raise _fail(
            where,
            f"{exc}; use an ISO 3166 country code (NL) and, where needed, a subdivision (DE: BY)",
        ) from None
    return HolidayCalendar(country, subdivision, extra, calendar)


def load_tariff(data: Mapping[str, Any]) -> Tariff:
    """Build a :class:`Tariff` from a mapping shaped like the module docstring.

    Raises :class:`TariffError` whose ``field`` is the path of the first value at
    fault, e.g. ``versions[1].energy.blocks[0].up_to_kwh``.
    """
    top = _mapping(data, "", ("name", "currency", "timezone", "holidays", "versions"))
    name = _text(_required(top, "name", ""), "name")
    currency = _required(top, "currency", "")
    if not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)):
        raise _fail("currency", f"{currency!r} is not an ISO 4217 code; write e.g. EUR")
    zone_name = _text(_required(top, "timezone", ""), "timezone")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(
            "timezone", f"{zone_name!r} is not an IANA time zone; write e.g. Europe/Amsterdam"
        ) from None
    items = _list(_required(top, "versions", ""), "versions")
    if not items:
        raise _fail("versions", "needs at least one version")
    versions: list[TariffVersion] = []
    for i, item in enumerate(items):
        version = _version(item, _at("versions", i), currency)
        if versions and version.valid_from == versions[-1].valid_from:
            raise _fail(
                _at(_at("versions", i), "valid_from"),
                f"{version.valid_from} repeats versions[{i - 1}].valid_from; "
                "each version needs its own start date, merge the two or change one",
            )
        if versions and version.valid_from < versions[-1].valid_from:
            raise _fail(
                _at(_at("versions", i), "valid_from"),
                f"{version.valid_from} must be after versions[{i - 1}].valid_from "
                f"({versions[-1].valid_from}); list versions oldest first",
            )
        versions.append(version)
    return Tariff(name, currency, zone, tuple(versions), _calendar(top.get("holidays")))


class _DecimalLoader(yaml.SafeLoader):
    """YAML that reads unquoted decimals as ``Decimal`` and ``7:00`` as text.

    YAML 1.1 would make ``0.1`` a binary float and ``7:00`` the base-60 number 420.
    """


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | str:
    assert isinstance(node, yaml.ScalarNode)  # the float tag is only resolved on scalars
    text = str(loader.construct_scalar(node))
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        return text  # .inf, .nan or 1:30.5: refused later with the field named


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int | str:
    assert isinstance(node, yaml.ScalarNode)  # the int tag is only resolved on scalars
    text = str(loader.construct_scalar(node))
    if ":" in text:
        return text
    return int(loader.construct_yaml_int(node))


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_DecimalLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def parse_tariff_yaml(text: str) -> Tariff:
    """Load a tariff from YAML text, reading every decimal exactly; see :func:`load_tariff`."""
    try:
        data = yaml.load(text, Loader=_DecimalLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TariffError(f"tariff: not valid YAML: {exc}", field="tariff") from None
    return load_tariff(data)
