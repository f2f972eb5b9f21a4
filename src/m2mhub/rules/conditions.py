"""Conditions: a rule's data in, its on/off state out. Pure functions, no I/O.

Each (rule, device) has a :class:`RuleState`. A test (threshold, rate, expression,
geofence, connection, no data) gives a *raw* yes/no for one reading; ``for`` and
``count`` turn the raw answer into the rule's *active* state over time. A
:class:`Step` says whether that state turned on (``raise``) or off (``clear``).
Time is always passed in: reading timestamps for readings, the engine's clock
for timers, so tests and ``rules test`` drive time without sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from m2mhub.core.geo import haversine_m
from m2mhub.rules.expr import SELF, EvaluationError, Expression, MissingValue, Values, parse
from m2mhub.rules.model import Condition, Geofence, Rule, duration_ms

Transition = Literal["raise", "clear"] | None


class RuleState(msgspec.Struct, omit_defaults=True, gc=False):
    """What one rule remembers about one device; persisted after every change.

    Not tracked by the garbage collector (``gc=False``: it holds numbers, a list and a
    tuple of numbers, never a cycle): a process keeps one per (rule, device), hundreds of
    thousands with many rules, and each full collection would walk them all.
    """

    active: bool = False
    raw: bool = False
    since: int | None = None  # the raw test has been true since (for "for")
    last_ts: int | None = None  # newest reading this rule evaluated (late-data policy)
    edges: list[int] = []  # when the raw test turned true, within the count window
    prev: tuple[int, float] | None = None  # rate: the previous (ts, value)
    seen: int | None = None  # no data: newest data seen
    changed: int | None = None  # when ``active`` last changed
    alarm_id: int | None = None


class Step(msgspec.Struct):
    """The result of one evaluation."""

    state: RuleState
    transition: Transition = None
    raw: bool | None = None  # None: not evaluated (a value missing, an error)
    inputs: dict[str, Any] = {}
    note: str | None = None


def in_polygon(lat: float, lon: float, polygon: list[tuple[float, float]]) -> bool:
    """Ray casting on (lat, lon) as plane coordinates: right for fences of a few km that do
    not cross the antimeridian."""
    inside = False
    j = len(polygon) - 1
    for i, (lat_i, lon_i) in enumerate(polygon):
        lat_j, lon_j = polygon[j]
        if (lon_i > lon) != (lon_j > lon):
            crossing = (lat_j - lat_i) * (lon - lon_i) / (lon_j - lon_i) + lat_i
            if lat < crossing:
                inside = not inside
        j = i
    return inside


def is_inside(fence: Geofence, lat: float, lon: float) -> bool:
    if fence.circle is not None:
        c = fence.circle
        return haversine_m(c.lat, c.lon, lat, lon) <= c.radius_m
    assert fence.polygon is not None
    return in_polygon(lat, lon, fence.polygon)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class CompiledCondition:
    """A rule's condition, ready to evaluate."""

    def __init__(self, rule: Rule) -> None:
        assert rule.condition is not None
        self.condition: Condition = rule.condition
        c = self.condition
        self.for_ms = duration_ms(c.for_) if c.for_ else None
        self.count = (c.count.times, duration_ms(c.count.within)) if c.count else None
        self.no_data_ms = duration_ms(c.no_data.for_) if c.no_data else None
        self.rate_per_ms = duration_ms(c.rate.per) if c.rate else None
        self.expression: Expression | None = parse(c.expression) if c.expression else None
        #: The device's own keys the test reads; a reading with none of them is not evaluated.
        self.keys: set[str] | None
        if c.threshold:
            self.keys = {c.threshold.key}
        elif c.rate:
            self.keys = {c.rate.key}
        elif c.geofence:
            self.keys = {c.geofence.lat_key, c.geofence.lon_key}
        elif self.expression is not None:
            self.keys = {k for alias, k in self.expression.names if alias == SELF}
        elif c.no_data and c.no_data.key:
            self.keys = {c.no_data.key}
        else:
            self.keys = None
        # What :meth:`quiet` needs, compiled once: a threshold's key and levels as floats.
        self._levels: tuple[str, float | None, float | None, float | None, float | None] | None
        self._levels = None
        if c.threshold is not None:
            t = c.threshold
            self._levels = (
                t.key,
                _float(t.above),
                _float(t.clear_below),
                _float(t.below),
                _float(t.clear_above),
            )
        #: Whether :meth:`quiet` can answer: a test that reads only the reading and the
        #: state's ``raw`` (threshold, geofence), settled without a count window.
        self.has_quiet = (
            (c.threshold is not None or c.geofence is not None)
            and self.count is None
            and self.no_data_ms is None
        )

    @property
    def has_timer(self) -> bool:
        """Whether time alone can change the state (durations, windows, silence)."""
        return bool(self.for_ms or self.count or self.no_data_ms)

    @property
    def on_readings(self) -> bool:
        return self.condition.connection is None

    # -- entry points -----------------------------------------------------------------

    def on_reading(self, state: RuleState, ts: int, values: Values) -> Step:
        """Evaluate one reading (``values[SELF]`` holds the device's own values)."""
        new = _copy(state)
        new.last_ts = ts if new.last_ts is None else max(new.last_ts, ts)
        own = values.get(SELF, {})
        if self.no_data_ms is not None:
            key = self.condition.no_data.key if self.condition.no_data else None
            if key is not None and key not in own:
                return Step(new)
            new.seen = ts if new.seen is None else max(new.seen, ts)
            return self._settle(state, new, False, ts, {"seen": ts})
        raw, inputs, note = self._test(new, values)
        if raw is None:
            return Step(new, inputs=inputs, note=note)
        return self._settle(state, new, raw, ts, inputs)

    def quiet(
        self, state: RuleState, ts: int, own: Mapping[str, Any]
    ) -> tuple[bool, tuple[tuple[str, Any], ...]] | None:
        """``(raw, inputs)`` when :meth:`on_reading` of this reading would change nothing in
        ``state`` but ``last_ts`` (and turn nothing on or off); None when it may change more,
        or when only :meth:`on_reading` can tell (then call it).

        Most readings are of this kind (a level that stays in range), so the engine takes
        this path first: no copy of the state, no :class:`Step`. Only for conditions with
        :attr:`has_quiet`; ``own`` is the device's own values. ``inputs`` are the items of
        :attr:`Step.inputs`, as a tuple (which the garbage collector stops tracking).
        """
        levels = self._levels
        if levels is not None:
            key, above, clear_below, below, clear_above = levels
            value: Any = own.get(key)
            kind = value.__class__
            if kind is not float and kind is not int:  # missing, a bool, a string: full path
                return None
            value = float(value)
            if above is not None:
                if state.raw and clear_below is not None:
                    raw = value >= clear_below
                else:
                    raw = value > above
            elif state.raw and clear_above is not None:
                raw = value <= clear_above
            else:
                raw = value < below
            inputs: tuple[tuple[str, Any], ...] = ((key, value),)
        else:
            found, tested, _ = self._test(state, {SELF: own})
            if found is None:
                return None
            raw, inputs = found, tuple(tested.items())
        # What _settle would do, without a count window: it changes nothing when the raw
        # answer is the one before and the active state stays as it is.
        if raw != state.raw:
            return None
        if raw:
            for_ms = self.for_ms
            active = for_ms is None or (state.since is not None and ts - state.since >= for_ms)
        elif state.since is not None:
            return None
        else:
            active = False
        if active != state.active:
            return None
        return raw, inputs

    def on_connection(self, state: RuleState, ts: int, online: bool) -> Step:
        new = _copy(state)
        raw = online == (self.condition.connection == "online")
        return self._settle(state, new, raw, ts, {"online": online})

    def on_tick(self, state: RuleState, now: int) -> Step:
        """Let time pass: durations complete, count windows slide, silence is noticed."""
        new = _copy(state)
        if self.no_data_ms is not None:
            if new.seen is None:
                return Step(new)
            silent = now - new.seen >= self.no_data_ms
            return self._settle(state, new, silent, now, {"silent_ms": now - new.seen})
        return self._settle(state, new, new.raw, now, {}, ticking=True)

    def due(self, state: RuleState) -> int | None:
        """The next instant at which time alone changes ``state`` (:meth:`on_tick` then does
        something), or None. ``rules test`` ticks exactly there instead of every second."""
        if self.no_data_ms is not None:
            return state.seen + self.no_data_ms if state.seen is not None else None
        if self.count is not None:
            return min(state.edges) + self.count[1] if state.edges else None
        if self.for_ms is not None and state.raw and not state.active and state.since is not None:
            return state.since + self.for_ms
        return None

    # -- internals --------------------------------------------------------------------

    def _test(
        self, state: RuleState, values: Values
    ) -> tuple[bool | None, dict[str, Any], str | None]:
        c = self.condition
        own = values.get(SELF, {})
        if c.threshold is not None:
            t = c.threshold
            value = _number(own.get(t.key))
            if value is None:
                return None, {}, f"{t.key} is missing or not a number"
            inputs = {t.key: value}
            if t.above is not None:
                if state.raw and t.clear_below is not None:
                    return value >= t.clear_below, inputs, None
                return value > t.above, inputs, None
            assert t.below is not None
            if state.raw and t.clear_above is not None:
                return value <= t.clear_above, inputs, None
            return value < t.below, inputs, None
        if c.rate is not None:
            value = _number(own.get(c.rate.key))
            ts = state.last_ts
            if value is None or ts is None:
                return None, {}, f"{c.rate.key} is missing or not a number"
            previous, state.prev = state.prev, (ts, value)
            if previous is None or ts <= previous[0]:
                return None, {c.rate.key: value}, "rate: needs a previous reading"
            assert self.rate_per_ms is not None
            rate = (value - previous[1]) / (ts - previous[0]) * self.rate_per_ms
            inputs = {c.rate.key: value, "rate": rate}
            rises = c.rate.above is not None and rate > c.rate.above
            falls = c.rate.below is not None and rate < c.rate.below
            return rises or falls, inputs, None
        if c.geofence is not None:
            g = c.geofence
            lat, lon = _number(own.get(g.lat_key)), _number(own.get(g.lon_key))
            if lat is None or lon is None:
                return None, {}, f"{g.lat_key}/{g.lon_key} missing"
            inside = is_inside(g, lat, lon)
            raw = inside if g.trigger == "inside" else not inside
            return raw, {g.lat_key: lat, g.lon_key: lon, "inside": inside}, None
        if self.expression is not None:
            inputs = _inputs(self.expression, values)
            try:
                return bool(self.expression.evaluate(values)), inputs, None
            except MissingValue as exc:
                return None, inputs, f"no value for {exc.name} yet"
            except EvaluationError as exc:
                return None, inputs, f"error: {exc}"
        return None, {}, "this condition does not read telemetry"

    def _settle(
        self,
        before: RuleState,
        new: RuleState,
        raw: bool,
        ts: int,
        inputs: dict[str, Any],
        *,
        ticking: bool = False,
    ) -> Step:
        if raw and not new.raw and not ticking:
            new.since = ts
            if self.count is not None:
                new.edges = [*new.edges, ts]
        if not raw:
            new.since = None
        new.raw = raw
        if self.count is not None:
            times, within = self.count
            new.edges = [e for e in new.edges if e > ts - within]
            active = len(new.edges) >= times
        elif self.for_ms is not None:
            active = raw and new.since is not None and ts - new.since >= self.for_ms
        else:
            active = raw
        transition: Transition = None
        if active != before.active:
            transition = "raise" if active else "clear"
            new.active = active
            new.changed = ts
        return Step(new, transition, raw, inputs)


def _inputs(expression: Expression, values: Values) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for alias, key in sorted(expression.names):
        source: Mapping[str, Any] = values.get(alias, {})
        if key in source:
            found[f"{alias}.{key}" if alias else key] = source[key]
    return found


def _float(level: float | None) -> float | None:
    return float(level) if level is not None else None


def _copy(state: RuleState) -> RuleState:
    return msgspec.structs.replace(state, edges=list(state.edges))


def encode_state(state: RuleState) -> str:
    return msgspec.json.encode(state).decode()


def decode_state(text: str) -> RuleState:
    return msgspec.json.decode(text, type=RuleState)


__all__ = [
    "CompiledCondition",
    "RuleState",
    "Step",
    "Transition",
    "decode_state",
    "encode_state",
    "in_polygon",
]
