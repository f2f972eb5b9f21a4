"""What the load generator's devices report: a simulation model's readings, or random values.

Values depend only on the seed, the device id and the reading's index, never on
the wall clock or on how devices are split between workers, so a run repeated
with the same seed sends the same values. Readings are computed before the run
starts and a device cycles through its own; only timestamps are taken live.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec

from m2mhub.core.values import Value, ValueType
from m2mhub.sim.base import device_rng
from m2mhub.sim.fleet import MODELS, FleetError
from m2mhub.sim.keys import KEY_SPECS
from m2mhub.store.models import KeySpec

#: ``--model random``: values of a few plain keys instead of a simulation model.
RANDOM: Final = "random"
#: The keys of random values, in the order ``--keys`` takes them, with (mean, spread, step).
RANDOM_KEYS: Final = {
    "temperature_c": (21.0, 4.0, 0.2),
    "humidity_pct": (45.0, 15.0, 0.5),
    "pressure_hpa": (1013.0, 8.0, 0.3),
    "battery_pct": (80.0, 15.0, 0.1),
    "rssi_dbm": (-70.0, 10.0, 1.0),
}
_RANDOM_UNITS: Final = {
    "temperature_c": "°C",
    "humidity_pct": "%",
    "pressure_hpa": "hPa",
    "battery_pct": "%",
    "rssi_dbm": "dBm",
}
#: Device time of a model's first reading: Monday 5 January 2026, 00:00 UTC. Fixed, so
#: the values do not depend on when the run starts; readings are one model tick apart.
MODEL_START_MS: Final = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)
#: Readings computed before a run, in all (a model takes 2-10 µs per reading).
PREPARED_READINGS: Final = 200_000
#: A device cycles through at least this many readings, and at most ``MAX_RING``.
MIN_RING: Final = 16
MAX_RING: Final = 4096

_encoder = msgspec.json.Encoder()


def check_values(model: str, keys: int) -> None:
    """Raise :class:`FleetError` naming the option when ``model`` or ``keys`` is unusable."""
    if model != RANDOM and model not in MODELS:
        raise FleetError(
            f"model: unknown model {model!r}; use {RANDOM} or one of {', '.join(MODELS)}",
            field="model",
        )
    if model == RANDOM and not 1 <= keys <= len(RANDOM_KEYS):
        raise FleetError(f"keys: must be 1 to {len(RANDOM_KEYS)}", field="keys")


def key_specs(model: str, keys: int) -> list[KeySpec]:
    """The keys a device type must declare for these values."""
    if model == RANDOM:
        names = list(RANDOM_KEYS)[:keys]
        return [KeySpec(k, ValueType.NUMBER, _RANDOM_UNITS[k]) for k in names]
    return [KEY_SPECS[k] for k in MODELS[model].model.keys]


def ring_size(devices: int, per_device: int | None) -> int:
    """How many readings to prepare per device: what it sends, within the budget."""
    budget = max(MIN_RING, min(MAX_RING, PREPARED_READINGS // max(1, devices)))
    return max(1, min(budget, per_device)) if per_device is not None else budget


def readings(
    model: str, keys: int, seed: int, device_id: str, count: int
) -> list[dict[str, Value]]:
    """The first ``count`` readings of a device (``count`` at least 1)."""
    rng = device_rng(seed, device_id)
    if model == RANDOM:
        specs = [(k, *RANDOM_KEYS[k]) for k in list(RANDOM_KEYS)[:keys]]
        state = {k: mean + rng.uniform(-spread, spread) for k, mean, spread, _ in specs}
        out: list[dict[str, Value]] = []
        for _ in range(count):
            for k, mean, spread, step in specs:
                x = state[k] + rng.gauss(0, step)
                state[k] = min(mean + spread, max(mean - spread, x))
            out.append({k: round(state[k], 2) for k, *_ in specs})
        return out
    kind = MODELS[model]
    simulated = kind.model(kind.params(), rng=rng, origin_ms=MODEL_START_MS)
    out, ts, silent = [], MODEL_START_MS, 0
    while len(out) < count:
        values = simulated.step(ts)
        ts += simulated.tick_ms
        if values:
            out.append(values)
            silent = 0
        else:  # a gap the model makes on purpose (a meter's outage): skip it
            silent += 1
            if silent > 100_000:  # pragma: no cover - no shipped model is silent this long
                raise FleetError(f"model: {model!r} stays silent", field="model")
    return out


def fragments(values: list[dict[str, Value]]) -> list[bytes]:
    """The readings as JSON objects, ready to be put in a message."""
    return [_encoder.encode(v) for v in values]
