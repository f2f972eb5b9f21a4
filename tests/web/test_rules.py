"""The rules console: the list, enable/disable for admins, the editor's parse step, the trace
and the dry run, all with the REST API's roles."""

from __future__ import annotations

import re
import time
from typing import Any

from m2mhub.core.values import Role
from m2mhub.rules.model import Rule
from m2mhub.rules.service import save_rule
from tests.web.conftest import Console

OVERLOAD: dict[str, Any] = {
    "name": "overload",
    "description": "Power above 100 kW",
    "scope": {"type": "meter"},
    "condition": {"threshold": {"key": "power_kw", "above": 100, "clear_below": 90}},
    "actions": [{"alarm": {"severity": "major"}}],
}


async def _rule(console: Console, data: dict[str, Any]) -> None:
    rule = Rule.model_validate(data)
    await save_rule(console.api.platform.store, console.api.tenant.id, rule, source="api")


async def _open_alarm(console: Console, rule: str) -> None:
    platform = console.api.platform
    device = await platform.store.get_device("meter-1")
    await platform.alarms.raise_alarm(
        tenant_id=console.api.tenant.id,
        rule_id=1,
        rule_name=rule,
        device_pk=device.pk,
        device_id=device.id,
        type=rule,
        severity="major",
        message="too much",
        details={},
        actor="rule:1",
    )


async def test_the_list_shows_state_and_open_alarms_and_only_admins_get_switches(
    console: Console,
) -> None:
    await _rule(console, OVERLOAD)
    await _rule(console, {**OVERLOAD, "name": "quiet", "enabled": False})
    await _open_alarm(console, "overload")
    viewer = await console.client(Role.VIEWER)
    html = (await viewer.get("/console/rules")).text
    row = html[html.index('data-rule="overload"') :]
    assert '<span class="badge ok">enabled</span>' in row
    assert '<a href="/console/alarms?rule=overload">1</a>' in row  # open alarms, linked
    quiet = html[html.index('data-rule="quiet"') :]
    assert '<span class="badge paused">disabled</span>' in quiet
    for role in (Role.VIEWER, Role.OPERATOR):  # the rules API lets only admins change rules
        page = (await (await console.client(role)).get("/console/rules")).text
        assert "data-api" not in page and "New rule" not in page, role
    admin = (await (await console.client(Role.ADMIN)).get("/console/rules")).text
    assert 'data-api="/api/v1/rules/overload/disable"' in admin
    assert 'data-api="/api/v1/rules/quiet/enable"' in admin
    assert "New rule" in admin


async def test_enable_and_disable_go_through_the_api_which_refuses_operators(
    console: Console,
) -> None:
    await _rule(console, OVERLOAD)
    operator = await console.client(Role.OPERATOR)
    refused = await operator.post(
        "/api/v1/rules/overload/disable", headers={"X-CSRF-Token": await console.csrf(operator)}
    )
    assert refused.status_code == 403
    admin = await console.client(Role.ADMIN)
    done = await admin.post(
        "/api/v1/rules/overload/disable", headers={"X-CSRF-Token": await console.csrf(admin)}
    )
    assert done.status_code == 200 and done.json()["enabled"] is False
    table = await admin.get("/console/rules", headers={"HX-Request": "true"})
    assert "<html" not in table.text  # the table alone, for htmx to swap after the change
    assert 'data-api="/api/v1/rules/overload/enable"' in table.text


async def test_the_rule_page_edits_for_admins_and_shows_the_definition_to_viewers(
    console: Console,
) -> None:
    await _rule(console, OVERLOAD)
    viewer = (await (await console.client(Role.VIEWER)).get("/console/rules/overload")).text
    assert "above: 100" in viewer and "clear_below: 90" in viewer  # the definition, as YAML
    assert re.search(r'<textarea id="definition"[^>]*readonly', viewer)
    assert "data-save" not in viewer and ">Save<" not in viewer
    assert "Test against history" in viewer  # the dry run is a viewer's right too
    admin = (await (await console.client(Role.ADMIN)).get("/console/rules/overload")).text
    assert 'data-save="/api/v1/rules/overload" data-method="PUT"' in admin
    assert not re.search(r'<textarea id="definition"[^>]*readonly', admin)
    new = (await (await console.client(Role.ADMIN)).get("/console/rules/new")).text
    assert 'data-save="/api/v1/rules" data-method="POST"' in new
    missing = await (await console.client(Role.VIEWER)).get("/console/rules/nope")
    assert missing.status_code == 404 and "<html" in missing.text


