"""GT06 packets as reading values."""

from __future__ import annotations

import pytest

from m2mhub.connect.trackers.gt06 import Deframer, Frame, Packet, decode_frame, to_values
from m2mhub.connect.trackers.gt06 import readings as keys
from m2mhub.connect.trackers.osmand import readings as osmand_keys
from tests.connect.trackers.gt06.frames import FRAMES


def values(name: str) -> dict[str, object]:
    (frame,) = Deframer().feed(FRAMES[name])
    assert isinstance(frame, Frame)
    packet: Packet = decode_frame(frame)
    return dict(to_values(packet))


def test_position_values() -> None:
    got = values("gps_lbs_2")
    assert got[keys.LAT] == pytest.approx(23.111693, abs=1e-6)
    assert got[keys.LON] == pytest.approx(114.409298, abs=1e-6)
    assert got[keys.SPEED_KMH] == 0 and got[keys.HEADING_DEG] == 0
    assert got[keys.SATELLITES] == 9 and got[keys.GPS_VALID] is True
    assert got[keys.IGNITION] is False
    assert (got[keys.MCC], got[keys.LAC]) == (460, 0x287D)


def test_status_values() -> None:
    assert values("status_relay_cut") == {
        keys.IGNITION: False,
        keys.CHARGING: True,
        keys.ENGINE_CUT: True,
        keys.DEFENCE: False,
        keys.POWER_CUT: False,
        keys.GSM_SIGNAL: 4,
        keys.BATTERY_LEVEL: 6,
    }
    assert values("heartbeat_voltage")[keys.BATTERY_VOLTAGE_V] == pytest.approx(2.9)


def test_alarm_values_name_the_alarm() -> None:
    got = values("alarm_26_shock")
    assert got[keys.ALARM] == "shock"
    assert got[keys.CHARGING] is True


def test_login_and_answers_carry_no_values() -> None:
    assert values("doc_login") == {}
    assert values("string_info_fuel_cut") == {}


def test_keys_shared_with_osmand_have_the_same_names() -> None:
    for name in ("LAT", "LON", "SPEED_KMH", "HEADING_DEG", "GPS_VALID", "CHARGING"):
        assert getattr(keys, name) == getattr(osmand_keys, name)
