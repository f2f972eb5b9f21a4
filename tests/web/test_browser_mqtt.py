"""The console in a real browser while devices speak MQTT to the embedded broker of a real
``m2mhub serve``: a published value appears live, and a command sent from the device page
reaches a real MQTT client, whose answer the page then shows; a method the device's type
declares is sent from its own form with typed parameters.

Without chromium or Playwright these tests are skipped, or fail when
``M2MHUB_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest

from m2mhub.core.values import Role
from tests.web.browser import (
    Fleet,
    chromium,
    new_page,
    require_browser,
    screenshot,
    serve_fleet,
    sign_in_as,
)

pytestmark = pytest.mark.slow

WAIT_S = 10.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_browser()
    # The embedded broker, on the free port m2mhub_env chose (M2MHUB_MQTT_PORT).
    directory = tmp_path_factory.mktemp("console-mqtt")
    with serve_fleet(directory, M2MHUB_MQTT_ENABLED="true") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _device(fleet: Fleet, device_id: str, client_id: str) -> paho.Client:
    """A paho client logged in as the device (its id and token), not yet connected."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(device_id, fleet.tokens[device_id])
    return client


def _publish(fleet: Fleet, device_id: str, topic: str, payload: str) -> None:
    """Connect as the device, publish at QoS 1, wait for the broker's PUBACK, disconnect."""
    client = _device(fleet, device_id, f"{device_id}-pub")
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect("127.0.0.1", fleet.mqtt_port)
    client.loop_start()
    try:
        assert connected.wait(WAIT_S), "the device could not connect to the embedded broker"
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), f"no PUBACK for {topic}"
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_value_published_over_mqtt_appears_live(browser: Any, fleet: Fleet) -> None:
    with new_page(browser, fleet.server) as page:
        sign_in_as(page, fleet.server, Role.VIEWER)
        page.goto(f"{fleet.server.url}/console/devices/meter-1")
        page.locator('#live[data-state="live"]').wait_for()
        page.evaluate("window.stillTheSamePage = true")
        reading = json.dumps({"power_kw": 42.5, "voltage_v": 231.0})
        _publish(fleet, "meter-1", "m2m/meter-1/telemetry", reading)
        page.locator('#values [data-key="power_kw"]', has_text="42.5").wait_for()
        page.locator('#values [data-key="voltage_v"]', has_text="231").wait_for()
        assert page.evaluate("window.stillTheSamePage") is True  # no reload
    latest = fleet.api("/api/v1/devices/meter-1/latest")
    assert "42.5" in json.dumps(latest)


