"""What every simulated device model shares: fixed ticks, seeded randomness, local time.

A model's state advances in fixed ticks aligned to the epoch, whatever the
report interval: reporting every 10 s or every hour, or running the clock 60
times faster, walks the same ticks and draws the same random numbers, so the
same device time gives the same state. Two random streams are drawn from the
device's generator: one drives the process (loads, stops, refills), the other
only the measurement noise of each report, so how often a device reports never
changes what happens to it.
"""

from __future__ import annotations

import abc
import math
import random
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar, Final, Generic, TypeAlias, TypeVar
from zoneinfo import ZoneInfo

import msgspec

from m2mhub.core.values import Value

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
#: 1970-01-01, day 0 of the epoch, was a Thursday (Monday is 0).
_EPOCH_WEEKDAY: Final = 3

P = TypeVar("P", bound=msgspec.Struct)


def device_rng(seed: int | str, device_id: str) -> random.Random:
    """The generator of one device: the same seed and id give the same numbers on every run.

    String seeds are hashed with SHA-512 by :class:`random.Random`, so this does
    not depend on ``PYTHONHASHSEED``.
    """
    return random.Random(f"{seed}:{device_id}")


class LocalTime:
    """Local hour of day and weekday of a UTC instant in one time zone."""

    def __init__(self, tz: tzinfo | str = UTC) -> None:
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._hour_key = -1
        self._offset_ms = 0

    def _local_ms(self, t_ms: int) -> int:
        key = t_ms // HOUR_MS
        if key != self._hour_key:  # offsets change on the hour at most: compute once per hour
            offset = datetime.fromtimestamp(key * 3600, UTC).astimezone(self.tz).utcoffset()
            self._offset_ms = int(offset.total_seconds() * 1000) if offset else 0
            self._hour_key = key
        return t_ms + self._offset_ms

    def hour(self, t_ms: int) -> float:
        """Hours since local midnight, in [0, 24)."""
        return (self._local_ms(t_ms) % DAY_MS) / HOUR_MS

    def day(self, t_ms: int) -> int:
        """Local days since the epoch: changes at local midnight."""
        return self._local_ms(t_ms) // DAY_MS

    def weekday(self, t_ms: int) -> int:
        """Local day of the week, Monday 0 to Sunday 6."""
        return (self.day(t_ms) + _EPOCH_WEEKDAY) % 7

    def is_weekend(self, t_ms: int) -> bool:
        return self.weekday(t_ms) >= 5


def relax(
    x: float, mean: float, sigma: float, tau_s: float, dt_s: float, rng: random.Random
) -> float:
    """One step of an Ornstein-Uhlenbeck process: noise that wanders back to ``mean``.

    Exact for any ``dt_s``: the stationary spread is ``sigma``, the memory ``tau_s``.
    """
    decay = math.exp(-dt_s / tau_s)
    return mean + (x - mean) * decay + sigma * math.sqrt(1 - decay * decay) * rng.gauss(0, 1)


def approach(x: float, target: float, tau_s: float, dt_s: float) -> float:
    """First-order lag: ``x`` moves toward ``target`` with time constant ``tau_s``."""
    return target + (x - target) * math.exp(-dt_s / tau_s)


def smoothstep(x: float) -> float:
    """0 below 0, 1 above 1, an S-curve between."""
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def in_hours(hour: float, start: float, end: float) -> bool:
    """True when ``hour`` is in [start, end), which may wrap past midnight."""
    return start <= hour < end if start <= end else hour >= start or hour < end


class SimModel(abc.ABC, Generic[P]):
    """A simulated device: ``step(ts_ms)`` returns what it reports at ``ts_ms``.

    An empty dict means the device stays silent at that instant (a gap): send
    nothing. Subclasses set ``tick_ms``, implement :meth:`_start`,
    :meth:`_advance` (one tick of physics) and :meth:`_read` (one report), and
    draw from ``self.process`` for what happens and from ``self.noise`` for
    measurement errors only. Incident times (``..._at_h``) count hours from
    ``origin_ms``, which defaults to the first step.
    """

    #: Length of one tick of physics.
    tick_ms: ClassVar[int] = 60_000
    #: The keys this model may report.
    keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        params: P,
        *,
        rng: random.Random | None = None,
        origin_ms: int | None = None,
        tz: tzinfo | str = UTC,
    ) -> None:
        self.params = params
        rng = rng if rng is not None else random.Random(0)
        self.process = random.Random(rng.getrandbits(64))
        self.noise = random.Random(rng.getrandbits(64))
        self.origin_ms = origin_ms
        self.local = LocalTime(tz)
        #: The instant the state describes (a tick boundary), None before the first step.
        self.now_ms: int | None = None
        self._setup()

    def _setup(self) -> None:
        """Set up what must exist before the first step (links, switches); optional."""

    def step(self, ts_ms: int) -> dict[str, Value]:
        """Advance the physics to ``ts_ms`` and return the report at that instant."""
        self.advance_to(ts_ms)
        return self._read(ts_ms)

    def advance_to(self, ts_ms: int) -> None:
        """Run the ticks up to ``ts_ms`` without reporting (a time earlier than now is ignored)."""
        tick = self.tick_ms
        if self.now_ms is None:
            if self.origin_ms is None:
                self.origin_ms = ts_ms
            # From the origin when it comes first, so the state at a given instant does not
            # depend on when the first report is asked for.
            first = min(ts_ms, self.origin_ms)
            self.now_ms = first - first % tick
            self._start(self.now_ms)
        dt_s = tick / 1000
        now = self.now_ms
        while now + tick <= ts_ms:
            now += tick
            self._advance(now, dt_s)
            self.now_ms = now

    def hours_since_origin(self, t_ms: int) -> float:
        """Device hours since the origin (negative before it)."""
        return (t_ms - (self.origin_ms or 0)) / HOUR_MS

    def _is_due(self, at_h: float | None, t_ms: int) -> bool:
        """True once an incident set ``at_h`` hours after the origin is due."""
        return at_h is not None and self.hours_since_origin(t_ms) >= at_h

    @abc.abstractmethod
    def _start(self, t_ms: int) -> None:
        """Set the initial state at ``t_ms``, the first tick."""

    @abc.abstractmethod
    def _advance(self, t_ms: int, dt_s: float) -> None:
        """Move the state over the tick of ``dt_s`` seconds that ends at ``t_ms``."""

    @abc.abstractmethod
    def _read(self, ts_ms: int) -> dict[str, Value]:
        """The report at ``ts_ms``: the state plus measurement noise."""


#: A model of any kind.
AnyModel: TypeAlias = SimModel[Any]
