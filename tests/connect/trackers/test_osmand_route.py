"""Phones running OsmAnd or Traccar Client post positions over HTTP."""

from __future__ import annotations

from tests.connect.trackers.conftest import Trackers

PHONE = "phone-7"


async def test_osmand_query_with_the_token_in_the_path(trackers: Trackers) -> None:
    token = await trackers.device(PHONE)
    # as OsmAnd sends it: speed in knots, seconds since the epoch
    query = f"id={PHONE}&timestamp=1767225600&lat=52.3702&lon=4.8952&speed=10&bearing=90&batt=77"
    response = await trackers.client.get(f"/api/v1/osmand/{token}?{query}")
    assert response.status_code == 200
    latest = await trackers.latest(PHONE)
    assert latest["lat"] == 52.3702 and latest["lon"] == 4.8952
    assert round(float(latest["speed_kmh"]), 2) == 18.52  # type: ignore[arg-type]
    device = await trackers.platform.store.get_device(PHONE)
    stored = await trackers.platform.store.latest([device.pk], ["lat"])
    assert stored[device.pk]["lat"][0] == 1_767_225_600_000


async def test_traccar_client_json_with_a_bearer_token(trackers: Trackers) -> None:
    token = await trackers.device(PHONE)
    body = {
        "device_id": PHONE,
        "location": {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "coords": {"latitude": 48.8566, "longitude": 2.3522, "speed": 5, "heading": 180},
            "battery": {"level": 0.5, "is_charging": True},
            "is_moving": True,
        },
    }
    response = await trackers.client.post(
        "/api/v1/osmand", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    latest = await trackers.latest(PHONE)
    assert latest["lat"] == 48.8566 and latest["speed_kmh"] == 18.0


async def test_bad_positions_and_wrong_tokens_are_refused(trackers: Trackers) -> None:
    token = await trackers.device(PHONE)
    other = await trackers.device("phone-8")
    missing = await trackers.client.get(f"/api/v1/osmand/{token}?id={PHONE}&lat=91&lon=4")
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "lat"
    wrong = await trackers.client.get(f"/api/v1/osmand/{other}?id={PHONE}&lat=52&lon=4")
    assert wrong.status_code in (401, 403)
    nobody = await trackers.client.get(f"/api/v1/osmand?id={PHONE}&lat=52&lon=4")
    assert nobody.status_code == 401
    assert await trackers.latest(PHONE) == {}


async def test_zero_positions_are_filtered_not_stored(trackers: Trackers) -> None:
    token = await trackers.device(PHONE)
    response = await trackers.client.get(f"/api/v1/osmand/{token}?id={PHONE}&lat=0&lon=0&batt=50")
    assert response.status_code == 200
    latest = await trackers.latest(PHONE)
    assert "lat" not in latest and latest["battery_pct"] == 50
    assert trackers.platform.positions.refused["zero_position"] == 1
