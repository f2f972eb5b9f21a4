"""OsmAnd requests as the OsmAnd app and Traccar Client send them (query strings and
JSON bodies from Traccar's OsmAndProtocolDecoderTest and the protocol page)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from m2mhub.connect.trackers.osmand import (
    OsmAndError,
    Position,
    decode_json,
    decode_request,
    to_values,
)
from m2mhub.connect.trackers.osmand import readings as keys


def utc_ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def query(text: str) -> Position:
    return decode_request(query=text.partition("?")[2])


def test_traccar_client_query() -> None:
    position = query(
        "/?id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571"
        "&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24"
    )
    assert position.device_id == "123456789012345"
    assert position.time_ms == 1504763810_000
    assert (position.lat, position.lon) == (40.7232948571, -74.0061408571)
    assert position.speed_kmh == pytest.approx(74.08)  # 40 knots
    assert position.heading_deg == pytest.approx(7.19889788244)
    assert position.attributes == {"ignition": True, "rpm": 933.0, "fuel": 24.0}


def test_osmand_app_query_with_iso_timestamp_and_hdop() -> None:
    position = query(
        "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z"
        "&hdop=6.0&altitude=224.0&speed=0.0"
    )
    assert position.time_ms == utc_ms(2016, 1, 27, 18, 55, 47)
    assert (position.hdop, position.altitude_m, position.speed_kmh) == (6.0, 224.0, 0.0)


def test_millisecond_timestamp_is_detected() -> None:
    position = query("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579")
    assert position.time_ms == 1442068686579


def test_space_separated_timestamp_is_utc() -> None:
    position = query(
        "/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7"
        "&speed=0.0&id=353861053849681"
    )
    assert position.time_ms == utc_ms(2014, 6, 4, 9, 10, 11)


def test_deviceid_heading_and_no_timestamp() -> None:
    position = query("/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&deviceid=123456")
    assert position.device_id == "123456" and position.time_ms is None
    assert position.heading_deg == 0.0
    assert position.attributes == {"vacc": 0.0, "hacc": 0.0}


def test_battery_and_charge() -> None:
    position = query(
        "/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479"
        "&speed=0.000000&batt=87&charge=true&accuracy=12.5&driverUniqueId=D42"
    )
    assert (position.battery_pct, position.is_charging) == (87.0, True)
    assert (position.accuracy_m, position.driver_id) == (12.5, "D42")


def test_location_parameter_and_repeated_cells() -> None:
    position = query(
        "/?id=123456&timestamp=1377177267&location=60.0,30.0"
        "&cell=257,02,16,2224&cell=257,02,16,2223,-90"
    )
    assert (position.lat, position.lon) == (60.0, 30.0)
    assert position.attributes["cell"] == "257,02,16,2224;257,02,16,2223,-90"


def test_report_without_a_location() -> None:
    position = query("/?id=123456&timestamp=1377177267&cell=257,02,16,2224")
    assert position.lat is None and position.lon is None


def test_form_body_post() -> None:
    position = decode_request(
        body=b"id=123456&timestamp=1377177267&lat=60.0&lon=30.0&valid=false",
        content_type="application/x-www-form-urlencoded",
    )
    assert (position.device_id, position.lat, position.is_valid) == ("123456", 60.0, False)


TRACCAR_CLIENT_JSON = (
    b'{"location":{"event":"motionchange","is_moving":false,'
    b'"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z",'
    b'"odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,"accuracy":3.8,'
    b'"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,'
    b'"altitude":35.7,"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},'
    b'"battery":{"is_charging":false,"level":0.79},"extras":{}},"device_id":"8737767034"}'
)


def test_traccar_client_json_body() -> None:
    position = decode_request(body=TRACCAR_CLIENT_JSON, content_type="application/json")
    assert position == Position(
        device_id="8737767034",
        time_ms=utc_ms(2021, 7, 21, 8, 6, 34) + 444,
        lat=-6.1148096,
        lon=106.6837015,
        speed_kmh=pytest.approx(67.212),  # 18.67 m/s
        heading_deg=63,
        altitude_m=35.7,
        accuracy_m=3.8,
        battery_pct=79.0,
        is_charging=False,
        is_moving=False,
        event="motionchange",
        activity="still",
        odometer_m=0,
    )


def test_json_unknowns_and_extras() -> None:
    body = (
        b'{"location":{"extras":{"device_string_test":"long_device_id","device_bool_test":true,'
        b'"device_integer_test":1,"nested":{"x":1}},"mock":true,"coords":{"speed":-1,'
        b'"longitude":-122.406417,"latitude":37.785834000000001,"accuracy":5,"altitude":0,'
        b'"heading":-1},"is_moving":false,"event":"motionchange",'
        b'"battery":{"level":-1,"is_charging":false},"timestamp":"2025-05-09T04:11:30.579Z"},'
        b'"device_id":"658765"}'
    )
    position = decode_json(body)
    assert position.speed_kmh is None and position.heading_deg is None
    assert position.battery_pct is None
    assert position.attributes == {
        "device_string_test": "long_device_id",
        "device_bool_test": True,
        "device_integer_test": 1.0,
        "mock": True,
    }


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        ("timestamp=1377177267&lat=60.0&lon=30.0", "id", "missing id"),
        ("id=1&lat=91&lon=30", "lat", "outside -90..90"),
        ("id=1&lat=45&lon=-181", "lon", "outside -180..180"),
        ("id=1&lat=45", "lon", "missing lon"),
        ("id=1&lat=north&lon=30", "lat", "not a number"),
        ("id=1&lat=45&lon=30&timestamp=yesterday", "timestamp", "not a time"),
        ("id=1&lat=45&lon=30&charge=maybe", "charge", "not true, false"),
        ("id=1&location=45", "location", "lat,lon"),
        ("id=1&lat=nan&lon=30", "lat", "finite"),
        ("id=1&bad%20name=1", "bad name", "parameter name"),
    ],
)
def test_bad_parameters_are_named(request_: str, field: str, message: str) -> None:
    with pytest.raises(OsmAndError, match=message) as caught:
        decode_request(query=request_)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"location":{"coords":{"latitude":1,"longitude":2}}}', "device_id"),
        (b'{"device_id":"7"}', "location"),
        (b'{"device_id":"7","location":{"coords":{"latitude":"x"}}}', "location.coords.latitude"),
        (b'{"device_id":"7","location":{"coords":{"latitude":95,"longitude":2}}}', "lat"),
        (b'{"device_id":"7","location":{"timestamp":"soon"}}', "timestamp"),
        (b"{not json", "body"),
    ],
)
def test_bad_json_bodies_are_named(body: bytes, field: str) -> None:
    with pytest.raises(OsmAndError) as caught:
        decode_request(body=body, content_type="application/json")
    assert caught.value.field == field


def test_empty_request_asks_for_parameters() -> None:
    with pytest.raises(OsmAndError, match="send at least id"):
        decode_request()


def test_reading_values() -> None:
    position = decode_json(TRACCAR_CLIENT_JSON)
    got = to_values(position)
    assert got[keys.LAT] == -6.1148096 and got[keys.LON] == 106.6837015
    assert got[keys.SPEED_KMH] == pytest.approx(67.212)
    assert got[keys.BATTERY_PCT] == 79.0 and got[keys.CHARGING] is False
    assert got[keys.MOVING] is False and got[keys.EVENT] == "motionchange"
    assert got[keys.GPS_VALID] is True
    assert keys.HDOP not in got  # absent measurements are left out


def test_named_fields_win_over_attributes_of_the_same_name() -> None:
    position = query("/?id=1&lat=1&lon=2&speed_kmh=999&speed=10")
    assert to_values(position)[keys.SPEED_KMH] == pytest.approx(18.52)
