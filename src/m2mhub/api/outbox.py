"""Deliveries of webhooks and notifications as the API shows them, and the routes both share:
list and inspect deliveries, list, retry and delete dead letters."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from m2mhub.actions.outbox import Sender
from m2mhub.api.deps import Operator, PlatformDep
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.core.errors import NotFoundError
from m2mhub.core.timeutil import now_ms
from m2mhub.platform import Platform
from m2mhub.store.models import Delivery

STATUSES = "^(pending|held|sending|delivered|dead)$"


class DeliveryOut(BaseModel):
    id: str
    source: str = Field(description="Who asked: rule:<id>, user:<email>, key:<id>, system.")
    target: str = Field(description="The URL (an Apprise URL with passwords hidden).")
    status: str = Field(description="pending, held (quiet hours), sending, delivered or dead.")
    attempts: int
    created: int
    next_attempt: int | None = Field(description="When it is due (pending or held).")
    last_attempt: int | None
    finished: int | None
    last_error: str | None
    last_code: int | None = Field(description="The receiver's last HTTP status (webhooks).")
    signed: bool = Field(description="Sent with an X-M2MHub-Signature (webhooks with a secret).")
    payload: dict[str, Any] = Field(
        description="The webhook's JSON body, or a notification's title, body and severity."
    )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


def delivery_out(platform: Platform, delivery: Delivery) -> DeliveryOut:
    sender: Sender | None = platform.deliveries.senders.get(delivery.kind)
    return DeliveryOut(
        id=delivery.id,
        source=delivery.source,
        target=sender.display_target(delivery) if sender else delivery.target,
        status=delivery.status,
        attempts=delivery.attempts,
        created=delivery.created_ms,
        next_attempt=delivery.next_ms if delivery.status in ("pending", "held") else None,
        last_attempt=delivery.last_attempt_ms,
        finished=delivery.finished_ms,
        last_error=delivery.last_error,
        last_code=delivery.last_code,
        signed=delivery.secret is not None,
        payload=msgspec.json.decode(delivery.body),
    )


def add_delivery_routes(router: APIRouter, *, kind: str, noun: str) -> None:
    """The list, inspect, retry and delete routes for deliveries of ``kind``."""

    async def page(
        platform: Platform,
        tenant_id: int,
        status: str | None,
        source: str | None,
        limit: int,
        cursor: str | None,
    ) -> DeliveryPage:
        before = tuple(decode_cursor(cursor, tuple[int, str])) if cursor else None
        rows = await platform.store.list_deliveries(
            tenant_id, kind=kind, status=status, source=source, before=before, limit=limit
        )
        next_cursor = (
            encode_cursor([rows[-1].created_ms, rows[-1].id]) if len(rows) == limit else None
        )
        return DeliveryPage(
            items=[delivery_out(platform, d) for d in rows], next_cursor=next_cursor
        )

    async def list_deliveries(
        who: Operator,
        platform: PlatformDep,
        status: Annotated[str | None, Query(pattern=STATUSES)] = None,
        source: Annotated[str | None, Query(description="Only from this source.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> DeliveryPage:
        return await page(platform, who.tenant_id, status, source, limit, cursor)

    async def get_delivery(delivery_id: str, who: Operator, platform: PlatformDep) -> DeliveryOut:
        delivery = await platform.store.get_delivery(delivery_id, tenant_id=who.tenant_id)
        if delivery.kind != kind:
            raise NotFoundError(f"{noun} {delivery_id!r} not found", field="delivery")
        return delivery_out(platform, delivery)

    async def list_dead_letters(
        who: Operator,
        platform: PlatformDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> DeliveryPage:
        return await page(platform, who.tenant_id, "dead", None, limit, cursor)

    async def retry_dead_letter(
        delivery_id: str, who: Operator, platform: PlatformDep
    ) -> DeliveryOut:
        async with platform.audit.track(
            tenant_id=who.tenant_id,
            actor=who.subject,
            action=f"{kind}.retry",
            target=f"delivery:{delivery_id}",
        ):
            await get_delivery(delivery_id, who, platform)
            if not await platform.store.retry_delivery(who.tenant_id, delivery_id, now_ms()):
                raise NotFoundError(
                    f"{noun} {delivery_id!r} is not a dead letter", field="delivery"
                )
        platform.deliveries.wake()
        return await get_delivery(delivery_id, who, platform)

    async def delete_dead_letter(
        delivery_id: str, who: Operator, platform: PlatformDep
    ) -> Response:
        async with platform.audit.track(
            tenant_id=who.tenant_id,
            actor=who.subject,
            action=f"{kind}.delete",
            target=f"delivery:{delivery_id}",
        ):
            await get_delivery(delivery_id, who, platform)
            if not await platform.store.delete_delivery(who.tenant_id, delivery_id, status="dead"):
                raise NotFoundError(
                    f"{noun} {delivery_id!r} is not a dead letter", field="delivery"
                )
        return Response(status_code=204)

    plural = f"{noun}s"
    router.add_api_route(
        "/deliveries",
        list_deliveries,
        methods=["GET"],
        response_model=DeliveryPage,
        summary=f"List {plural}, newest first",
        description=f"Every {noun} of this tenant, newest first, a page at a time; filter by "
        "status or source.",
    )
    router.add_api_route(
        "/deliveries/{delivery_id}",
        get_delivery,
        methods=["GET"],
        response_model=DeliveryOut,
        summary=f"One {noun}",
    )
    router.add_api_route(
        "/dead-letters",
        list_dead_letters,
        methods=["GET"],
        response_model=DeliveryPage,
        summary=f"Dead letters: {plural} that gave up",
        description=f"{plural.capitalize()} that failed every attempt or got a final error, "
        "newest first, with the last error.",
    )
    router.add_api_route(
        "/dead-letters/{delivery_id}/retry",
        retry_dead_letter,
        methods=["POST"],
        response_model=DeliveryOut,
        summary="Send a dead letter again",
        description="Puts the dead letter back in the outbox, due now, with a fresh count of "
        "attempts.",
    )
    router.add_api_route(
        "/dead-letters/{delivery_id}",
        delete_dead_letter,
        methods=["DELETE"],
        status_code=204,
        summary="Delete a dead letter",
    )
