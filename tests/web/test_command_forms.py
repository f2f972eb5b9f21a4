"""The device page's command forms: one per declared method, an input per parameter."""

from __future__ import annotations

import re

from m2mhub.core.values import Role
from m2mhub.registry.methods import parse_methods
from tests.web.conftest import Console

DOSER = parse_methods(
    [
        {
            "name": "set_rate",
            "description": "Set the dosing rate",
            "timeout_s": 10,
            "params": [
                {
                    "name": "rate",
                    "type": "number",
                    "required": True,
                    "min": 0,
                    "max": 12.5,
                    "unit": "l/h",
                    "description": "chlorine solution",
                },
                {"name": "ramp_s", "type": "integer", "default": 5, "min": 0, "unit": "s"},
                {"name": "mode", "type": "enum", "choices": ["auto", "manual"], "default": "auto"},
                {"name": "tag", "type": "enum", "choices": ["a", "b"], "required": True},
                {"name": "note", "type": "string"},
                {"name": "flush", "type": "boolean", "default": True},
            ],
        },
        {"name": "stop", "two_way": False},
    ]
)


async def doser_page(console: Console, role: Role) -> str:
    await console.api.device_type("doser", methods=DOSER)
    await console.api.new_device("doser-1", "doser")
    client = await console.client(role)
    response = await client.get("/console/devices/doser-1")
    assert response.status_code == 200
    return response.text


def form_of(html: str, method: str) -> str:
    found = re.search(rf'<form[^>]*aria-label="Send {method}".*?</form>', html, re.DOTALL)
    assert found, f"no form for {method}"
    return found.group(0)


def tag(html: str, element_id: str) -> str:
    found = re.search(rf'<(?:input|select)[^>]*id="{element_id}"[^>]*>', html, re.DOTALL)
    assert found, f"no input {element_id}"
    return re.sub(r"\s+", " ", found.group(0))


async def test_each_declared_method_has_a_form_with_typed_inputs(console: Console) -> None:
    html = await doser_page(console, Role.OPERATOR)
    assert html.count('<details class="method"') == 2
    assert '<summary><code>set_rate</code> <span class="muted">Set the dosing rate</span>' in html
    assert 'id="cmd-method"' not in html  # no free-form form for a type with methods
    form = form_of(html, "set_rate")
    assert '<input type="hidden" name="method" value="set_rate">' in form
    rate = tag(form, "cmd-set_rate-rate")
    for attribute in (
        'type="number"',
        'step="any"',
        'min="0"',
        'max="12.5"',
        "required",
        'data-in="params"',
        'aria-describedby="cmd-set_rate-rate-help"',
    ):
        assert attribute in rate, rate
    assert re.search(
        r'<label for="cmd-set_rate-rate">rate <span class="muted">\(l/h\)</span>', form
    )
    assert "chlorine solution · 0 to 12.5" in form
    ramp = tag(form, "cmd-set_rate-ramp_s")
    assert 'step="1"' in ramp and 'min="0"' in ramp and 'value="5"' in ramp
    assert "max=" not in ramp and "required" not in ramp
    mode = form[form.index('id="cmd-set_rate-mode"') :]
    assert "<option selected>auto</option><option>manual</option>" in mode.split("</select>")[0]
    tag_select = form[form.index('id="cmd-set_rate-tag"') :].split("</select>")[0]
    assert "required" in tag_select and '<option value="" disabled selected>choose…' in tag_select
    assert 'type="text"' in tag(form, "cmd-set_rate-note")
    flush = tag(form, "cmd-set_rate-flush")
    assert 'type="checkbox"' in flush and "checked" in flush
    assert "The device answers within 10 s." in form and "Send set_rate" in form
    assert "One-way: done once delivered." in form_of(html, "stop")


async def test_viewers_get_no_command_form(console: Console) -> None:
    html = await doser_page(console, Role.VIEWER)
    assert "<form" not in html.split('id="commands-h"')[1].split("</section>")[0]


async def test_a_type_without_methods_keeps_the_free_form_form(console: Console) -> None:
    client = await console.client(Role.OPERATOR)
    html = (await client.get("/console/devices/meter-1")).text
    assert 'id="cmd-method"' in html and 'id="cmd-params"' in html and "Send command" in html
    assert '<details class="method"' not in html
