"""Decoding real telegrams: every DSMR version, e-MUCS, CRC and grammar errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from m2mhub.connect.dsmr import (
    ChecksumError,
    MBusDevice,
    Measurement,
    PowerFailure,
    TelegramFormatError,
    decode_telegram,
)
from m2mhub.connect.dsmr import const as k
from tests.connect.dsmr import replace, telegram, with_crc


def utc_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


def test_dsmr50_spec_example() -> None:
    # The standard's own example: its printed CRC (EF2F) was not computed over the
    # printed text (E47C is), so the CRC check must refuse it as it stands...
    data = telegram("dsmr50_spec_example")
    with pytest.raises(ChecksumError) as caught:
        decode_telegram(data)
    assert caught.value.line == 38
    assert "EF2F" in caught.value.message and "E47C" in caught.value.message
    # ... and its content decodes as section 6.12 explains it.
    decoded = decode_telegram(data, verify_crc=False)
    assert decoded.version == "50"
    assert decoded.header == "/ISk5\\2MT382-1000"
    assert decoded.manufacturer == "ISk"
    assert decoded.equipment_id == "K8EG004046395507"
    assert decoded.ts == utc_ms(2010, 12, 9, 10, 30, 20)  # 11:30:20 winter time
    assert decoded.values[k.ENERGY_IMPORT_T1_KWH] == 123456.789
    assert decoded.values[k.TARIFF] == 2
    assert decoded.values[k.POWER_IMPORT_KW] == 1.193
    assert decoded.values[k.POWER_FAILURES] == 4
    assert decoded.values[k.POWER_FAILURES_LONG] == 2
    assert decoded.values[k.VOLTAGE_SAGS_L1] == 2
    assert decoded.values[k.VOLTAGE_SWELLS_L2] == 3
    assert [decoded.values[key] for key in (k.VOLTAGE_L1_V, k.VOLTAGE_L2_V, k.VOLTAGE_L3_V)] == [
        220.1,
        220.2,
        220.3,
    ]
    assert decoded.values[k.CURRENT_L3_A] == 3.0
    assert decoded.values[k.POWER_EXPORT_L3_KW] == 6.666
    # "Failure at 2010, December 8th, 15h24m15s, duration 240 seconds"
    assert decoded.power_failures == (
        PowerFailure(utc_ms(2010, 12, 8, 14, 24, 15), 240),
        PowerFailure(utc_ms(2010, 12, 8, 14, 10, 4), 301),
    )
    # "captured by the G meter at 2010, December 9th, at 11h25m00s Wintertime"
    assert decoded.measurements == (
        Measurement(k.GAS_M3, utc_ms(2010, 12, 9, 10, 25), 12785.123, 1),
    )
    assert decoded.devices == (MBusDevice(1, k.MBUS_GAS, "2222ABCD123456789"),)


def test_dsmr50_meter_telegram_with_valid_crc() -> None:
    decoded = decode_telegram(telegram("dsmr50_iskra_am550"))
    assert decoded.crc == 0x6EEE
    assert decoded.ts == utc_ms(2017, 1, 2, 18, 20, 2)
    assert decoded.values[k.ENERGY_IMPORT_T1_KWH] == 4.426
    assert decoded.values[k.ENERGY_EXPORT_T1_KWH] == 2.444
    assert decoded.values[k.CURRENT_L1_A] == 0.48
    assert decoded.power_failures == ()
    gas = Measurement(k.GAS_M3, utc_ms(2017, 1, 2, 15, 10, 5), 0.107, 1)
    assert decoded.measurements == (gas,)
    # Channel 2 announces a gas meter but sends no value: a device, no reading.
    assert decoded.devices[1] == MBusDevice(2, k.MBUS_GAS, None)
    assert decoded.readings(arrival_ms=0) == [
        (gas.ts, {k.GAS_M3: 0.107}),
        (decoded.ts, decoded.values),
    ]


def test_dsmr42_telegram() -> None:
    decoded = decode_telegram(telegram("dsmr42_kaifa"))
    assert decoded.version == "42"
    assert decoded.crc == 0x6796
    assert decoded.ts == utc_ms(2016, 11, 13, 19, 57, 57)
    assert decoded.values[k.ENERGY_IMPORT_T2_KWH] == 1435.706
    assert decoded.values[k.POWER_IMPORT_KW] == 2.027
    assert decoded.values[k.CURRENT_L2_A] == 6.0
    assert k.VOLTAGE_L1_V not in decoded.values  # DSMR 4.2 meters need not send voltages
    # Equipment ids that are not hex-encoded text are kept as sent.
    assert decoded.equipment_id == "3960221976967177082151037881335713"
    assert [failure.duration_s for failure in decoded.power_failures] == [
        237126,
        2147583646,
        2317482647,
    ]
    assert decoded.power_failures[0].end_ts == utc_ms(2000, 1, 4, 17, 3, 20)
    assert decoded.measurements == (Measurement(k.GAS_M3, utc_ms(2016, 11, 29, 19), 981.443, 1),)


def test_emucs_fluvius_telegram() -> None:
    decoded = decode_telegram(telegram("emucs_fluvius_v171"))
    assert decoded.version == "50217"
    assert decoded.manufacturer == "FLU"
    assert decoded.ts == utc_ms(2020, 5, 12, 11, 54, 9)  # 13:54:09 summer time
    assert decoded.values[k.ENERGY_IMPORT_T2_KWH] == 15.758
    assert decoded.values[k.ENERGY_EXPORT_T2_KWH] == 0.011
    assert decoded.values[k.TARIFF] == 1
    assert decoded.values[k.DEMAND_AVG_KW] == 2.351
    assert decoded.values[k.BREAKER_STATE] == 1
    assert decoded.values[k.VOLTAGE_L3_V] == 234.7
    assert decoded.measurements == (
        Measurement(k.DEMAND_PEAK_MONTH_KW, utc_ms(2020, 5, 9, 11, 45, 58), 2.589, 0),
        Measurement(k.GAS_M3, utc_ms(2020, 5, 12, 11, 45, 58), 112.384, 1),
        Measurement(k.WATER_M3, utc_ms(2020, 5, 12, 11, 45, 58), 872.234, 2),
    )
    assert decoded.devices == (
        MBusDevice(1, k.MBUS_GAS, "7FLO2119033733"),
        MBusDevice(2, k.MBUS_WATER, "8SAG1234567890"),
    )
    # The 13-month peak history has no key: kept as an object, not a reading.
    history = [obj for obj in decoded.objects if obj.obis == "0-0:98.1.0"]
    assert history[0].values[0] == "3" and history[0].line == 12
    # Gas and water share their timestamp: one reading.
    assert decoded.readings(arrival_ms=0)[1] == (
        utc_ms(2020, 5, 12, 11, 45, 58),
        {k.GAS_M3: 112.384, k.WATER_M3: 872.234},
    )


def test_dsmr22_telegram_without_crc_or_clock() -> None:
    decoded = decode_telegram(telegram("dsmr22_iskra_mt382"))
    assert decoded.crc is None and decoded.version is None and decoded.ts is None
    assert decoded.values[k.ENERGY_IMPORT_T1_KWH] == 1.001
    assert decoded.values[k.POWER_IMPORT_KW] == 1.01
    assert decoded.values[k.TARIFF] == 1
    # 0-1:24.3.0 with its value on the next line; no S/W: Dutch local time (CET in November).
    gas = Measurement(k.GAS_M3, utc_ms(2016, 11, 7, 18), 1.001, 1)
    assert decoded.measurements == (gas,)
    arrival = utc_ms(2016, 11, 7, 18, 3)
    assert decoded.readings(arrival_ms=arrival) == [
        (gas.ts, {k.GAS_M3: 1.001}),
        (arrival, decoded.values),
    ]


def test_one_changed_digit_is_a_crc_error() -> None:
    data = telegram("dsmr50_iskra_am550").replace(b"000004.426", b"000004.427")
    with pytest.raises(ChecksumError) as caught:
        decode_telegram(data)
    assert caught.value.line == 40
    assert caught.value.code == "telegram_crc_mismatch"
    assert "6EEE" in caught.value.message


def test_a_changed_crc_digit_is_a_crc_error() -> None:
    with pytest.raises(ChecksumError):
        decode_telegram(telegram("emucs_fluvius_v171").replace(b"!3AD7", b"!3AD8"))


def test_lowercase_crc_digits_are_accepted() -> None:
    assert decode_telegram(telegram("dsmr42_kaifa")).crc == 0x6796
    assert decode_telegram(telegram("dsmr50_iskra_am550").replace(b"!6EEE", b"!6eee")).crc == 0x6EEE


def test_a_dsmr4_telegram_without_crc_is_refused() -> None:
    data = telegram("dsmr42_kaifa").replace(b"!6796", b"!")
    with pytest.raises(TelegramFormatError) as caught:
        decode_telegram(data)
    assert "DSMR 4.2" in caught.value.message and caught.value.line == 36


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (telegram("dsmr50_iskra_am550")[:500], 23, "cut short"),
        (b"1-0:1.8.1(000004.426*kWh)\r\n!", 1, "starts with '/'"),
        (telegram("dsmr42_kaifa").replace(b"!6796", b"!67"), 36, "4 hex CRC digits"),
        (replace("dsmr42_kaifa", b"1-0:1.7.0(02.027*kW)", b"1-0:1.7.0 02.027 kW"), 11, "COSEM"),
        (replace("dsmr42_kaifa", b"1-0:1.7.0(02.027*kW)", b"1-0:1.7.0(2,027*kW)"), 11, "number"),
        (replace("dsmr42_kaifa", b"1-0:1.7.0(02.027*kW)", b"1-0:1.7.0(02.027*MW)"), 11, "unit"),
        (replace("dsmr42_kaifa", b"161113205757W", b"161313205757W"), 4, "valid date"),
        (replace("dsmr42_kaifa", b"161113205757W", b"1611132057W"), 4, "timestamp"),
        (replace("dsmr42_kaifa", b"(3)(0-0:96.7.19)", b"(4)(0-0:96.7.19)"), 15, "announces 4"),
        (replace("dsmr42_kaifa", b"1-0:1.8.2(", b"1-0:1.8.2(\xe9"), 7, "not ASCII"),
        (telegram("dsmr22_iskra_mt382").replace(b"(00001.001)\r\n", b""), 17, "next line"),
    ],
)
def test_malformed_telegrams_name_the_line(data: bytes, line: int, words: str) -> None:
    with pytest.raises(TelegramFormatError) as caught:
        decode_telegram(data)
    assert caught.value.line == line, caught.value.message
    assert words in caught.value.message
    assert caught.value.message.startswith(f"line {line}: ")


def test_unknown_obis_codes_are_kept_not_fatal() -> None:
    data = replace(
        "dsmr50_iskra_am550",
        b"0-0:96.13.0()\r\n",
        b"0-0:96.13.0()\r\n1-0:14.7.0(50.01*Hz)\r\n1-0:0.0.0*255(0272031312565)\r\n",
    )
    decoded = decode_telegram(data)
    unknown = {obj.obis: obj.values for obj in decoded.objects if obj.line in (23, 24)}
    assert unknown == {"1-0:14.7.0": ("50.01*Hz",), "1-0:0.0.0": ("0272031312565",)}
    assert decoded.values == decode_telegram(telegram("dsmr50_iskra_am550")).values


def test_watt_and_watt_hour_are_converted() -> None:
    data = replace("dsmr42_kaifa", b"1-0:1.7.0(02.027*kW)", b"1-0:1.7.0(000002027*W)")
    assert decode_telegram(data).values[k.POWER_IMPORT_KW] == 2.027


def test_a_second_gas_meter_gets_its_channel_in_the_key() -> None:
    data = replace(
        "dsmr50_iskra_am550", b"0-2:96.1.0()\r\n", b"0-2:24.2.1(170102161005W)(00012.500*m3)\r\n"
    )
    keys = [m.key for m in decode_telegram(data).measurements]
    assert keys == [k.GAS_M3, f"{k.GAS_M3}_ch2"]


@pytest.mark.parametrize(
    ("tst", "expected"),
    [
        # 2023-03-26: 02:00 CET became 03:00 CEST.
        (b"230326015959W", utc_ms(2023, 3, 26, 0, 59, 59)),
        (b"230326030000S", utc_ms(2023, 3, 26, 1)),
        # 2023-10-29: 03:00 CEST became 02:00 CET; 02:30 happened twice.
        (b"231029023000S", utc_ms(2023, 10, 29, 0, 30)),
        (b"231029023000W", utc_ms(2023, 10, 29, 1, 30)),
        (b"231029030000W", utc_ms(2023, 10, 29, 2)),
        (b"230715120000S", utc_ms(2023, 7, 15, 10)),
        (b"231231235959W", utc_ms(2023, 12, 31, 22, 59, 59)),
    ],
)
def test_timestamps_follow_the_summer_winter_flag(tst: bytes, expected: int) -> None:
    data = replace("dsmr50_iskra_am550", b"170102192002W", tst)
    assert decode_telegram(data).ts == expected


def test_timestamps_without_flag_are_read_in_the_meters_zone() -> None:
    data = replace("dsmr22_iskra_mt382", b"161107190000", b"230715120000")
    data = data[: data.index(b"!") + 1] + b"\r\n"  # DSMR 2.2: no CRC
    assert decode_telegram(data).measurements[0].ts == utc_ms(2023, 7, 15, 10)
    assert decode_telegram(data, zone="Europe/Brussels").measurements[0].ts == utc_ms(
        2023, 7, 15, 10
    )


def test_with_crc_matches_the_meters_own() -> None:
    body = telegram("dsmr50_iskra_am550")
    assert with_crc(body[: body.index(b"!") + 1]) == body
