"""The fleet service: readings in through HTTP telemetry, trips, stops and events stored."""

from __future__ import annotations

from m2mhub.apps.fleet import FleetEvent, Output, Stop, Trip, detect, storage
from m2mhub.apps.fleet.profiles import fleet_settings
from m2mhub.apps.fleet.service import PROFILES_TTL_S
from m2mhub.bus import ReadingsStored
from m2mhub.core.timeutil import now_ms
from m2mhub.store.models import Device
from tests.apps.fleet.conftest import PROFILE, VAN, Fleet, add_van, open_api, send
from tests.apps.fleet.vans import HOUR, VanDay
from tests.conftest import Api

DAY = VanDay()
SETTINGS = fleet_settings(PROFILE)


async def stored(api: Api, device_id: str = VAN) -> list[Output]:
    """Every stored output of the device, in its numbered order."""
    device = await api.platform.store.get_device(device_id)
    rows = await api.platform.store.query(
        "SELECT seq FROM fleet_outputs WHERE device_pk = ? ORDER BY seq", (device.pk,)
    )
    assert [r[0] for r in rows] == list(range(len(rows)))  # numbered without holes
    found = []
    for kind in (storage.TRIP, storage.STOP, storage.EVENT):
        found += await storage.outputs(api.platform.store, [device.pk], kind, 0, 2**62)
    return [n.output for _, n in sorted(found, key=lambda pair: pair[1].seq)]


def batch(readings: list[tuple[int, dict[str, object]]]) -> list[Output]:
    return detect(readings, SETTINGS).outputs  # type: ignore[arg-type]


async def test_a_day_sent_in_batches_is_stored_as_the_batch_detection_finds_it(api: Api) -> None:
    await send(api, VAN, DAY.readings)
    outputs = await stored(api)
    assert outputs == batch(DAY.readings)
    trips = [o for o in outputs if isinstance(o, Trip)]
    assert [(t.start_ts, t.end_ts) for t in trips] == [
        (DAY.depot_leave, DAY.arrive_a),
        (DAY.leave_a, DAY.gap_start),
        (DAY.leave_b, DAY.arrive_yard),
    ]
    assert len([o for o in outputs if isinstance(o, Stop)]) == 3


async def test_fleet_events_become_device_events_once(api: Api) -> None:
    await send(api, VAN, DAY.readings)
    device = await api.platform.store.get_device(VAN)
    found = await api.platform.store.events(device.pk, 0, 2**62, limit=1000, descending=False)
    kinds = [e.kind for e in found if e.kind.startswith("fleet.")]
    expected = [f"fleet.{o.kind.value}" for o in batch(DAY.readings) if isinstance(o, FleetEvent)]
    assert sorted(kinds) == sorted(expected)
    assert kinds.count("fleet.ignition_on") == 3
    assert "fleet.overspeed" in kinds and "fleet.fuel_drop" in kinds


async def test_a_restart_in_the_middle_of_a_trip_goes_on_from_the_stored_state(
    fleet: Fleet,
) -> None:
    # Cut inside the second trip: the detector holds an open trip when the platform stops.
    cut = next(i for i, (ts, _) in enumerate(DAY.readings) if ts > DAY.overspeed_start)
    platform, api, client = await open_api(fleet)
    try:
        await add_van(api)
        await send(api, VAN, DAY.readings[:cut])
        device = await platform.store.get_device(VAN)
        saved = await storage.load_state(platform.store, device.pk)
        assert saved is not None and saved.state.phase == "trip"
    finally:
        await client.aclose()
        await platform.__aexit__(None, None, None)
    platform, api, client = await open_api(fleet)
    try:
        api.tokens[VAN] = await platform.registry.rotate_token(api.tenant.id, VAN)
        await send(api, VAN, DAY.readings[cut:])
        assert await stored(api) == batch(DAY.readings)
    finally:
        await client.aclose()
        await platform.__aexit__(None, None, None)


