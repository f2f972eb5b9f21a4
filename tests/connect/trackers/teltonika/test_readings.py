"""Records mapped to named reading values."""

from __future__ import annotations

import pytest

from m2mhub.connect.trackers import positions
from m2mhub.connect.trackers.teltonika import keys
from m2mhub.connect.trackers.teltonika.decoder import decode_avl_data
from m2mhub.connect.trackers.teltonika.readings import to_values

from .samples import data_field, frame


def test_moving_vehicle() -> None:
    (record,) = decode_avl_data(data_field(frame("device_codec8_moving"))).records

    values = to_values(record)

    assert values[keys.LAT] == 56.8255366
    assert values[keys.LON] == 60.4544333
    assert values[keys.ALTITUDE_M] == 311
    assert values[keys.SPEED_KMH] == 95
    assert values[keys.HEADING_DEG] == 95
    assert values[keys.SATELLITES] == 18
    assert values[keys.GPS_VALID] is True
    assert values[keys.IGNITION] is True
    assert values[keys.MOVEMENT] is True
    assert values[keys.GSM_SIGNAL] == 3
    assert values[keys.GNSS_STATUS] == 1
    assert values[keys.EXTERNAL_VOLTAGE_V] == pytest.approx(14.375)
    assert values[keys.BATTERY_VOLTAGE_V] == pytest.approx(3.927)
    assert values[keys.BATTERY_CURRENT_A] == 0
    assert values[keys.GNSS_PDOP] == pytest.approx(1.1)
    assert values[keys.GNSS_HDOP] == pytest.approx(0.6)
    # Ids without a name keep their raw value under io_<id>.
    assert values["io_24"] == 95
    assert values["io_205"] == 1402
    assert "io_239" not in values


def test_odometers_are_metres() -> None:
    records = decode_avl_data(data_field(frame("device_codec8_three_records"))).records

    values = to_values(records[0])

    assert values[keys.TRIP_ODOMETER_M] == 6
    assert values[keys.DIGITAL_INPUT_1] is False


def test_total_odometer_and_variable_length_values() -> None:
    (record,) = decode_avl_data(data_field(frame("device_codec8e_nx"))).records

    values = to_values(record)

    assert values[keys.ODOMETER_M] == 41397
    assert values["io_256"] == b"WV1ZZZ2EZ86015388".hex()


def test_record_without_fix_is_marked_not_dropped() -> None:
    (record,) = decode_avl_data(data_field(frame("wiki_codec8_1"))).records

    values = to_values(record)

    assert values[keys.GPS_VALID] is False
    assert (values[keys.LAT], values[keys.LON]) == (0.0, 0.0)
    assert values[keys.DIGITAL_INPUT_1] is True
    assert values["io_78"] == 0  # iButton id, not named here


def test_io_key() -> None:
    assert keys.io_key(78) == "io_78"


def test_position_keys_are_the_ones_every_tracker_shares() -> None:
    (record,) = decode_avl_data(data_field(frame("device_codec8_moving"))).records

    assert to_values(record).keys() >= positions.POSITION_KEYS
    assert keys.SPEED_KMH is positions.SPEED_KMH
