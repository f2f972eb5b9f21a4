"""The fleet tables, read and written through the store (SQL shared by both backends).

* ``fleet_profiles``: the device types whose devices are vehicles, with their settings.
* ``fleet_state``: each vehicle's :class:`~m2mhub.apps.fleet.trips.DetectorState` as JSON,
  with a version: a save is conditional on the version it read, so two processes never
  both move a vehicle on from the same state.
* ``fleet_checkpoints``: earlier states that late readings replay from.
* ``fleet_outputs``: the trips, stops and events by their number (``seq``), the position
  in the detector's output; a replay replaces the numbers from its checkpoint on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from m2mhub.apps.fleet.models import FleetEvent, Output, Stop, Trip
from m2mhub.apps.fleet.profiles import FleetProfile
from m2mhub.apps.fleet.trips import DetectorState, Reading
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Value
from m2mhub.store.base import Segment, Store

#: ``kind`` of an output row: trips and stops by their tag, every event as "event".
TRIP: Final = "trip"
STOP: Final = "stop"
EVENT: Final = "event"

#: Telemetry points read per query by :func:`readings`.
_PAGE: Final = 5000
#: Past any timestamp a device sends: the open end of a range.
_NO_END: Final = 2**62

_STATE = msgspec.json.Decoder(DetectorState)
_OUTPUT = msgspec.json.Decoder(Output)
_ENCODER = msgspec.json.Encoder()


class Lost(Exception):
    """Another process saved the vehicle's state first (raised to roll back)."""


class Saved(msgspec.Struct, frozen=True):
    """A vehicle's stored state, its version and its newest checkpoint's ``last_ts``."""

    state: DetectorState
    version: int
    checkpoint_ts: int | None


class Numbered(msgspec.Struct, frozen=True):
    """A stored output with its number."""

    seq: int
    output: Output


def kind_of(output: Output) -> str:
    """The ``kind`` column of an output."""
    return TRIP if isinstance(output, Trip) else STOP if isinstance(output, Stop) else EVENT


def span_of(output: Output) -> tuple[int, int]:
    """The instants an output covers (an event: its one instant)."""
    if isinstance(output, FleetEvent):
        return output.ts, output.ts
    return output.start_ts, output.end_ts


# -- profiles -------------------------------------------------------------------------


_PROFILE = (
    "SELECT p.type_id, p.tenant_id, t.name, p.settings, p.timezone, p.updated_ms "
    "FROM fleet_profiles p JOIN device_types t ON t.id = p.type_id"
)


def _profile(row: Sequence[Any]) -> FleetProfile:
    return FleetProfile(
        type_id=int(row[0]),
        tenant_id=int(row[1]),
        type_name=row[2],
        overrides=msgspec.json.decode(row[3]),
        timezone=row[4],
        updated_ms=int(row[5]),
    )


async def profiles(store: Store, tenant_id: int | None = None) -> list[FleetProfile]:
    """The fleet profiles of a tenant (or of all tenants), by type name."""
    where, params = ("WHERE p.tenant_id = ?", [tenant_id]) if tenant_id is not None else ("", [])
    rows = await store.query(f"{_PROFILE} {where} ORDER BY t.name", params)
    return [_profile(r) for r in rows]


async def set_profile(
    store: Store, tenant_id: int, type_id: int, overrides: dict[str, Any], timezone: str
) -> None:
    """Create or replace the profile of a device type."""
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO fleet_profiles (type_id, tenant_id, settings, timezone, updated_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (type_id) DO UPDATE SET "
            "settings = excluded.settings, timezone = excluded.timezone, "
            "updated_ms = excluded.updated_ms",
            (type_id, tenant_id, _ENCODER.encode(overrides).decode(), timezone, now_ms()),
        )


async def delete_profile(store: Store, tenant_id: int, type_id: int) -> bool:
    """Remove a device type's profile; False if it had none."""
    async with store.transaction() as tx:
        deleted = await tx.execute(
            "DELETE FROM fleet_profiles WHERE tenant_id = ? AND type_id = ?", (tenant_id, type_id)
        )
    return deleted > 0


# -- detector state and checkpoints ---------------------------------------------------


async def load_state(store: Store, device_pk: int) -> Saved | None:
    """A vehicle's stored state, or None before its first reading was processed."""
    rows = await store.query(
        "SELECT state, version, (SELECT MAX(last_ts) FROM fleet_checkpoints c "
        "WHERE c.device_pk = s.device_pk) FROM fleet_state s WHERE device_pk = ?",
        (device_pk,),
    )
    if not rows:
        return None
    text, version, checkpoint_ts = rows[0]
    return Saved(_STATE.decode(text), int(version), checkpoint_ts)


async def all_states(store: Store) -> dict[int, tuple[DetectorState, int]]:
    """Every vehicle's state and version, by device pk."""
    rows = await store.query("SELECT device_pk, state, version FROM fleet_state")
    return {int(pk): (_STATE.decode(text), int(version)) for pk, text, version in rows}


async def checkpoint_before(store: Store, device_pk: int, ts: int) -> DetectorState | None:
    """The newest checkpoint that takes a reading at ``ts`` (its ``last_ts`` is before)."""
    rows = await store.query(
        "SELECT state FROM fleet_checkpoints WHERE device_pk = ? AND last_ts < ? "
        "ORDER BY last_ts DESC LIMIT 1",
        (device_pk, ts),
    )
    return _STATE.decode(rows[0][0]) if rows else None