async def test_a_rule_with_hidden_secrets_is_not_offered_for_editing(console: Console) -> None:
    hook = {"webhook": {"url": "https://hooks.example.com/x", "secret": "s3cret-value"}}
    await _rule(console, {**OVERLOAD, "actions": [*OVERLOAD["actions"], hook]})
    html = (await (await console.client(Role.ADMIN)).get("/console/rules/overload")).text
    assert "s3cret-value" not in html
    assert "********" in html and "change it in its rules file or through the API" in html
    assert "data-save" not in html  # saving would overwrite the secret with the stars


async def test_the_editor_text_is_parsed_and_the_api_names_the_field_at_fault(
    console: Console,
) -> None:
    await _rule(console, OVERLOAD)
    admin = await console.client(Role.ADMIN)
    csrf = {"X-CSRF-Token": await console.csrf(admin), "Content-Type": "text/plain"}
    text = (
        "name: overload\nscope: {type: meter}\ncondition:\n"
        "  threshold: {key: power_kw, above: 100, clear_below: 120}\n"
        "actions:\n  - alarm: {severity: major}\n"
    )
    parsed = await admin.post("/console/rules/parse", content=text, headers=csrf)
    assert parsed.status_code == 200
    assert parsed.json()["condition"]["threshold"]["clear_below"] == 120
    saved = await admin.put(
        "/api/v1/rules/overload", json=parsed.json(), headers={"X-CSRF-Token": csrf["X-CSRF-Token"]}
    )
    assert saved.status_code == 422
    assert saved.json()["error"]["field"] == "condition.threshold"
    assert "clear_below (120.0) must be <= above" in saved.json()["error"]["message"]
    broken = await admin.post("/console/rules/parse", content="name: [x\nscope: 1", headers=csrf)
    assert broken.status_code == 422
    assert broken.json()["error"]["field"] == "definition"
    assert broken.json()["error"]["message"].startswith("line ")
    listed = await admin.post("/console/rules/parse", content="- a\n- b\n", headers=csrf)
    assert listed.status_code == 422 and "one rule" in listed.json()["error"]["message"]
    no_token = await admin.post(
        "/console/rules/parse", content=text, headers={"Content-Type": "text/plain"}
    )
    assert no_token.status_code == 403
    stranger = await console.client(None)
    assert (await stranger.post("/console/rules/parse", content=text)).status_code == 401


async def test_the_trace_says_when_this_process_does_not_run_rules(console: Console) -> None:
    await _rule(console, OVERLOAD)
    html = (await (await console.client(Role.VIEWER)).get("/console/rules/overload")).text
    assert "This process does not run the rules" in html
    assert "The rule has not evaluated any device yet." in html


async def test_testing_against_history_is_the_api_dry_run_for_viewers(console: Console) -> None:
    now = int(time.time() * 1000)
    await console.api.post(
        "meter-1",
        [
            {"ts": now - 60_000, "values": {"power_kw": 150}},
            {"ts": now - 30_000, "values": {"power_kw": 80}},
        ],
    )
    viewer = await console.client(Role.VIEWER)
    answer = await viewer.post(
        "/api/v1/rules/test",
        json={"rules": [OVERLOAD], "from": "-1h", "device": "meter-1"},
        headers={"X-CSRF-Token": await console.csrf(viewer)},
    )
    assert answer.status_code == 200, answer.text
    [device] = answer.json()["devices"]
    assert [f["event"] for f in device["fired"]] == ["raised", "cleared"]
    assert await console.api.platform.store.list_alarms(console.api.tenant.id) == []
