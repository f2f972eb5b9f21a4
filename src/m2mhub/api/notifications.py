"""Notifications: send one, named recipients, quiet hours, deliveries and dead letters."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from m2mhub.actions.notify import mask_url
from m2mhub.actions.quiet_hours import parse_quiet_hours
from m2mhub.api.deps import Admin, Operator, PlatformDep
from m2mhub.api.outbox import DeliveryOut, add_delivery_routes, delivery_out
from m2mhub.api.schemas import Strict

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class NotificationIn(Strict):
    recipients: list[str] = Field(
        examples=[["ops", "mailto://alerts:password@example.com?to=oncall@example.com"]],
        description="Apprise URLs or names of this tenant's recipients.",
    )
    title: str = Field("", examples=["Pump p1: pressure high"])
    body: str = Field(examples=["Pressure 7.9 bar (limit 7.5) since 10:02 UTC."])
    severity: str = Field("info", description="info, warning, minor, major or critical.")


class RecipientIn(Strict):
    urls: list[str] = Field(
        examples=[["mailto://alerts:password@example.com?to=oncall@example.com"]],
        description="Apprise URLs this name stands for.",
    )


class RecipientOut(BaseModel):
    name: str
    urls: list[str] = Field(description="The Apprise URLs with passwords and tokens hidden.")
    created: int


class QuietHoursIn(Strict):
    start: str = Field(examples=["22:00"], description="Local time of day the window opens.")
    end: str = Field(examples=["07:00"], description="Local time of day it closes.")
    timezone: str = Field("UTC", examples=["Europe/Berlin"], description="IANA time zone.")
    min_severity: str = Field(
        "critical", description="This severity and above are sent during quiet hours."
    )


@router.post("", status_code=202, response_model=list[DeliveryOut])
async def send_notification(
    body: NotificationIn, who: Operator, platform: PlatformDep
) -> list[DeliveryOut]:
    """Queue a notification to each recipient (one delivery per Apprise URL)."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="notify.send",
        target="recipients:"
        + ",".join(r if "://" not in r else mask_url(r) for r in body.recipients),
        details={"title": body.title, "severity": body.severity},
    ) as audited:
        ids = await platform.notifier.notify(
            tenant_id=who.tenant_id,
            source=who.subject,
            recipients=body.recipients,
            title=body.title,
            body=body.body,
            severity=body.severity,
        )
        audited.details["deliveries"] = ids
    return [delivery_out(platform, await platform.store.get_delivery(i)) for i in ids]


@router.get("/recipients", response_model=list[RecipientOut])
async def list_recipients(who: Operator, platform: PlatformDep) -> list[RecipientOut]:
    """This tenant's named recipients."""
    found = await platform.store.recipients(who.tenant_id)
    return [
        RecipientOut(name=r.name, urls=[mask_url(u) for u in r.urls], created=r.created_ms)
        for r in found.values()
    ]


@router.put("/recipients/{name}", response_model=RecipientOut)
async def set_recipient(
    name: str, body: RecipientIn, who: Admin, platform: PlatformDep
) -> RecipientOut:
    """Create or replace a named recipient: a person, a team or a channel."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="recipient.set",
        target=f"recipient:{name}",
        details={"urls": [mask_url(u) for u in body.urls]},
    ):
        await platform.notifier.set_recipient(who.tenant_id, name, body.urls)
    recipient = (await platform.store.recipients(who.tenant_id, [name]))[name]
    return RecipientOut(
        name=name, urls=[mask_url(u) for u in recipient.urls], created=recipient.created_ms
    )


@router.delete("/recipients/{name}", status_code=204)
async def delete_recipient(name: str, who: Admin, platform: PlatformDep) -> Response:
    """Delete a named recipient; rules that name it fail to notify until it exists again."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="recipient.delete",
        target=f"recipient:{name}",
    ):
        await platform.store.delete_recipient(who.tenant_id, name)
    return Response(status_code=204)


@router.get("/quiet-hours", response_model=QuietHoursIn | None)
async def get_quiet_hours(who: Operator, platform: PlatformDep) -> QuietHoursIn | None:
    """This tenant's default quiet hours (null: none). A rule may set its own."""
    stored = await platform.store.quiet_hours(who.tenant_id)
    return QuietHoursIn(**stored) if stored else None


@router.put("/quiet-hours", response_model=QuietHoursIn)
async def set_quiet_hours(body: QuietHoursIn, who: Admin, platform: PlatformDep) -> QuietHoursIn:
    """Set this tenant's default quiet hours: notifications below ``min_severity`` that
    come in the window are held and sent when it ends."""
    async with platform.audit.track(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="quiet_hours.set",
        target="tenant",
        details=body.model_dump(),
    ):
        quiet = parse_quiet_hours(body.model_dump())
        await platform.store.set_quiet_hours(who.tenant_id, quiet.to_dict())
    return body


@router.delete("/quiet-hours", status_code=204)
async def delete_quiet_hours(who: Admin, platform: PlatformDep) -> Response:
    """No default quiet hours for this tenant any more."""
    async with platform.audit.track(
        tenant_id=who.tenant_id, actor=who.subject, action="quiet_hours.delete", target="tenant"
    ):
        await platform.store.set_quiet_hours(who.tenant_id, None)
    return Response(status_code=204)


add_delivery_routes(router, kind="notify", noun="notification")
