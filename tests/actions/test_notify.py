"""Notifications through Apprise to real local peers: an HTTP server and an SMTP server."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from m2mhub.actions import QuietHours
from m2mhub.core.timeutil import now_ms
from tests.actions.conftest import Receiver, wait_for
from tests.conftest import Api, free_port


class Mailbox:
    """Messages an SMTP server on 127.0.0.1 accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, email.message.EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        with self.lock:
            self.messages.append((envelope, message))
        return "250 Message accepted for delivery"

    def received(self) -> list[tuple[Envelope, email.message.EmailMessage]]:
        with self.lock:
            return list(self.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def json_url(receiver: Receiver) -> str:
    return receiver.url.replace("http://", "json://")


async def status_of(api: Api, delivery_id: str) -> str:
    response = await api.client.get(
        f"/api/v1/notifications/deliveries/{delivery_id}", headers=api.admin
    )
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def test_notification_reaches_an_http_endpoint(hooks: Api, receiver: Receiver) -> None:
    [delivery_id] = await hooks.platform.notifier.notify(
        tenant_id=hooks.tenant.id,
        source="rule:21",
        recipients=[json_url(receiver)],
        title="Pump p1: pressure high",
        body="Pressure 7.9 bar (limit 7.5)",
        severity="major",
    )

    async def delivered() -> bool:
        return await status_of(hooks, delivery_id) == "delivered"

    await wait_for(delivered, what="the notification")
    [request] = receiver.received()
    sent = request.json()
    assert sent["title"] == "Pump p1: pressure high"
    assert sent["message"] == "Pressure 7.9 bar (limit 7.5)"
    assert sent["type"] == "failure"  # major and critical look like failures


async def test_named_recipient_by_email(
    hooks: Api, smtp: tuple[Mailbox, int], receiver: Receiver
) -> None:
    mailbox, port = smtp
    mail_url = f"mailto://127.0.0.1:{port}?from=m2mhub@example.com&to=oncall@example.com"
    created = await hooks.client.put(
        "/api/v1/notifications/recipients/ops",
        json={"urls": [mail_url, json_url(receiver)]},
        headers=hooks.admin,
    )
    assert created.status_code == 200, created.text
    ids = await hooks.platform.notifier.notify(
        tenant_id=hooks.tenant.id,
        source="rule:22",
        recipients=["ops", json_url(receiver)],  # the same URL twice goes out once
        title="Tank t1 low",
        body="Level 8 % at 10:02",
        severity="warning",
    )
    assert len(ids) == 2

    async def both_delivered() -> bool:
        return all([await status_of(hooks, i) == "delivered" for i in ids])

    await wait_for(both_delivered, what="e-mail and HTTP notifications")
    [(envelope, message)] = mailbox.received()
    assert envelope.rcpt_tos == ["oncall@example.com"]
    assert message["Subject"] == "Tank t1 low"
    body = message.get_body(("plain", "html"))
    assert body is not None and "Level 8 % at 10:02" in body.get_content()
    assert len(receiver.received()) == 1


async def test_recipients_api(hooks: Api) -> None:
    secret_url = "mailto://alerts:hunter2@example.com?to=oncall@example.com"
    put = await hooks.client.put(
        "/api/v1/notifications/recipients/team", json={"urls": [secret_url]}, headers=hooks.admin
    )
    assert put.status_code == 200 and "hunter2" not in put.text
    listed = (
        await hooks.client.get("/api/v1/notifications/recipients", headers=hooks.admin)
    ).json()
    assert [r["name"] for r in listed] == ["team"] and "hunter2" not in str(listed)
    bad = await hooks.client.put(
        "/api/v1/notifications/recipients/x", json={"urls": ["nosuch://x"]}, headers=hooks.admin
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "urls"
    unknown = await hooks.client.post(
        "/api/v1/notifications",
        json={"recipients": ["nobody"], "body": "hello"},
        headers=hooks.admin,
    )
    assert unknown.status_code == 422 and "nobody" in unknown.json()["error"]["message"]
    from m2mhub.core.values import Role

    operator = hooks.as_key(await hooks.key(Role.OPERATOR))
    refused = await hooks.client.put(
        "/api/v1/notifications/recipients/team", json={"urls": [secret_url]}, headers=operator
    )
    assert refused.status_code == 403
    gone = await hooks.client.delete("/api/v1/notifications/recipients/team", headers=hooks.admin)
    assert gone.status_code == 204
    audit = await hooks.client.get(
        "/api/v1/audit", params={"action": "recipient.*"}, headers=hooks.admin
    )
    assert [e["action"] for e in audit.json()["items"]] == [
        "recipient.delete",
        "recipient.set",
        "recipient.set",
    ]
    assert audit.json()["items"][1]["result"].startswith("error: urls:")


def window_around_now() -> dict[str, str]:
    """Quiet hours from an hour ago to an hour from now, in UTC."""
    now = datetime.now(UTC)
    return {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
        "min_severity": "critical",
    }


async def test_quiet_hours_hold_low_severity(hooks: Api, receiver: Receiver) -> None:
    window = window_around_now()
    put = await hooks.client.put(
        "/api/v1/notifications/quiet-hours", json=window, headers=hooks.admin
    )
    assert put.status_code == 200, put.text
    [held] = await hooks.platform.notifier.notify(
        tenant_id=hooks.tenant.id,
        source="rule:23",
        recipients=[json_url(receiver)],
        title="battery low",
        body="p1 battery 10 %",
        severity="warning",
    )
    [urgent] = await hooks.platform.notifier.notify(
        tenant_id=hooks.tenant.id,
        source="rule:24",
        recipients=[json_url(receiver)],
        title="fire",
        body="p1 temperature 140 C",
        severity="critical",
    )

    async def urgent_delivered() -> bool:
        return await status_of(hooks, urgent) == "delivered"

    await wait_for(urgent_delivered, what="the critical notification")
    shown = (
        await hooks.client.get(f"/api/v1/notifications/deliveries/{held}", headers=hooks.admin)
    ).json()
    assert shown["status"] == "held"
    # Held until the window's end: the next whole minute an hour from now, in UTC.
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=1)
    assert abs(shown["next_attempt"] - end.timestamp() * 1000) <= 60_000
    assert [r.json()["title"] for r in receiver.received()] == ["fire"]
    # Once the window has ended it is due like any other delivery.
    store = hooks.platform.store
    assert (
        await store.claim_deliveries(
            holder="test", now=shown["next_attempt"] - 1, lease_ms=1000, limit=10
        )
        == []
    )
    [claimed] = await store.claim_deliveries(
        holder="test", now=shown["next_attempt"], lease_ms=1000, limit=10
    )
    assert claimed.id == held


async def test_rule_quiet_hours_override_the_tenants(hooks: Api, receiver: Receiver) -> None:
    quiet = QuietHours(**{**window_around_now(), "min_severity": "info"})
    # min_severity info: nothing is held, whatever the tenant's quiet hours say.
    await hooks.client.put(
        "/api/v1/notifications/quiet-hours", json=window_around_now(), headers=hooks.admin
    )
    [delivery_id] = await hooks.platform.notifier.notify(
        tenant_id=hooks.tenant.id,
        source="rule:25",
        recipients=[json_url(receiver)],
        title="t",
        body="b",
        severity="info",
        quiet_hours=quiet,
    )
    assert await status_of(hooks, delivery_id) in ("pending", "sending", "delivered")


def test_quiet_hours_across_midnight_and_zones() -> None:
    quiet = QuietHours(start="22:00", end="07:00", timezone="Europe/Berlin")

    def at(text: str) -> int:
        return int(datetime.fromisoformat(text).timestamp() * 1000)

    seven_berlin = at("2026-01-11T06:00:00+00:00")  # 07:00 CET
    assert quiet.held_until(at("2026-01-10T21:30:00+00:00"), "info") == seven_berlin
    assert quiet.held_until(at("2026-01-11T05:59:00+00:00"), "major") == seven_berlin
    assert quiet.held_until(at("2026-01-11T06:00:00+00:00"), "info") is None
    assert quiet.held_until(at("2026-01-10T20:59:00+00:00"), "info") is None
    assert quiet.held_until(at("2026-01-10T23:00:00+00:00"), "critical") is None
    # Summer time: 07:00 CEST is 05:00 UTC.
    assert quiet.held_until(at("2026-07-10T23:00:00+00:00"), "info") == at(
        "2026-07-11T05:00:00+00:00"
    )
    assert QuietHours(start="09:00", end="17:00").held_until(
        at("2026-01-10T12:00:00+00:00"), "info"
    ) == at("2026-01-10T17:00:00+00:00")


async def test_unreachable_notification_becomes_a_dead_letter(hooks: Api) -> None:
    url = f"json://127.0.0.1:{free_port()}/nobody"
    sent = await hooks.client.post(
        "/api/v1/notifications",
        json={"recipients": [url], "title": "t", "body": "b", "severity": "info"},
        headers=hooks.admin,
    )
    assert sent.status_code == 202, sent.text
    [delivery] = sent.json()

    async def dead() -> bool:
        return await status_of(hooks, delivery["id"]) == "dead"

    await wait_for(dead, what="a dead letter")
    letters = (
        await hooks.client.get("/api/v1/notifications/dead-letters", headers=hooks.admin)
    ).json()["items"]
    assert [d["id"] for d in letters] == [delivery["id"]]
    assert letters[0]["attempts"] == 3 and letters[0]["last_error"]
    assert now_ms() >= letters[0]["finished"]
