"""The map page: located devices and assets, geofences of rules, and the tile server setting."""

from __future__ import annotations

import json
import re
from typing import Any

from m2mhub.core.values import Role
from m2mhub.rules.model import Rule
from m2mhub.rules.service import save_rule
from m2mhub.web.geomap import content_policy
from tests.web.conftest import Console

FENCE: dict[str, Any] = {
    "name": "depot",
    "scope": {"type": "meter"},
    "condition": {
        "geofence": {"polygon": [[48.85, 2.34], [48.86, 2.34], [48.86, 2.36]], "trigger": "outside"}
    },
    "actions": [{"alarm": {"severity": "warning"}}],
}


def _data(html: str) -> Any:
    found = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', html, re.S)
    assert found, html
    return json.loads(found.group(1))


async def test_the_map_carries_located_devices_assets_and_geofences(console: Console) -> None:
    api = console.api
    await api.post("meter-1", {"lat": 48.8566, "lon": 2.3522, "power_kw": 3})
    await api.post("meter-2", {"power_kw": 1})  # no position: not on the map
    await api.client.post(
        "/api/v1/assets", json={"name": "truck-7", "kind": "truck"}, headers=api.admin
    )
    await api.client.post(
        "/api/v1/assets/truck-7/assignments", json={"device": "meter-1"}, headers=api.admin
    )
    rule = Rule.model_validate(FENCE)
    await save_rule(api.platform.store, api.tenant.id, rule, source="api")
    viewer = await console.client(Role.VIEWER)
    page = await viewer.get("/console/map")
    assert page.status_code == 200
    data = _data(page.text)
    [device, asset] = data["points"]
    assert (device["kind"], device["id"], device["status"]) == ("device", "meter-1", "online")
    assert (device["lat"], device["lon"]) == (48.8566, 2.3522)
    assert (asset["kind"], asset["id"], asset["device"]) == ("asset", "truck-7", "meter-1")
    [fence] = data["fences"]
    assert fence["rule"] == "depot" and fence["trigger"] == "outside"
    assert fence["polygon"][0] == [48.85, 2.34]
    assert fence["definition"] is None  # a viewer gets nothing to edit
    assert "data-edit-fence" not in page.text
    assert data["tiles"]["url"] == ""  # no tiles by default: a plain background
    assert "img-src 'self' data:;" in page.headers["content-security-policy"]
    assert "/console/static/vendor/leaflet.js" in page.text
    admin = await console.client(Role.ADMIN)
    admin_page = await admin.get("/console/map")
    assert _data(admin_page.text)["fences"][0]["definition"]["name"] == "depot"
    assert "data-edit-fence" in admin_page.text


async def test_an_empty_tenant_gets_empty_states(console: Console) -> None:
    html = (await (await console.client(Role.VIEWER)).get("/console/map")).text
    assert "No device has reported a position yet" in html
    assert "No rule has a geofence condition" in html


def test_a_tile_server_is_added_to_the_content_security_policy() -> None:
    assert "img-src 'self' data:;" in content_policy("")
    policy = content_policy("https://tiles.example.net/osm/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://tiles.example.net;" in policy
    assert "connect-src 'self'" in policy  # nothing else opens up
    subdomains = content_policy("https://{s}.tiles.example.net/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://*.tiles.example.net;" in subdomains


async def test_a_configured_tile_server_reaches_the_page_and_its_policy(console: Console) -> None:
    settings = console.api.platform.settings
    settings.console_tile_url = "https://tiles.example.net/{z}/{x}/{y}.png"
    settings.console_tile_attribution = "© OpenStreetMap contributors"
    page = await (await console.client(Role.VIEWER)).get("/console/map")
    tiles = _data(page.text)["tiles"]
    assert tiles == {
        "url": "https://tiles.example.net/{z}/{x}/{y}.png",
        "attribution": "© OpenStreetMap contributors",
    }
    assert (
        "img-src 'self' data: https://tiles.example.net;"
        in (page.headers["content-security-policy"])
    )
    other = await (await console.client(Role.VIEWER)).get("/console/rules")
    assert "tiles.example.net" not in other.headers["content-security-policy"]  # the map only
