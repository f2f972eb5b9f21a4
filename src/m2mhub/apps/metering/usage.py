"""Usage events for billing systems: what a period bills, per meter and register, as
OpenMeter-style CloudEvents (:func:`.billing_events.usage_event`).

Each register of each meter counted in a billing section gives one
:class:`~.billing_events.UsageRecord` per direction it counts:

- ``subject``: the account number (the customer the billing system charges);
- ``meter`` (the event ``type``): ``<kind>_<direction>`` for electricity, gas,
  water and heat (``electricity_import``, ``electricity_export``); for a
  ``usage`` meter the register's telemetry key (``runtime_h``), since only the
  key says what such a meter counts;
- ``quantity``: what billing counts, actual, estimated and edited intervals alike
  (intervals still missing are not billed, so not counted); ``estimated_quantity``
  is the estimated part of it;
- the period: the part of the billing period the meter was installed at a supply
  point of the account, with a tariff in force (a meter swap gives two records);
- ``dimensions``: ``meter``, ``register``, ``supply_point`` and ``tariff``.

The event ids are deterministic (source, subject, type, period, dimensions), so a
billing run that sends a period again sends the same ids and the receiver drops
them. A corrected quantity keeps its id: book it as a correction on the billing side.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from m2mhub.actions.webhook import WebhookService
from m2mhub.apps.metering.billing_events import CloudEvent, UsageRecord, usage_event
from m2mhub.apps.metering.models import Account, BillingSettings, MeterKind
from m2mhub.apps.metering.periods import parse_period
from m2mhub.apps.metering.sections import BillingSections, Section
from m2mhub.core.errors import M2MHubError
from m2mhub.core.timeutil import now_ms

__all__ = ["BATCH_MEDIA_TYPE", "UsageExport", "usage_records"]

#: CloudEvents JSON batch format (CloudEvents 1.0 JSON Event Format, section 4).
BATCH_MEDIA_TYPE: Final = "application/cloudevents-batch+json"
#: The delivery ``source`` of pushed usage events (the deliveries API filters on it).
USAGE_DELIVERY_SOURCE: Final = "metering.usage"


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def usage_records(account: Account, sections: Sequence[Section]) -> list[UsageRecord]:
    """The usage records of ``account``'s billing sections (see the module docstring)."""
    records: list[UsageRecord] = []
    for section in sections:
        for piece in section.details["meters"]:
            registers: dict[str, dict[str, Any]] = piece["registers"]
            for key, counted in registers.items():
                for direction in ("import", "export"):
                    if direction not in counted:
                        continue
                    kind = section.kind
                    records.append(
                        UsageRecord(
                            subject=account.number,
                            meter=key if kind is MeterKind.USAGE else f"{kind.value}_{direction}",
                            quantity=Decimal(counted[direction]),
                            estimated_quantity=Decimal(counted[f"estimated_{direction}"]),
                            period_start=_moment(piece["from"]),
                            period_end=_moment(piece["to"]),
                            unit=counted["unit"],
                            dimensions={
                                "meter": piece["meter"],
                                "register": key,
                                "supply_point": section.point.code,
                                "tariff": section.tariff.name,
                            },
                        )
                    )
    return records


class UsageExport(BillingSections):
    """The usage part of :class:`~m2mhub.apps.metering.service.MeteringService`."""

    source: str
    webhooks: WebhookService | None

    async def usage_events(
        self,
        tenant_id: int,
        period: str,
        *,
        account: str | None = None,
        now: int | None = None,
    ) -> list[CloudEvent]:
        """The usage events of ``period`` for one account or all, as a billing run counts
        them (held invoices included: the export shows the data as it stands).

        Raises :class:`~m2mhub.core.errors.PayloadError` for a period that is not
        ``YYYY-MM`` or ``YYYY-MM-DD..YYYY-MM-DD``, and the error of an account whose
        period cannot be billed (no tariff version in force), with the account named.
        """
        parsed = parse_period(period)
        now = now if now is not None else now_ms()
        if account is not None:
            accounts = [await self.storage.account(tenant_id, account)]
        else:
            accounts = await self.storage.all_accounts(tenant_id)
        events: list[CloudEvent] = []
        for found in accounts:
            try:
                sections, _ = await self._sections(tenant_id, found, parsed, now)
            except M2MHubError as exc:
                exc.message = f"account {found.number}: {exc.message}"
                exc.args = (exc.message,)
                raise
            events += [usage_event(r, source=self.source) for r in usage_records(found, sections)]
        return events

    async def _push_usage(
        self,
        tenant_id: int,
        settings: BillingSettings,
        account: Account,
        sections: Sequence[Section],
    ) -> list[str]:
        """Queue each usage event of ``sections`` for ``usage_webhook_url``, one delivery
        per event (signed, retried, in the deliveries API); the delivery ids."""
        if not settings.usage_webhook_url or self.webhooks is None:
            return []
        token = settings.usage_webhook_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        deliveries: list[str] = []
        for record in usage_records(account, sections):
            event = usage_event(record, source=self.source)
            deliveries.append(
                await self.webhooks.enqueue(
                    tenant_id=tenant_id,
                    source=USAGE_DELIVERY_SOURCE,
                    url=settings.usage_webhook_url,
                    payload=msgspec.to_builtins(event),
                    secret=settings.webhook_secret,
                    headers=headers,
                    content_type=settings.usage_webhook_content_type,
                )
            )
        return deliveries
