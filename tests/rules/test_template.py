"""Notification templates: fixed placeholders, nothing interpreted beyond them."""

from __future__ import annotations

import pytest

from m2mhub.rules.template import check_template, render

NAMES = {"device": "t1", "temp": 81.25, "pump.state": "off", "alarm": 7, "empty": None}


def test_placeholders_and_format_specs() -> None:
    assert render("{device}: {temp:.1f} C, pump {pump.state}", NAMES) == "t1: 81.2 C, pump off"
    assert render("alarm #{alarm:04d}", NAMES) == "alarm #0007"
    assert render("{device:.1f}", NAMES) == "t1"  # a spec on text is ignored
    assert render("[{empty}]", NAMES) == "[]"


def test_braces_and_unknown_names_stay_as_written() -> None:
    assert render("{{device}} {devcie}", NAMES) == "{device} {devcie}"
    # No attribute access or indexing: only the names handed in exist.
    assert render("{device.__class__} {device[0]}", NAMES) == "{device.__class__} {device[0]}"


@pytest.mark.parametrize("text", ["{device", "device}", "{}", "{device[0]}", "{a b}"])
def test_unbalanced_braces_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unmatched"):
        check_template(text)


def test_a_checked_template_renders() -> None:
    assert check_template("{{ok}} {device}") == "{{ok}} {device}"
