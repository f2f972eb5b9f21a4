"""Webhooks end to end: a real receiver on 127.0.0.1, retries, dead letters, restarts."""

from __future__ import annotations

import hashlib
import hmac
import time

from m2mhub.core.timeutil import now_ms
from tests.actions.conftest import Database, Receiver, serve, wait_for
from tests.conftest import Api


async def delivery(api: Api, delivery_id: str) -> dict[str, object]:
    response = await api.client.get(f"/api/v1/webhooks/deliveries/{delivery_id}", headers=api.admin)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def reaches(api: Api, delivery_id: str, status: str) -> dict[str, object]:
    async def check() -> dict[str, object] | None:
        found = await delivery(api, delivery_id)
        return found if found["status"] == status else None

    result: dict[str, object] = await wait_for(check, what=f"{delivery_id} to be {status}")
    return result


async def test_signed_webhook_is_delivered_once(hooks: Api, receiver: Receiver) -> None:
    secret = "s3cret-shared-with-the-receiver"
    delivery_id = await hooks.platform.webhooks.enqueue(
        tenant_id=hooks.tenant.id,
        source="rule:7",
        url=receiver.url,
        payload={"device": "p1", "temp": 81.5, "text": "überhitzt"},
        secret=secret,
        headers={"Authorization": "Bearer receiver-token"},
    )
    shown = await reaches(hooks, delivery_id, "delivered")
    assert shown["attempts"] == 1 and shown["last_code"] == 200 and shown["signed"] is True
    [request] = receiver.received()
    # The receiver's own check, as docs/automation.md tells receivers to do it.
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-M2MHub-Signature"], expected)
    forged = "sha256=" + hmac.new(b"another secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-M2MHub-Signature"] != forged
    assert request.json() == {"device": "p1", "temp": 81.5, "text": "überhitzt"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-M2MHub-Delivery"] == delivery_id
    assert request.headers["X-M2MHub-Source"] == "rule:7"
    assert request.headers["X-M2MHub-Attempt"] == "1"
    assert request.headers["Authorization"] == "Bearer receiver-token"
    assert abs(int(request.headers["X-M2MHub-Timestamp"]) - time.time()) < 30
    # The outcome of the automatic action is in the audit log, under the rule's name.
    audit = await hooks.client.get(
        "/api/v1/audit", params={"action": "webhook.deliver"}, headers=hooks.admin
    )
    [entry] = audit.json()["items"]
    assert entry["actor"] == "rule:7" and entry["target"] == f"delivery:{delivery_id}"
    assert entry["result"] == "ok" and entry["details"]["url"] == receiver.url


async def test_unsigned_webhook_has_no_signature(hooks: Api, receiver: Receiver) -> None:
    delivery_id = await hooks.platform.webhooks.enqueue(
        tenant_id=hooks.tenant.id, source="system", url=receiver.url, payload={"a": 1}
    )
    await reaches(hooks, delivery_id, "delivered")
    [request] = receiver.received()
    assert "X-M2MHub-Signature" not in request.headers


async def test_fails_twice_then_one_success(hooks: Api, receiver: Receiver) -> None:
    receiver.plan = [500, 503, 200]
    delivery_id = await hooks.platform.webhooks.enqueue(
        tenant_id=hooks.tenant.id, source="rule:1", url=receiver.url, payload={"n": 1}, secret="k"
    )
    shown = await reaches(hooks, delivery_id, "delivered")
    assert shown["attempts"] == 3
    requests = receiver.received()
    assert [r.answered for r in requests] == [500, 503, 200]
    assert {r.headers["X-M2MHub-Delivery"] for r in requests} == {delivery_id}
    assert [r.headers["X-M2MHub-Attempt"] for r in requests] == ["1", "2", "3"]
    # The same body, so the same signature, on every attempt.
    assert len({r.headers["X-M2MHub-Signature"] for r in requests}) == 1
    # Delivered is final: another pass of the worker sends nothing.
    assert await hooks.platform.deliveries.run_once() == 0
    assert len(receiver.received()) == 3


async def test_always_500_becomes_a_dead_letter_and_retry_works(
    hooks: Api, receiver: Receiver
) -> None:
    receiver.plan = [500]
    delivery_id = await hooks.platform.webhooks.enqueue(
        tenant_id=hooks.tenant.id, source="rule:2", url=receiver.url, payload={"n": 2}
    )
    dead = await reaches(hooks, delivery_id, "dead")
    assert dead["attempts"] == 3 and dead["last_code"] == 500  # delivery_max_attempts
    assert str(dead["last_error"]).startswith("HTTP 500")
    assert len(receiver.received()) == 3
    letters = await hooks.client.get("/api/v1/webhooks/dead-letters", headers=hooks.admin)
    assert [d["id"] for d in letters.json()["items"]] == [delivery_id]
    audit = await hooks.client.get("/api/v1/audit", params={"actor": "rule:2"}, headers=hooks.admin)
    assert audit.json()["items"][0]["result"].startswith("error: HTTP 500")

    receiver.plan = [200]  # the receiver is fixed
    retried = await hooks.client.post(
        f"/api/v1/webhooks/dead-letters/{delivery_id}/retry", headers=hooks.admin
    )
    assert retried.status_code == 200 and retried.json()["status"] in ("pending", "sending")
    shown = await reaches(hooks, delivery_id, "delivered")
    assert shown["attempts"] == 1
    assert [r.answered for r in receiver.received()] == [500, 500, 500, 200]
    letters = await hooks.client.get("/api/v1/webhooks/dead-letters", headers=hooks.admin)
    assert letters.json()["items"] == []
    # Only a dead letter can be retried.
    again = await hooks.client.post(
        f"/api/v1/webhooks/dead-letters/{delivery_id}/retry", headers=hooks.admin
    )
    assert again.status_code == 404


async def test_4xx_is_not_retried(hooks: Api, receiver: Receiver) -> None:
    receiver.plan = [404]
    delivery_id = await hooks.platform.webhooks.enqueue(
        tenant_id=hooks.tenant.id, source="rule:3", url=receiver.url, payload={"n": 3}
    )
    dead = await reaches(hooks, delivery_id, "dead")
    assert dead["attempts"] == 1 and dead["last_code"] == 404
    assert dead["last_error"] == "HTTP 404: nope!!"
    assert len(receiver.received()) == 1
    deleted = await hooks.client.delete(
        f"/api/v1/webhooks/dead-letters/{delivery_id}", headers=hooks.admin
    )
    assert deleted.status_code == 204
    assert (
        await hooks.client.get(f"/api/v1/webhooks/deliveries/{delivery_id}", headers=hooks.admin)
    ).status_code == 404
    audit = await hooks.client.get(
        "/api/v1/audit", params={"action": "webhook.delete"}, headers=hooks.admin
    )
    [entry] = audit.json()["items"]
    assert entry["actor"].startswith("key:") and entry["result"] == "ok"


async def test_429_waits_for_retry_after(hooks: Api, receiver: Receiver) -> None:
    receiver.plan = [429, 200]
    receiver.headers = {"Retry-After": "1"}
    delivery_id = await hooks.platform.webhooks.enqueue(
        tenant_id=hooks.tenant.id, source="rule:4", url=receiver.url, payload={}
    )
    await reaches(hooks, delivery_id, "delivered")
    first, second = receiver.received()
    # The backoff alone would be at most 0.1 s in these tests.
    assert second.at - first.at >= 0.95


async def test_connection_refused_is_retried_then_dead(hooks: Api) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/nobody"
    delivery_id = await hooks.platform.webhooks.enqueue(
        tenant_id=hooks.tenant.id, source="rule:5", url=url, payload={}
    )
    dead = await reaches(hooks, delivery_id, "dead")
    assert dead["attempts"] == 3 and dead["last_code"] is None
    assert str(dead["last_error"]).startswith("could not connect")


async def test_send_from_the_api_and_bad_input(hooks: Api, receiver: Receiver) -> None:
    sent = await hooks.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "payload": {"hello": "world"}, "secret": "x"},
        headers=hooks.admin,
    )
    assert sent.status_code == 202
    body = sent.json()
    assert body["source"].startswith("key:") and body["signed"] is True
    assert body["payload"] == {"hello": "world"} and "secret" not in body
    await reaches(hooks, body["id"], "delivered")
    for bad, field in (
        ({"url": "ftp://example.com/x", "payload": {}}, "url"),
        ({"url": receiver.url, "payload": {}, "headers": {"X-M2MHub-Signature": "x"}}, "headers"),
    ):
        refused = await hooks.client.post("/api/v1/webhooks", json=bad, headers=hooks.admin)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == field


