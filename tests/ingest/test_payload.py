"""Telemetry payload parsing: the three shapes, the limits, and what must be refused."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2mhub.core.errors import PayloadError
from m2mhub.ingest.payload import MIN_TS_MS, Limits, parse_attributes, parse_telemetry

NOW = 1_764_000_000_000


def parse(body: object, **limits: int) -> list[tuple[int, dict]]:
    return parse_telemetry(json.dumps(body).encode(), now=NOW, limits=Limits(**limits))


def test_timed_reading() -> None:
    assert parse({"ts": NOW - 5, "values": {"temp": 21.5, "on": True, "mode": "eco"}}) == [
        (NOW - 5, {"temp": 21.5, "on": True, "mode": "eco"})
    ]


def test_bare_object_is_stamped_on_arrival() -> None:
    assert parse({"temp": 21.5}) == [(NOW, {"temp": 21.5})]


def test_bare_object_with_ts_member() -> None:
    assert parse({"ts": NOW - 1000, "temp": 1}) == [(NOW - 1000, {"temp": 1})]


def test_values_without_ts_are_stamped_on_arrival() -> None:
    assert parse({"values": {"temp": 2}}) == [(NOW, {"temp": 2})]


def test_batch_keeps_original_timestamps_and_order() -> None:
    body = [{"ts": NOW - 3000, "values": {"a": 1}}, {"a": 2}, {"ts": NOW - 9000, "a": 3}]
    assert parse(body) == [(NOW - 3000, {"a": 1}), (NOW, {"a": 2}), (NOW - 9000, {"a": 3})]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"{not json", "body"),
        (b"[1e999]", "body"),
        (b'{"t": NaN}', "body"),
        (b'{"t": Infinity}', "body"),
        (b"[]", "body"),
        (b"42", "body"),
        (b"{}", "values"),
        (b'{"t": null}', "values.t"),
        (b'{"t": [1, 2]}', "values.t"),
        (b'{"t": {"x": 1}}', "values.t"),
        (b'{"bad key": 1}', "values.bad key"),
        (b'{"ts": "yesterday", "values": {"t": 1}}', "ts"),
        (b'{"ts": 1764000000, "values": {"t": 1}}', "ts"),
        (b'{"ts": 1.5e12, "values": {"t": 1}}', "ts"),
        (b'{"ts": true, "values": {"t": 1}}', "ts"),
        (b'{"ts": 1764000000000, "values": {"t": 1}, "extra": 1}', "extra"),
        (b'{"values": {}}', "values"),
        (b'{"values": 5}', "values"),
        (b'{"ts": 1764000000000, "values": "x"}', "values"),
        (b'{"s": "a\\u0000b"}', "values.s"),
        (b'[{"ts": 1764000000000, "values": {"s": "\\u0000"}}]', "[0].values.s"),
        (b'[{"t": 1}, {"t": "x", "u": null}]', "[1].values.u"),
        (b'[{"t": 1}, 5]', "[1]"),
    ],
)
def test_rejected_with_the_field_at_fault(body: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_telemetry(body, now=NOW)
    assert caught.value.field == field


def test_future_timestamps_beyond_tolerance_are_refused() -> None:
    assert parse({"ts": NOW + 299_000, "values": {"t": 1}})
    with pytest.raises(PayloadError, match="future"):
        parse({"ts": NOW + 301_000, "values": {"t": 1}})


def test_limits() -> None:
    with pytest.raises(PayloadError, match="at most 3"):
        parse([{"t": 1}] * 4, max_readings=3)
    with pytest.raises(PayloadError, match="longer than 5"):
        parse({"s": "abcdef"}, max_string=5)
    with pytest.raises(PayloadError, match="more than 2 values"):
        parse({"a": 1, "b": 2, "c": 3}, max_values=2)


def test_attributes_take_any_json_value() -> None:
    body = json.dumps({"fw": "1.2", "cfg": {"rate": 5}, "tags": [1], "x": None}).encode()
    assert parse_attributes(body) == {"fw": "1.2", "cfg": {"rate": 5}, "tags": [1], "x": None}
    with pytest.raises(PayloadError):
        parse_attributes(b"[]")
    with pytest.raises(PayloadError) as caught:
        parse_attributes(b'{"a/b": 1}')
    assert caught.value.field == "a/b"


# -- properties -------------------------------------------------------------------------

keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,20}", fullmatch=True)
values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    # NUL is refused; lone surrogates are not Unicode text.
    st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=50),
)
value_maps = st.dictionaries(
    keys.filter(lambda k: k not in ("ts", "values")), values, min_size=1, max_size=8
)
timestamps = st.integers(min_value=MIN_TS_MS, max_value=NOW + 300_000)
readings = st.lists(st.tuples(timestamps, value_maps), min_size=1, max_size=20)


@given(readings)
def test_any_valid_batch_round_trips(batch: list[tuple[int, dict]]) -> None:
    body = json.dumps([{"ts": ts, "values": v} for ts, v in batch]).encode()
    assert parse_telemetry(body, now=NOW) == batch


@given(value_maps)
def test_any_bare_object_round_trips(reading: dict) -> None:
    assert parse_telemetry(json.dumps(reading).encode(), now=NOW) == [(NOW, reading)]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_payload_error(body: bytes) -> None:
    try:
        result = parse_telemetry(body, now=NOW)
    except PayloadError as exc:
        assert exc.field is not None
        return
    for ts, values in result:
        assert MIN_TS_MS <= ts <= NOW + 300_000
        for value in values.values():
            assert isinstance(value, bool | int | float | str)
            assert not isinstance(value, float) or math.isfinite(value)


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=10,
    )
)
def test_any_json_document_parses_or_raises_payload_error(document: object) -> None:
    try:
        body = json.dumps(document).encode()
    except ValueError:
        return
    with contextlib.suppress(PayloadError):
        parse_telemetry(body, now=NOW)