def test_a_command_from_the_page_reaches_an_mqtt_device_and_its_answer_shows(
    browser: Any, fleet: Fleet
) -> None:
    device = _device(fleet, "meter-2", "meter-2")
    received: list[tuple[str, dict[str, Any]]] = []
    subscribed = threading.Event()

    def answer(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        command = json.loads(message.payload)
        received.append((message.topic, command))
        result = {"status": "succeeded", "result": {"relay": command["params"]["relay"]}}
        client.publish(f"{message.topic}/result", json.dumps(result), qos=1)

    def on_connect(client: paho.Client, *args: object) -> None:
        client.subscribe("m2m/meter-2/commands/+", qos=1)
        # The birth message: commands go over MQTT only to a device that said it is online.
        client.publish("m2m/meter-2/status", "online", qos=1, retain=True)

    device.on_message = answer
    device.on_subscribe = lambda *args: subscribed.set()
    device.on_connect = on_connect
    device.connect("127.0.0.1", fleet.mqtt_port)
    device.loop_start()
    try:
        assert subscribed.wait(WAIT_S), "the device could not subscribe to its commands"
        with new_page(browser, fleet.server) as page:
            sign_in_as(page, fleet.server, Role.OPERATOR)
            page.goto(f"{fleet.server.url}/console/devices/meter-2")
            page.locator('#live[data-state="live"]').wait_for()
            page.fill("#cmd-method", "set_relay")
            page.fill("#cmd-params", '{"relay": "on"}')
            page.click("button:has-text('Send command')")
            page.locator("#toast", has_text="Command queued").wait_for()
            done = page.locator("#commands li", has_text="set_relay")
            done.locator(".badge.cmd-succeeded").wait_for()  # updated live
            assert 'result {"relay":"on"}' in done.inner_text().replace(": ", ":")
            screenshot(page, "device-command")
    finally:
        device.loop_stop()
        device.disconnect()
    [(topic, command)] = received
    assert topic == f"m2m/meter-2/commands/{command['id']}"
    assert command["method"] == "set_relay" and command["params"] == {"relay": "on"}
    [stored] = fleet.api("/api/v1/devices/meter-2/commands")
    assert stored["status"] == "succeeded"
    assert stored["created_by"] == "user:operator@example.com"


DOSING_PUMP = {
    "name": "dosing-pump",
    "keys": [{"key": "rate_l_h", "unit": "l/h"}],
    "methods": [
        {"name": "stop", "description": "Stop dosing"},
        {
            "name": "set_rate",
            "description": "Set the dosing rate",
            "params": [
                {
                    "name": "rate",
                    "type": "number",
                    "required": True,
                    "min": 0,
                    "max": 12.5,
                    "unit": "l/h",
                },
                {"name": "ramp_s", "type": "integer", "default": 5, "min": 0, "unit": "s"},
                {"name": "mode", "type": "enum", "choices": ["auto", "manual"], "default": "auto"},
                {"name": "flush", "type": "boolean"},
            ],
        },
    ],
}


def _admin_post(fleet: Fleet, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(
        f"{fleet.server.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {fleet.admin_key}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_declared_method_sent_from_its_form_reaches_the_device_typed(
    browser: Any, fleet: Fleet
) -> None:
    _admin_post(fleet, "/api/v1/device-types", DOSING_PUMP)
    created = _admin_post(
        fleet, "/api/v1/devices", {"name": "doser-1", "type": "dosing-pump", "id": "doser-1"}
    )
    fleet.tokens["doser-1"] = created["token"]
    device = _device(fleet, "doser-1", "doser-1")
    received: list[dict[str, Any]] = []
    subscribed = threading.Event()

    def answer(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        command = json.loads(message.payload)
        received.append(command)
        result = {"status": "succeeded", "result": {"rate_l_h": command["params"]["rate"] * 2}}
        client.publish(f"{message.topic}/result", json.dumps(result), qos=1)

    def on_connect(client: paho.Client, *args: object) -> None:
        client.subscribe("m2m/doser-1/commands/+", qos=1)
        client.publish("m2m/doser-1/status", "online", qos=1, retain=True)

    device.on_message = answer
    device.on_subscribe = lambda *args: subscribed.set()
    device.on_connect = on_connect
    device.connect("127.0.0.1", fleet.mqtt_port)
    device.loop_start()
    try:
        assert subscribed.wait(WAIT_S), "the device could not subscribe to its commands"
        with new_page(browser, fleet.server) as page:
            sign_in_as(page, fleet.server, Role.OPERATOR)
            page.goto(f"{fleet.server.url}/console/devices/doser-1")
            page.locator('#live[data-state="live"]').wait_for()
            assert page.locator("#cmd-method").count() == 0  # no free-form form
            # By keyboard: open the method's section, fill its number, send with Enter.
            summary = page.locator("details.method summary", has_text="set_rate")
            summary.focus()
            page.keyboard.press("Enter")
            rate = page.get_by_label("rate (l/h)")
            rate.wait_for()
            assert rate.get_attribute("max") == "12.5" and rate.get_attribute("type") == "number"
            rate.fill("7.5")
            page.get_by_label("mode").select_option("manual")
            screenshot(page, "device-command-form")
            rate.press("Enter")
            page.locator("#toast", has_text="Command set_rate queued").wait_for()
            done = page.locator("#commands li", has_text="set_rate")
            done.locator(".badge.cmd-succeeded").wait_for()  # updated live
            assert 'result {"rate_l_h":15.0}' in done.inner_text().replace(": ", ":")
            screenshot(page, "device-declared-command")
    finally:
        device.loop_stop()
        device.disconnect()
    [command] = received
    assert command["method"] == "set_rate"
    params = command["params"]
    assert params == {"rate": 7.5, "ramp_s": 5, "mode": "manual", "flush": False}
    assert isinstance(params["rate"], float) and isinstance(params["ramp_s"], int)
    [stored] = fleet.api("/api/v1/devices/doser-1/commands")
    assert stored["status"] == "succeeded" and stored["result"] == {"rate_l_h": 15.0}