async def test_deliveries_survive_a_restart(database: Database, receiver: Receiver) -> None:
    # A process without the scheduler role only queues (like an API process whose
    # worker is elsewhere, or one killed before its worker got to them).
    async with serve(database.first, database.tmp_path, roles="api") as api:
        ids = [
            await api.platform.webhooks.enqueue(
                tenant_id=api.tenant.id, source="rule:9", url=receiver.url, payload={"i": i}
            )
            for i in range(3)
        ]
        assert not api.platform.deliveries.running
    assert receiver.received() == []
    async with serve(database.store(), database.tmp_path) as api:
        for delivery_id in ids:
            await reaches(api, delivery_id, "delivered")
    assert sorted(r.json()["i"] for r in receiver.received()) == [0, 1, 2]


async def test_a_claim_left_by_a_dead_process_is_taken_again(
    database: Database, receiver: Receiver
) -> None:
    async with serve(database.first, database.tmp_path, roles="api") as api:
        delivery_id = await api.platform.webhooks.enqueue(
            tenant_id=api.tenant.id, source="rule:10", url=receiver.url, payload={}
        )
        # Another process claimed it and died while sending (kill -9): its lease runs out.
        [claimed] = await api.platform.store.claim_deliveries(
            holder="gone:1", now=now_ms(), lease_ms=500, limit=10
        )
        assert claimed.id == delivery_id and claimed.status == "sending"
        await api.platform.deliveries.start()
        assert await api.platform.deliveries.run_once() == 0  # still held by the dead process
        shown = await reaches(api, delivery_id, "delivered")
        assert shown["attempts"] == 2
        assert len(receiver.received()) == 1


