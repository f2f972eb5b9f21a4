"""The values of meter data management: reads, registers, intervals, findings, edits.

They are frozen msgspec Structs, so the service can store and send them as they
are; :mod:`m2mhub.apps.metering.consumption` re-exports the public ones.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

import msgspec

from m2mhub.apps.metering import _grid
from m2mhub.core.errors import PayloadError

__all__ = [
    "QUANTUM",
    "Derivation",
    "Edit",
    "Flag",
    "FlagCode",
    "Interval",
    "MeterDataError",
    "Method",
    "Quality",
    "Read",
    "Register",
    "Span",
    "SpanKind",
    "Subject",
]

#: Precision of a derived interval quantity: a millionth of the unit (a milliwatt-hour
#: for kWh). Billing rounds later, once; this only bounds the digits carried.
QUANTUM: Final = Decimal("0.000001")
# Digits for the spreading arithmetic, well above a register's 10 or so, so a
# proportion of a step is exact to QUANTUM whatever the caller's decimal context.
_PRECISION: Final = 40


class MeterDataError(PayloadError):
    """Meter data or a meter data setting that cannot be used as given."""

    code = "invalid_meter_data"


def _as_decimal(value: Decimal | int | float | str, field: str) -> Decimal:
    if isinstance(value, bool):
        raise MeterDataError(f"{field}: {value!r} is a bool; pass a number", field=field)
    try:
        # A float is taken by its shortest repr (0.1 -> Decimal("0.1")): that is the
        # decimal the meter or the transport printed, not the binary approximation.
        result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise MeterDataError(
            f"{field}: {value!r} is not a number; pass a Decimal or a decimal string",
            field=field,
        ) from None
    if not result.is_finite():
        raise MeterDataError(f"{field}: {value!r} is not a finite number", field=field)
    return result


class Read(msgspec.Struct, frozen=True):
    """The register of a meter at one instant: ``ts`` in UTC milliseconds, ``value``
    in the register's unit.

    ``value`` is a :class:`~decimal.Decimal` because billing adds these up; build a
    read from telemetry (floats, strings) with :meth:`of`.
    """

    ts: int
    value: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.ts, int) or isinstance(self.ts, bool):
            raise MeterDataError(
                f"ts: {self.ts!r} is not UTC milliseconds; use Read.of() for a datetime",
                field="ts",
            )
        if not isinstance(self.value, Decimal) or not self.value.is_finite():
            raise MeterDataError(
                f"value: {self.value!r} is not a finite Decimal; use Read.of() for a "
                "float or a string",
                field="value",
            )

    @classmethod
    def of(cls, ts: int | datetime, value: Decimal | int | float | str) -> Read:
        """A read from an aware datetime or UTC ms, and a Decimal, int, float or string."""
        if isinstance(ts, datetime):
            if ts.tzinfo is None:
                raise MeterDataError(
                    f"ts: {ts.isoformat()} has no time zone; pass an aware datetime (UTC)",
                    field="ts",
                )
            ts = _grid.to_ms(ts)
        return cls(ts, _as_decimal(value, "value"))


class Register(msgspec.Struct, frozen=True):
    """How a register counts.

    ``maximum`` is the largest value it shows before it wraps to zero (99999.999
    for 5 digits and 3 decimals, see :meth:`of_digits`); None for a register that
    never wraps. A drop counts as a rollover when the step across the wrap is at
    most ``rollover_fraction`` of the register's range. ``import_only`` registers
    never run backwards, so a drop that is no rollover is a reset; a net register
    (``import_only=False``) runs backwards while exporting and its drops are
    negative consumption.
    """

    maximum: Decimal | None = None
    unit: str = "kWh"
    import_only: bool = True
    rollover_fraction: Decimal = Decimal("0.1")

    def __post_init__(self) -> None:
        if self.maximum is not None and not (
            isinstance(self.maximum, Decimal) and self.maximum.is_finite() and self.maximum > 0
        ):
            raise MeterDataError(
                f"maximum: {self.maximum!r} must be a positive Decimal such as "
                "Decimal('99999.999'), or None for a register that never wraps",
                field="maximum",
            )
        if not 0 < self.rollover_fraction < 1:
            raise MeterDataError(
                f"rollover_fraction: {self.rollover_fraction} must be between 0 and 1 "
                "(e.g. 0.1 for a tenth of the register's range)",
                field="rollover_fraction",
            )

    @classmethod
    def of_digits(
        cls, digits: int, decimals: int = 0, *, unit: str = "kWh", import_only: bool = True
    ) -> Register:
        """A register of ``digits`` whole digits and ``decimals`` decimals (5, 3 -> 99999.999)."""
        if digits <= 0 or decimals < 0:
            raise MeterDataError(
                f"digits: {digits} whole digits and {decimals} decimals; both must be "
                "counts, with at least one whole digit",
                field="digits",
            )
        maximum = Decimal(10**digits) - Decimal(1).scaleb(-decimals)
        return cls(maximum=maximum, unit=unit, import_only=import_only)

    @property
    def modulus(self) -> Decimal | None:
        """The value the register wraps at: ``maximum`` plus one step of its last digit."""
        if self.maximum is None:
            return None
        exponent = self.maximum.as_tuple().exponent
        assert isinstance(exponent, int)  # a finite Decimal, checked above
        return self.maximum + Decimal(1).scaleb(exponent)


class Quality(enum.StrEnum):
    """Where an interval's quantity comes from."""

    ACTUAL = "actual"
    ESTIMATED = "estimated"
    EDITED = "edited"
    #: No quantity: no reads cover the interval, or not closely enough.
    MISSING = "missing"


