"""Query endpoints: latest, history, aggregates, CSV export, status, assets over time."""

from __future__ import annotations

import csv
import io

from m2mhub.core.timeutil import format_ms, now_ms
from tests.conftest import Api

HOUR = 3_600_000


async def setup_fleet(api: Api) -> int:
    await api.device_type("sensor")
    for name in ("a", "b", "c"):
        await api.new_device(name)
    await api.platform.store.create_group(api.tenant.id, "ab")
    group = await api.platform.store.get_group(api.tenant.id, "ab")
    pks = [(await api.platform.store.get_device(d)).pk for d in ("a", "b")]
    await api.platform.store.set_group_members(group.id, add=pks)
    return now_ms() - now_ms() % HOUR - 3 * HOUR  # an hour boundary, 3 hours ago


async def test_latest_of_a_device_and_of_a_group(api: Api) -> None:
    t0 = await setup_fleet(api)
    await api.post(
        "a", [{"ts": t0, "values": {"t": 1, "s": "x"}}, {"ts": t0 + 5, "values": {"t": 2}}]
    )
    await api.post("b", {"ts": t0, "values": {"t": 7}})
    one = (await api.client.get("/api/v1/devices/a/latest", headers=api.admin)).json()
    assert one["values"] == {"t": {"ts": t0 + 5, "value": 2.0}, "s": {"ts": t0, "value": "x"}}
    assert one["status"] == "online"
    only_t = (await api.client.get("/api/v1/devices/a/latest?keys=t", headers=api.admin)).json()
    assert set(only_t["values"]) == {"t"}
    group = (await api.client.get("/api/v1/latest?group=ab&keys=t", headers=api.admin)).json()
    assert [(d["device"], d["values"]["t"]["value"]) for d in group] == [("a", 2.0), ("b", 7.0)]
    everyone = await api.client.get("/api/v1/latest?limit=2", headers=api.admin)
    assert [d["device"] for d in everyone.json()] == ["a", "b"]
    rest = await api.client.get(
        "/api/v1/latest",
        params={"limit": 2, "cursor": everyone.headers["x-next-cursor"]},
        headers=api.admin,
    )
    assert [(d["device"], d["status"], d["values"]) for d in rest.json()] == [
        ("c", "never_seen", {})
    ]


async def test_history_pages_through_all_points(api: Api) -> None:
    t0 = await setup_fleet(api)
    await api.post("a", [{"ts": t0 + i * 1000, "values": {"t": i, "u": -i}} for i in range(30)])
    seen = []
    params: dict[str, object] = {"from": t0, "to": t0 + HOUR, "limit": 8}
    while True:
        page = (
            await api.client.get("/api/v1/devices/a/telemetry", params=params, headers=api.admin)
        ).json()
        seen += page["items"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == 60
    assert {(p["key"], p["value"]) for p in seen[:2]} == {("t", 0.0), ("u", 0.0)}
    assert [p["ts"] for p in seen] == sorted(p["ts"] for p in seen)
    newest = await api.client.get(
        "/api/v1/devices/a/telemetry",
        params={"from": "-1d", "keys": "t", "order": "desc", "limit": 1},
        headers=api.admin,
    )
    assert newest.json()["items"] == [{"ts": t0 + 29_000, "device": "a", "key": "t", "value": 29.0}]


async def test_time_parameters(api: Api) -> None:
    t0 = await setup_fleet(api)
    await api.post("a", {"ts": t0, "values": {"t": 1}})
    iso = format_ms(t0)
    by_iso = await api.client.get(
        "/api/v1/devices/a/telemetry", params={"from": iso, "to": "now"}, headers=api.admin
    )
    assert len(by_iso.json()["items"]) == 1
    for params, field in [
        ({"from": "yesterday"}, "from"),
        ({"from": "-1h", "to": "-2h"}, "to"),
        ({"from": "-3x"}, "from"),
    ]:
        response = await api.client.get(
            "/api/v1/devices/a/telemetry", params=params, headers=api.admin
        )
        assert response.status_code == 422, params
        assert response.json()["error"]["field"] == field


async def test_aggregates(api: Api) -> None:
    t0 = await setup_fleet(api)
    await api.post("a", [{"ts": t0 + i * 60_000, "values": {"t": float(i)}} for i in range(120)])
    response = await api.client.get(
        "/api/v1/devices/a/aggregates",
        params={"key": "t", "bucket": "1h", "from": t0, "to": t0 + 2 * HOUR},
        headers=api.admin,
    )
    body = response.json()
    assert body["bucket_ms"] == HOUR
    assert body["buckets"] == [
        {
            "ts": t0,
            "min": 0.0,
            "max": 59.0,
            "avg": 29.5,
            "sum": 1770.0,
            "count": 60,
            "first": 0.0,
            "last": 59.0,
        },
        {
            "ts": t0 + HOUR,
            "min": 60.0,
            "max": 119.0,
            "avg": 89.5,
            "sum": 5370.0,
            "count": 60,
            "first": 60.0,
            "last": 119.0,
        },
    ]
    picked = await api.client.get(
        "/api/v1/devices/a/aggregates",
        params={
            "key": "t",
            "bucket": "30m",
            "fn": "max,count",
            "from": t0 + 1,
            "to": t0 + 3_000_000,
        },
        headers=api.admin,
    )
    # The range widens to whole buckets: [t0, t0 + 1h).
    assert picked.json()["buckets"] == [
        {"ts": t0, "max": 29.0, "count": 30},
        {"ts": t0 + 1_800_000, "max": 59.0, "count": 30},
    ]
    for params, field in [
        ({"key": "t", "bucket": "1ms"}, "bucket"),
        ({"key": "t", "bucket": "1s", "from": "-30d"}, "bucket"),
        ({"key": "t", "fn": "median"}, "fn"),
        ({"key": "t", "bucket": "soon"}, "bucket"),
        ({}, "key"),
    ]:
        bad = await api.client.get("/api/v1/devices/a/aggregates", params=params, headers=api.admin)
        assert bad.status_code == 422, params
        assert bad.json()["error"]["field"] == field, bad.json()


async def test_asset_history_follows_device_swaps(api: Api) -> None:
    t0 = await setup_fleet(api)
    # Tracker "a" on the generator for the first hour, then "b" replaces it.
    await api.client.post(
        "/api/v1/assets", json={"name": "gen-7", "kind": "generator"}, headers=api.admin
    )
    await api.client.post(
        "/api/v1/assets/gen-7/assignments", json={"device": "a", "at": t0}, headers=api.admin
    )
    await api.client.post(
        "/api/v1/assets/gen-7/assignments",
        json={"device": "b", "at": t0 + HOUR, "replaces": "a"},
        headers=api.admin,
    )
    await api.client.delete(
        f"/api/v1/assets/gen-7/assignments/b?at={t0 + 2 * HOUR}", headers=api.admin
    )
    await api.post(
        "a", [{"ts": t0 + i * 600_000, "values": {"hours": 100.0 + i}} for i in range(18)]
    )
    await api.post(
        "b", [{"ts": t0 + i * 600_000, "values": {"hours": 500.0 + i}} for i in range(18)]
    )
    history = await api.client.get(
        "/api/v1/assets/gen-7/telemetry",
        params={"from": t0, "to": t0 + 3 * HOUR},
        headers=api.admin,
    )
    points = [(p["device"], p["value"]) for p in history.json()["items"]]
    assert points == [("a", 100.0 + i) for i in range(6)] + [("b", 500.0 + i) for i in range(6, 12)]
    aggregates = await api.client.get(
        "/api/v1/assets/gen-7/aggregates",
        params={
            "key": "hours",
            "bucket": "1h",
            "from": t0,
            "to": t0 + 3 * HOUR,
            "fn": "min,max,count",
        },
        headers=api.admin,
    )
    assert aggregates.json()["buckets"] == [
        {"ts": t0, "min": 100.0, "max": 105.0, "count": 6},
        {"ts": t0 + HOUR, "min": 506.0, "max": 511.0, "count": 6},
    ]
    assignments = (
        await api.client.get("/api/v1/assets/gen-7/assignments", headers=api.admin)
    ).json()
    assert assignments == [
        {"device": "a", "from_ms": t0, "to_ms": t0 + HOUR},
        {"device": "b", "from_ms": t0 + HOUR, "to_ms": t0 + 2 * HOUR},
    ]
    exported = await api.client.get(
        "/api/v1/assets/gen-7/export.csv",
        params={"from": t0, "to": t0 + 3 * HOUR},
        headers=api.admin,
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["device"], r["value"]) for r in rows] == [(d, str(int(v))) for d, v in points]


