"""Webhook and notification actions of rules, delivered to real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from m2mhub.actions import verify_signature
from m2mhub.core.timeutil import now_ms
from m2mhub.store.models import Delivery
from tests.actions.conftest import Receiver, wait_for
from tests.rules.helpers import Hub

SECRET = "s3cret-shared-with-the-receiver"


def hot_rule(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {
        "name": "hot",
        "description": "Boiler too hot",
        "scope": {"device": "t1"},
        "condition": {"threshold": {"key": "temp", "above": 80, "clear_below": 75}},
        "actions": [
            {"alarm": {"severity": "critical", "message": "too hot"}},
            {"webhook": {"url": receiver.url, "secret": SECRET, "headers": {"X-Team": "boilers"}}},
        ],
        "clear_actions": [{"webhook": {"url": receiver.url, "secret": SECRET}}],
        **extra,
    }


async def received(receiver: Receiver, count: int = 1) -> list[Any]:
    """The first ``count`` requests the receiver got, once it got them."""

    async def enough() -> list[Any] | None:
        got = receiver.received()
        return got if len(got) >= count else None

    return list(await wait_for(enough, what=f"{count} request(s) at the receiver"))


async def deliveries(hub: Hub, kind: str) -> list[Delivery]:
    return await hub.platform.store.list_deliveries(hub.tenant.id, kind=kind, source="rule:hot")


async def trace(hub: Hub, rule: str = "hot") -> list[dict[str, Any]]:
    response = await hub.client.get(f"/api/v1/rules/{rule}/trace", headers=hub.admin)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_a_rule_posts_a_signed_webhook_once_per_transition(
    hub_with_outbox: Hub, receiver: Receiver
) -> None:
    hub = hub_with_outbox
    await hub.new_device("t1")
    await hub.rule(hot_rule(receiver))
    t = hub.clock.now
    await hub.send("t1", t, temp=70)
    await hub.send("t1", t + 1000, temp=85)
    await hub.send("t1", t + 2000, temp=90)  # still on: nothing more
    assert len(await deliveries(hub, "webhook")) == 1
    [request] = await received(receiver)
    assert verify_signature(SECRET, request.body, request.headers["X-M2MHub-Signature"])
    assert request.headers["X-M2MHub-Source"] == "rule:hot"
    assert request.headers["X-Team"] == "boilers"
    [alarm] = await hub.alarms()
    assert request.json() == {
        "event": "raised",
        "rule": "hot",
        "description": "Boiler too hot",
        "device": "t1",
        "device_name": "t1",
        "ts": t + 1000,
        "time": datetime.fromtimestamp((t + 1000) / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "trigger": "reading",
        "values": {"temp": 85.0},
        "alarm": {
            "id": alarm.id,
            "severity": "critical",
            "type": "hot",
            "message": "too hot",
            "status": "active",
        },
    }
    [entry] = [e for e in await trace(hub) if e["transition"] == "raise"]
    assert entry["actions"][1].startswith("webhook wh_") and receiver.url in entry["actions"][1]

    await hub.send("t1", t + 3000, temp=70)
    assert len(await deliveries(hub, "webhook")) == 2
    cleared = (await received(receiver, 2))[1]
    assert cleared.json()["event"] == "cleared" and cleared.json()["alarm"]["status"] == "cleared"
    assert verify_signature(SECRET, cleared.body, cleared.headers["X-M2MHub-Signature"])
    assert "X-Team" not in cleared.headers
    # Delivered, then audited under the rule, like every automatic action.
    audit = await hub.platform.store.list_audit(
        hub.tenant.id, start=0, end=now_ms() + 1, actor="rule:hot", action="rule.webhook"
    )
    assert [e.result for e in audit] == ["ok", "ok"]
    assert all(e.details["url"] == receiver.url and "secret" not in e.details for e in audit)


async def test_secrets_are_hidden_when_a_rule_is_read(hub: Hub, receiver: Receiver) -> None:
    await hub.new_device("t1")
    rule = hot_rule(receiver)
    rule["actions"].append({"notify": {"recipients": ["json://user:pa55word@127.0.0.1/hook"]}})
    await hub.rule(rule)
    shown = (await hub.client.get("/api/v1/rules/hot", headers=hub.admin)).json()["rule"]
    webhook, notify = shown["actions"][1]["webhook"], shown["actions"][2]["notify"]
    assert webhook["secret"] == "********" and webhook["headers"] == {"X-Team": "********"}
    assert "pa55word" not in str(notify)


def json_url(receiver: Receiver) -> str:
    return receiver.url.replace("http://", "json://")


async def test_a_rule_notifies_with_its_templates(hub_with_outbox: Hub, receiver: Receiver) -> None:
    hub = hub_with_outbox
    await hub.new_device("t1")
    await hub.rule(
        {
            "name": "hot",
            "scope": {"device": "t1"},
            "condition": {"threshold": {"key": "temp", "above": 80}},
            "actions": [
                {"alarm": {"severity": "major"}},
                {
                    "notify": {
                        "recipients": [json_url(receiver)],
                        "title": "{rule}: {device} at {temp:.1f} C",
                        "body": "Alarm {alarm} ({severity}), {values}; {{literal}} {unknown}",
                    }
                },
            ],
        }
    )
    t = hub.clock.now
    await hub.send("t1", t, temp=81.25)
    [request] = await received(receiver)
    [alarm] = await hub.alarms()
    sent = request.json()
    assert sent["title"] == "hot: t1 at 81.2 C"
    assert sent["message"] == f"Alarm {alarm.id} (major), temp=81.25; {{literal}} {{unknown}}"
    assert sent["type"] == "failure"  # the alarm's severity, major
    [entry] = (await trace(hub))[:1]
    assert entry["actions"][1].startswith("notify queued for json://")


def window_around_now() -> dict[str, str]:
    """Quiet hours (UTC) from an hour ago to an hour from now: the present is inside."""
    now = datetime.now(UTC)
    return {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }


async def test_a_rule_has_its_own_quiet_hours(hub_with_outbox: Hub, receiver: Receiver) -> None:
    hub = hub_with_outbox
    await hub.new_device("t1")
    # The tenant holds everything below critical now; one rule holds nothing, one follows.
    response = await hub.client.put(
        "/api/v1/notifications/quiet-hours", json=window_around_now(), headers=hub.admin
    )
    assert response.status_code == 200, response.text
    notify = {"recipients": [json_url(receiver)], "severity": "warning"}
    for name, quiet in (("own", {**window_around_now(), "min_severity": "info"}), ("tenant", None)):
        await hub.rule(
            {
                "name": name,
                "scope": {"device": "t1"},
                "condition": {"threshold": {"key": "temp", "above": 80}},
                "actions": [{"notify": notify | ({"quiet_hours": quiet} if quiet else {})}],
            }
        )
    await hub.send("t1", hub.clock.now, temp=90)
    [request] = await received(receiver)
    assert request.json()["title"] == "own raised on t1"
    [held] = await hub.platform.store.list_deliveries(
        hub.tenant.id, kind="notify", source="rule:tenant"
    )
    assert held.status == "held" and held.next_ms > now_ms() + 50 * 60_000


async def test_a_failing_notification_is_traced_and_audited(hub: Hub) -> None:
    await hub.new_device("t1")
    await hub.rule(
        {
            "name": "hot",
            "scope": {"device": "t1"},
            "condition": {"threshold": {"key": "temp", "above": 80}},
            "actions": [
                {"notify": {"recipients": ["nobody"]}},
                {"webhook": {"url": "http://127.0.0.1:9/hook"}},
            ],
            "clear_actions": [{"notify": {"recipients": ["nobody"]}}],
        }
    )
    t = hub.clock.now
    await hub.send("t1", t, temp=90)
    [entry] = (await trace(hub))[:1]
    assert entry["transition"] == "raise"
    assert entry["actions"][0].startswith("notify failed: recipients: no recipient named 'nobody'")
    assert entry["actions"][1].startswith("webhook wh_")  # the next action still runs
    [failed] = await hub.platform.store.list_audit(
        hub.tenant.id, start=0, end=now_ms() + 1, actor="rule:hot", action="rule.notify"
    )
    assert failed.result.startswith("error: recipients: no recipient named 'nobody'")
    assert failed.target == "device:t1" and failed.details["recipients"] == ["nobody"]
    # The engine goes on: the clear is evaluated and fails the same way.
    await hub.send("t1", t + 1000, temp=20)
    entry = (await trace(hub))[0]
    assert entry["transition"] == "clear" and entry["actions"][0].startswith("notify failed")
    assert hub.platform.rules.errors == 0


async def test_manual_mode_holds_commands_not_webhooks(hub: Hub, receiver: Receiver) -> None:
    await hub.new_device("t1")
    await hub.rule(
        hot_rule(receiver)
        | {"actions": [{"webhook": {"url": receiver.url}}, {"command": {"method": "cool"}}]}
    )
    response = await hub.client.post("/api/v1/rules/hot/devices/t1/pause", headers=hub.admin)
    assert response.status_code == 204
    await hub.send("t1", hub.clock.now, temp=90)
    [entry] = (await trace(hub))[:1]
    assert entry["actions"][0].startswith("webhook wh_")
    assert entry["actions"][1] == "command: skipped, rule paused for t1"
