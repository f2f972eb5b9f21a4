"""Webhooks: send one, follow deliveries, handle dead letters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from m2mhub.api.deps import Operator, PlatformDep
from m2mhub.api.outbox import DeliveryOut, add_delivery_routes, delivery_out
from m2mhub.api.schemas import Strict

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


class WebhookIn(Strict):
    url: str = Field(examples=["https://example.com/hooks/m2mhub"])
    payload: dict[str, Any] = Field(description="The JSON body to POST.")
    secret: str | None = Field(
        None, description="Signs the body: X-M2MHub-Signature: sha256=<HMAC-SHA256 hex>."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")


@router.post("", status_code=202, response_model=DeliveryOut)
async def send_webhook(body: WebhookIn, who: Operator, platform: PlatformDep) -> DeliveryOut:
    """Queue a webhook (to try a receiver, or from a script); it is sent in the background."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="webhook.send",
        target=f"url:{body.url}",
    ) as audited:
        delivery_id = await platform.webhooks.enqueue(
            tenant_id=who.tenant_id,
            source=who.subject,
            url=body.url,
            payload=body.payload,
            secret=body.secret,
            headers=body.headers,
        )
        audited.details["delivery"] = delivery_id
    return delivery_out(platform, await platform.store.get_delivery(delivery_id))


add_delivery_routes(router, kind="webhook", noun="webhook")