async def test_csv_export_of_device_and_group(api: Api) -> None:
    t0 = await setup_fleet(api)
    await api.post(
        "a", [{"ts": t0 + i, "values": {"t": i + 0.5, "on": i % 2 == 0}} for i in range(6000)]
    )
    await api.post("b", {"ts": t0, "values": {"s": "x,y"}})
    await api.post("c", {"ts": t0, "values": {"t": 1}})
    response = await api.client.get(
        "/api/v1/devices/a/export.csv", params={"from": t0, "keys": "t"}, headers=api.admin
    )
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 6000
    assert rows[0]["device"] == "a" and rows[0]["value"] == "0.5" and rows[0]["time"].endswith("Z")
    group = await api.client.get(
        "/api/v1/groups/ab/export.csv", params={"from": t0}, headers=api.admin
    )
    rows = list(csv.DictReader(io.StringIO(group.text)))
    assert {r["device"] for r in rows} == {"a", "b"}
    assert len(rows) == 12_001
    assert {r["value"] for r in rows if r["key"] == "on"} == {"true", "false"}
    assert [r["value"] for r in rows if r["device"] == "b"] == ["x,y"]


async def test_status_summary(api: Api) -> None:
    await setup_fleet(api)
    await api.post("a", {"t": 1})
    store = api.platform.store
    device = await store.get_device("b")
    await store.write_readings(
        [(device.pk, now_ms() - 10 * HOUR, {"t": 1})], arrival_ms=now_ms() - 10 * HOUR
    )
    summary = (await api.client.get("/api/v1/status", headers=api.admin)).json()
    assert summary == {"online": 1, "offline": 1, "never_seen": 1}


async def test_assignment_periods_of_a_device_do_not_overlap(api: Api) -> None:
    t0 = await setup_fleet(api)
    await api.client.post("/api/v1/assets", json={"name": "pump"}, headers=api.admin)
    url = "/api/v1/assets/pump/assignments"
    assert (
        await api.client.post(url, json={"device": "a", "at": t0}, headers=api.admin)
    ).status_code == 201
    await api.client.delete(f"{url}/a?at={t0 + HOUR}", headers=api.admin)
    again = await api.client.post(url, json={"device": "a", "at": t0}, headers=api.admin)
    assert again.status_code == 409 and again.json()["error"]["field"] == "at"
    later = await api.client.post(url, json={"device": "a", "at": t0 + HOUR}, headers=api.admin)
    assert later.status_code == 201