class Method(enum.StrEnum):
    """How an interval's quantity was obtained."""

    REGISTER = "register"
    LINEAR = "linear"
    PROFILE = "profile"
    MANUAL = "manual"


class FlagCode(enum.StrEnum):
    """Why a read or an interval needs attention."""

    ROLLOVER = "rollover"
    RESET = "reset"
    CONFLICT = "conflict"
    NO_PROFILE = "no_profile"
    HIGH = "high"
    LOW = "low"
    SPIKE = "spike"
    FROZEN = "frozen"
    NEGATIVE = "negative"
    GAP = "gap"
    FUTURE = "future"
    OUT_OF_RANGE = "out_of_range"


class Subject(enum.StrEnum):
    """What a :class:`Flag` is about."""

    READ = "read"
    INTERVAL = "interval"


class Flag(msgspec.Struct, frozen=True):
    """One finding, with a code for machines and a sentence for people.

    For a read, ``end`` is its time and ``value`` its value; ``start`` is the same
    time, or the previous read's for a step between two reads (a rollover, a reset).
    For intervals, ``start`` and ``end`` bound the intervals concerned and ``value``
    is the quantity at fault.
    """

    code: FlagCode
    subject: Subject
    start: int
    end: int
    message: str
    value: Decimal | None = None


class Edit(msgspec.Struct, frozen=True):
    """A person's correction of one interval: the quantity it should have.

    ``start`` is the interval's start (UTC ms), ``at`` when the edit was made (UTC
    ms), ``author`` who made it and ``reason`` why. Apply edits with
    :func:`m2mhub.apps.metering.edits.apply_edits`.
    """

    start: int
    quantity: Decimal
    author: str
    at: int
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.quantity, Decimal) or not self.quantity.is_finite():
            raise MeterDataError(
                f"quantity: {self.quantity!r} is not a finite Decimal; give the corrected "
                "quantity as a Decimal",
                field="quantity",
            )
        if not self.author.strip() or not self.reason.strip():
            raise MeterDataError(
                "author, reason: an edit needs who made it and why, for the audit trail",
                field="author" if not self.author.strip() else "reason",
            )


class Interval(msgspec.Struct, frozen=True):
    """The quantity consumed from ``start`` to ``end`` (UTC ms, end exclusive).

    ``quantity`` is None when the interval is ``missing``. ``method`` says how it
    was obtained; ``flags`` name what happened inside it (a rollover, a reset, an
    estimate without a profile). An edited interval keeps the interval it replaced
    in ``original`` and the :class:`Edit` in ``edit``.
    """

    start: int
    end: int
    quantity: Decimal | None
    quality: Quality
    method: Method | None = None
    flags: tuple[FlagCode, ...] = ()
    original: Interval | None = None
    edit: Edit | None = None


class SpanKind(enum.StrEnum):
    """How the register moved between two consecutive reads."""

    COUNT = "count"
    ROLLOVER = "rollover"
    RESET = "reset"


class Span(msgspec.Struct, frozen=True):
    """The register between two consecutive reads.

    ``delta`` is the quantity consumed (across a rollover, counted past the
    maximum), None after a reset. ``is_gap`` is True when the reads are further
    apart than the derivation's ``max_span``: the total is known, its spread is not.
    """

    start: int
    end: int
    first: Decimal
    last: Decimal
    delta: Decimal | None
    kind: SpanKind
    is_gap: bool


class Derivation(msgspec.Struct, frozen=True):
    """The result of :func:`derive`: the intervals and everything needed to check,
    estimate and explain them.

    ``reads`` are the reads used (sorted, one per instant), ``spans`` the steps
    between them, ``flags`` the rollovers, resets and conflicting reads, and
    ``start``/``end`` the bounds of ``intervals`` (None when there are none).
    """

    register: Register
    length: timedelta
    tz: str
    start: int | None
    end: int | None
    reads: tuple[Read, ...]
    spans: tuple[Span, ...]
    intervals: tuple[Interval, ...]
    flags: tuple[Flag, ...]