async def test_two_platforms_deliver_each_once(database: Database, receiver: Receiver) -> None:
    # Each answer takes a while, so neither process can take every delivery alone:
    # both claim from the same rows at the same time.
    receiver.delay_s = 0.3
    async with (
        serve(database.first, database.tmp_path, roles="api", delivery_concurrency=4) as one,
        serve(database.store(), database.tmp_path, roles="api", delivery_concurrency=4) as two,
    ):
        ids = [
            await one.platform.webhooks.enqueue(
                tenant_id=one.tenant.id, source="rule:11", url=receiver.url, payload={"i": i}
            )
            for i in range(30)
        ]
        await one.platform.deliveries.start()
        await two.platform.deliveries.start()

        async def all_delivered() -> bool:
            page = await one.platform.store.list_deliveries(
                one.tenant.id, kind="webhook", status="delivered", limit=100
            )
            return len(page) == len(ids)

        await wait_for(all_delivered, what="30 deliveries")
        requests = receiver.received()
        assert sorted(r.headers["X-M2MHub-Delivery"] for r in requests) == sorted(ids)
        # Each delivered once between them. Usually both take part, but a process that
        # starts first on a busy host may claim everything: that is allowed.
        assert one.platform.deliveries.delivered + two.platform.deliveries.delivered == 30
