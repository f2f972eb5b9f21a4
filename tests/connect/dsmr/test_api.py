"""HTTP end to end: a P1 dongle posts telegrams; the values come back through the API."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from m2mhub.connect.dsmr import const as k
from tests.conftest import Api
from tests.connect.dsmr import telegram

TEXT = {"Content-Type": "text/plain"}


def utc_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


async def post(api: Api, device_id: str, body: bytes, **headers: str) -> httpx.Response:
    return await api.client.post(
        f"/api/v1/devices/{device_id}/p1",
        content=body,
        headers={**api.device(device_id), **TEXT, **headers},
    )


async def latest(api: Api, device_id: str) -> dict[str, dict[str, object]]:
    response = await api.client.get(f"/api/v1/devices/{device_id}/latest", headers=api.admin)
    assert response.status_code == 200, response.text
    values: dict[str, dict[str, object]] = response.json()["values"]
    return values


async def count(api: Api, device_id: str) -> int:
    device = await api.platform.store.get_device(device_id)
    return await api.platform.store.count_points(device.pk)


async def test_post_a_telegram_and_read_it_back(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("p1", "meter")
    response = await post(api, "p1", telegram("emucs_fluvius_v171"))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "telegrams": 1,
        "accepted_readings": 3,
        "accepted_values": 24,
        "events": 0,
    }
    values = await latest(api, "p1")
    meter_ts = utc_ms(2020, 5, 12, 11, 54, 9)
    assert values[k.ENERGY_IMPORT_T2_KWH] == {"ts": meter_ts, "value": 15.758}
    assert values[k.TARIFF] == {"ts": meter_ts, "value": 1}
    assert values[k.VOLTAGE_L1_V] == {"ts": meter_ts, "value": 234.7}
    # Gas and water keep the time their meters captured them, not the telegram's.
    assert values[k.GAS_M3] == {"ts": utc_ms(2020, 5, 12, 11, 45, 58), "value": 112.384}
    assert values[k.WATER_M3] == {"ts": utc_ms(2020, 5, 12, 11, 45, 58), "value": 872.234}
    assert values[k.DEMAND_PEAK_MONTH_KW]["ts"] == utc_ms(2020, 5, 9, 11, 45, 58)
    history = await api.client.get(
        "/api/v1/devices/p1/telemetry",
        params={"keys": k.GAS_M3, "from": "0", "to": "now"},
        headers=api.admin,
    )
    assert history.status_code == 200, history.text
    assert [(p["ts"], p["value"]) for p in history.json()["items"]] == [
        (utc_ms(2020, 5, 12, 11, 45, 58), 112.384)
    ]


async def test_reposting_stores_nothing_twice(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("p1", "meter")
    body = telegram("dsmr42_kaifa")
    first = (await post(api, "p1", body)).json()
    stored = await count(api, "p1")
    assert first["accepted_values"] == stored == 25
    assert first["events"] == 3  # the power failure log
    again = (await post(api, "p1", body)).json()
    assert again == {**first, "events": 0}
    assert await count(api, "p1") == stored
    events = await api.client.get(
        "/api/v1/devices/p1/events", params={"from": "0", "to": "now"}, headers=api.admin
    )
    assert events.status_code == 200, events.text
    failures = [e for e in events.json()["items"] if e["kind"] == k.POWER_FAILURE_EVENT]
    assert sorted(e["data"]["duration_s"] for e in failures) == [237126, 2147583646, 2317482647]


async def test_several_buffered_telegrams_in_one_post(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("p1", "meter")
    body = telegram("dsmr42_kaifa") + telegram("dsmr50_iskra_am550")
    response = await post(api, "p1", body)
    assert response.status_code == 200, response.text
    assert response.json()["telegrams"] == 2
    values = await latest(api, "p1")
    assert values[k.ENERGY_IMPORT_T1_KWH] == {"ts": utc_ms(2017, 1, 2, 18, 20, 2), "value": 4.426}


async def test_bad_crc_is_400_names_the_line_and_stores_nothing(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("p1", "meter")
    bad = telegram("dsmr50_iskra_am550").replace(b"000004.426", b"000004.427")
    response = await post(api, "p1", bad)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "telegram_crc_mismatch"
    assert error["line"] == 40 and error["telegram"] == 1
    assert "6EEE" in error["message"]
    # One bad telegram among good ones refuses the whole post.
    response = await post(api, "p1", telegram("dsmr42_kaifa") + bad)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("telegram 2, line 40: CRC mismatch")
    assert await count(api, "p1") == 0
    metrics = (await api.client.get("/metrics")).text
    assert "m2mhub_ingest_rejected_total 2.0" in metrics


async def test_unparsable_bodies_are_400(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("p1", "meter")
    cut = telegram("dsmr50_iskra_am550")[:500]
    response = await post(api, "p1", cut)
    assert response.status_code == 400
    assert response.json()["error"]["line"] == 23
    assert "cut short" in response.json()["error"]["message"]
    assert (await post(api, "p1", b'{"t": 1}')).status_code == 400
    assert await count(api, "p1") == 0


async def test_a_form_post_is_refused_with_the_fix(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("p1", "meter")
    response = await post(
        api,
        "p1",
        telegram("dsmr42_kaifa"),
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert "--data-binary" in response.json()["error"]["message"]


async def test_the_device_token_is_required(api: Api) -> None:
    await api.device_type("meter")
    await api.new_device("p1", "meter")
    await api.new_device("other", "meter")
    url = "/api/v1/devices/p1/p1"
    body = telegram("dsmr42_kaifa")
    assert (await api.client.post(url, content=body, headers=TEXT)).status_code == 401
    foreign = {**api.device("other"), **TEXT}
    assert (await api.client.post(url, content=body, headers=foreign)).status_code == 403
    assert await count(api, "p1") == 0