async def save(
    store: Store,
    device_pk: int,
    state: DetectorState,
    *,
    version: int,
    outputs: Sequence[Output],
    first_seq: int,
    checkpoints: Sequence[DetectorState] = (),
    replay_after: int | None = None,
) -> bool:
    """Save a vehicle's new state over ``version`` (0: none yet) with what led to it.

    The outputs numbered from ``first_seq`` on are replaced by ``outputs``; with
    ``replay_after`` (a replay from the checkpoint at that ``last_ts``, or -1 from no
    state) the checkpoints after it are dropped first. Returns False, writing nothing,
    when another process saved a newer version first.
    """
    text = _ENCODER.encode(state).decode()
    now = now_ms()
    try:
        async with store.transaction() as tx:
            if version:
                won = await tx.execute(
                    "UPDATE fleet_state SET state = ?, version = version + 1, updated_ms = ? "
                    "WHERE device_pk = ? AND version = ?",
                    (text, now, device_pk, version),
                )
            else:
                won = await tx.execute(
                    "INSERT INTO fleet_state (device_pk, state, version, updated_ms) "
                    "VALUES (?, ?, 1, ?) ON CONFLICT (device_pk) DO NOTHING",
                    (device_pk, text, now),
                )
            if not won:
                raise Lost
            await tx.execute(
                "DELETE FROM fleet_outputs WHERE device_pk = ? AND seq >= ?",
                (device_pk, first_seq),
            )
            if outputs:
                await tx.executemany(
                    "INSERT INTO fleet_outputs (device_pk, seq, kind, start_ts, end_ts, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (device_pk, first_seq + i, kind_of(o), *span_of(o), _encode(o))
                        for i, o in enumerate(outputs)
                    ],
                )
            if replay_after is not None:
                await tx.execute(
                    "DELETE FROM fleet_checkpoints WHERE device_pk = ? AND last_ts > ?",
                    (device_pk, replay_after),
                )
            if checkpoints:
                await tx.executemany(
                    "INSERT INTO fleet_checkpoints (device_pk, last_ts, state) VALUES (?, ?, ?) "
                    "ON CONFLICT (device_pk, last_ts) DO UPDATE SET state = excluded.state",
                    [
                        (device_pk, c.last_ts, _ENCODER.encode(c).decode())
                        for c in checkpoints
                        if c.last_ts is not None
                    ],
                )
    except Lost:
        return False
    return True


def _encode(output: Output) -> str:
    return _ENCODER.encode(output).decode()


# -- outputs --------------------------------------------------------------------------


async def outputs(
    store: Store,
    device_pks: Sequence[int],
    kind: str,
    start: int,
    end: int,
    *,
    after: tuple[int, int, int] | None = None,
    limit: int = 1000,
) -> list[tuple[int, Numbered]]:
    """``(device_pk, numbered output)`` of ``kind`` overlapping ``[start, end)``, in time
    order, a page at a time (``after``: :func:`cursor_of` the last one of the previous page)."""
    if not device_pks:
        return []
    marks = ",".join("?" * len(device_pks))
    where = f"device_pk IN ({marks}) AND kind = ? AND start_ts < ? AND end_ts >= ?"
    params: list[Any] = [*device_pks, kind, end, start]
    if after is not None:
        where += " AND (start_ts, device_pk, seq) > (?, ?, ?)"
        params += list(after)
    rows = await store.query(
        f"SELECT device_pk, seq, data FROM fleet_outputs WHERE {where} "
        f"ORDER BY start_ts, device_pk, seq LIMIT {int(limit)}",
        params,
    )
    return [(int(pk), Numbered(int(seq), _OUTPUT.decode(data))) for pk, seq, data in rows]


def cursor_of(device_pk: int, numbered: Numbered) -> tuple[int, int, int]:
    """The ``after`` that continues a page past this output."""
    return span_of(numbered.output)[0], device_pk, numbered.seq


# -- readings -------------------------------------------------------------------------


async def readings(
    store: Store,
    device_pk: int,
    keys: Sequence[str],
    *,
    after: int | None = None,
    start: int | None = None,
    end: int | None = None,
) -> list[Reading]:
    """A device's stored values of ``keys`` as readings in time order.

    ``after`` excludes its instant (readings newer than a state), ``start`` includes it.
    Read through :meth:`Store.history`, a page at a time.
    """
    first = -_NO_END if start is None else start
    if after is not None:
        first = max(first, after + 1)  # timestamps are whole milliseconds
    segment = Segment(device_pk, first, _NO_END if end is None else end)
    found: list[Reading] = []
    values: dict[str, Value] = {}
    cursor: tuple[int, int, int] | None = None
    while True:
        page = await store.history([segment], keys=keys, after=cursor, limit=_PAGE)
        for point in page:
            if not found or found[-1][0] != point.ts:
                values = {}
                found.append((point.ts, values))
            values[point.key] = point.value
        if len(page) < _PAGE:
            return found
        cursor = await store.cursor_of(page[-1])


__all__ = [
    "EVENT",
    "STOP",
    "TRIP",
    "Numbered",
    "Saved",
    "all_states",
    "checkpoint_before",
    "cursor_of",
    "delete_profile",
    "kind_of",
    "load_state",
    "outputs",
    "profiles",
    "readings",
    "save",
    "set_profile",
    "span_of",
]