async def test_a_late_reading_recomputes_from_a_checkpoint(api: Api) -> None:
    # The first trip's readings arrive last, as a tracker flushing its buffer would send them.
    first_trip = [r for r in DAY.readings if DAY.depot_leave <= r[0] <= DAY.arrive_a]
    others = [r for r in DAY.readings if not DAY.depot_leave <= r[0] <= DAY.arrive_a]
    await send(api, VAN, others)
    before = [o for o in await stored(api) if isinstance(o, Trip)]
    assert DAY.depot_leave not in [t.start_ts for t in before]
    await send(api, VAN, first_trip)
    assert await stored(api) == batch(DAY.readings)
    assert api.platform.fleet.replays >= 1


async def test_one_late_reading_inside_the_day_leaves_the_day_as_the_batch_finds_it(
    api: Api,
) -> None:
    # One fix of the second trip comes in after the day is done.
    late = next(i for i, (ts, _) in enumerate(DAY.readings) if ts > DAY.overspeed_start)
    await send(api, VAN, DAY.readings[:late] + DAY.readings[late + 1 :])
    await send(api, VAN, [DAY.readings[late]])
    assert await stored(api) == batch(DAY.readings)


async def test_the_tick_raises_offline_for_a_silent_vehicle_and_readings_resume(api: Api) -> None:
    readings = DAY.readings[: len(DAY.readings) // 2]
    await send(api, VAN, readings)
    device: Device = await api.platform.store.get_device(VAN)
    assert device.last_seen_ms is not None
    # Silent on the wall clock for longer than offline_after_ms.
    added = await api.platform.fleet.tick(device.last_seen_ms + 2 * HOUR)
    assert added >= 1
    offline = [o for o in await stored(api) if isinstance(o, FleetEvent) and o.kind == "offline"]
    assert offline[-1].values["last_seen_ts"] == readings[-1][0]
    found = await api.platform.store.events(device.pk, 0, 2**62, kind="fleet.offline")
    assert len(found) == 1
    # A device still reporting is left alone.
    assert await api.platform.fleet.tick(now_ms()) == 0
    # The rest of the day arrives after the tick sealed the silence: replayed, as the batch.
    await send(api, VAN, DAY.readings[len(DAY.readings) // 2 :])
    outputs = await stored(api)
    assert [o for o in outputs if not isinstance(o, FleetEvent)] == [
        o for o in batch(DAY.readings) if not isinstance(o, FleetEvent)
    ]


async def test_devices_without_a_fleet_profile_are_not_processed(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("meter-1", "meter")
    await send(api, "meter-1", DAY.readings[:200])
    device = await api.platform.store.get_device("meter-1")
    assert await storage.load_state(api.platform.store, device.pk) is None


async def test_a_device_found_not_to_be_a_vehicle_is_not_queued_until_profiles_are_read_again(
    api: Api,
) -> None:
    await api.device_type("meter")
    await api.new_device("meter-1", "meter")
    fleet, bus = api.platform.fleet, api.platform.bus
    await send(api, "meter-1", DAY.readings[:1])  # queued once: it is not known yet
    device = await api.platform.store.get_device("meter-1")
    van = await api.platform.store.get_device(VAN)
    for pk in (device.pk, van.pk):
        bus.publish(ReadingsStored(api.tenant.id, pk, "", [(1, {})]))
    assert bus.stats()["fleet"].lag == 1  # the van's event only
    await fleet.drain()
    fleet._loaded_at -= PROFILES_TTL_S  # the profiles are due to be read again
    bus.publish(ReadingsStored(api.tenant.id, device.pk, "", [(1, {})]))
    assert bus.stats()["fleet"].lag == 1
    await fleet.drain()


async def test_readings_whose_bus_events_were_lost_are_caught_up(api: Api) -> None:
    # What a full bus queue does: the readings are stored, their events never arrive.
    device = await api.platform.store.get_device(VAN)
    await api.platform.store.write_readings([(device.pk, ts, v) for ts, v in DAY.readings])
    assert await stored(api) == []
    assert await api.platform.fleet.catch_up() > 0
    assert await stored(api) == batch(DAY.readings)
    assert await api.platform.fleet.catch_up() == 0  # nothing new: nothing written
