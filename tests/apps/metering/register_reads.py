"""Register reads for the metering tests: times, a 5-digit register, generated histories."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import strategies as st

from m2mhub.apps.metering.consumption import Read, Register

MINUTE = 60_000
QUARTER = 15 * MINUTE
HOUR = 60 * MINUTE
FIVE_DIGITS = Register.of_digits(5, 3)  # 99999.999, wraps at 100000
MODULUS = Decimal(100_000)
T0 = 1_774_224_000_000  # 2026-03-23T00:00Z, a Monday; its week has the spring clock change


def ms(text: str) -> int:
    """ISO 8601 (UTC when no offset is given) -> UTC milliseconds."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@st.composite
def meter_history(draw: st.DrawFn, *, resets: bool, aligned: bool) -> tuple[list[Read], Decimal]:
    """Reads of a 5-digit register and the consumption they stand for (increments
    summed, rollovers counted past the maximum, resets contributing nothing).

    The first and last reads sit on quarter-hour boundaries so every interval
    between them is covered; with ``aligned`` all of them do.
    """
    value = draw(st.integers(0, 99_999_999)) * Decimal("0.001")
    ts = T0 + draw(st.integers(0, 7 * 96)) * QUARTER  # up to the clock change on Sunday
    reads = [Read(ts, value)]
    consumed = Decimal(0)
    for _ in range(draw(st.integers(1, 25))):
        if aligned:
            ts += draw(st.integers(1, 8)) * QUARTER
        else:
            ts += draw(st.integers(1, 120 * 60)) * 1000
        floor = max(Decimal(0), value - Decimal(90_000))
        if resets and draw(st.booleans()) and value - floor > Decimal("0.002"):
            # Unambiguously a reset: below the old value, too far to be a rollover.
            steps = int((value - floor) / Decimal("0.001")) - 1
            value = floor + draw(st.integers(1, steps)) * Decimal("0.001")
        else:
            step = draw(st.integers(0, 5_000_000)) * Decimal("0.001")
            consumed += step
            value = (value + step) % MODULUS
        reads.append(Read(ts, value))
    if not aligned:
        ts = (ts // QUARTER + 1) * QUARTER
        step = draw(st.integers(0, 5_000_000)) * Decimal("0.001")
        consumed += step
        reads.append(Read(ts, (value + step) % MODULUS))
    return reads, consumed
