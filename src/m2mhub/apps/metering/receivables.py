"""What billed invoices bring in: SEPA direct-debit collection, the bank's status
files (pain.002, camt.054) and invoices overdue."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import msgspec

from m2mhub.actions.webhook import WebhookService
from m2mhub.apps.metering.billing import seller_of
from m2mhub.apps.metering.billing_events import overdue_event
from m2mhub.apps.metering.models import BillingSettings, InvoiceKind, InvoiceRecord, InvoiceStatus
from m2mhub.apps.metering.payments import (
    Collection,
    Creditor,
    DirectDebitFile,
    InvoicePaymentState,
    PaymentOutcome,
    SequenceType,
    export_direct_debit,
    invoice_payment_state,
    payment_events,
    read_payment_status,
)
from m2mhub.apps.metering.storage import MeteringStorage, next_number
from m2mhub.audit import AuditLog
from m2mhub.core.errors import NotFoundError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.store.base import Store

__all__ = ["OVERDUE_INTERVAL_S", "Receivables", "StatusImport"]

#: How often the scheduler role marks invoices overdue (dates change once a day; an
#: hour keeps a restart or a new due date from waiting long).
OVERDUE_INTERVAL_S: Final = 3600.0


class StatusImport(msgspec.Struct, frozen=True, kw_only=True):
    """What a bank status file changed: invoice numbers by new status, and those unknown."""

    kind: str
    message_id: str
    paid: list[str]
    failed: list[str]
    pending: list[str]
    unknown: list[str]
    webhooks: list[str]


class Receivables:
    """The payments part of :class:`~m2mhub.apps.metering.service.MeteringService`."""

    store: Store
    storage: MeteringStorage
    holder: str
    audit: AuditLog
    webhooks: WebhookService | None
    source: str

    async def export_sepa(
        self, tenant_id: int, *, actor: str, now: int | None = None
    ) -> tuple[DirectDebitFile, list[str]]:
        """A pain.008 file collecting every open direct-debit invoice not yet collected.

        The file is kept with the invoices (to match a bank's rejection of a whole
        block later); the invoices it holds are not collected again.
        """
        now = now if now is not None else now_ms()
        settings = await self.storage.settings(tenant_id)
        seller = seller_of(settings)
        if seller.creditor_id is None:
            raise PayloadError(
                "settings.creditor_id: direct debit needs the seller's SEPA creditor identifier",
                field="settings.creditor_id",
            )
        today = datetime.fromtimestamp(now / 1000, UTC).date()
        collections: list[Collection] = []
        invoice_ids: list[int] = []
        first_time: set[int] = set()
        for invoice in await self._collectable(tenant_id):
            account = await self.storage.account_by_id(invoice.account_id)
            if not account.iban or not account.mandate_id or account.mandate_signed_on is None:
                continue
            is_first = account.id in first_time or not await self.storage.has_collected(
                tenant_id, account.id
            )
            if is_first:
                first_time.add(account.id)
            collections.append(
                Collection(
                    end_to_end_id=invoice.number,
                    amount=invoice.amount_due,
                    debtor_name=account.name,
                    debtor_iban=account.iban,
                    debtor_bic=account.bic,
                    mandate_id=account.mandate_id,
                    mandate_signed_on=account.mandate_signed_on,
                    sequence_type=SequenceType.FIRST if is_first else SequenceType.RECURRING,
                    # SEPA Core: the bank needs the file a business day before collection.
                    due_date=max(invoice.due_date, today + timedelta(days=1)),
                    remittance=f"Invoice {invoice.number} {invoice.period}",
                )
            )
            invoice_ids.append(invoice.id)
        if not collections:
            raise PayloadError(
                "invoices: no open direct-debit invoices left to collect", field="invoices"
            )
        async with self.store.transaction() as tx:
            message_id = f"M2M-{tenant_id}-{await next_number(tx, tenant_id, 'sepa_export'):06d}"
            file = export_direct_debit(
                Creditor(
                    name=seller.name,
                    iban=seller.iban,
                    creditor_id=seller.creditor_id,
                    bic=seller.bic,
                ),
                collections,
                message_id=message_id,
                created_at=datetime.fromtimestamp(now / 1000, UTC),
            )
            batches = [
                {
                    "payment_information_id": batch.payment_information_id,
                    "end_to_end_ids": list(batch.end_to_end_ids),
                }
                for batch in file.batches
            ]
            await self.storage.save_export(
                tx,
                tenant_id,
                message_id=message_id,
                xml=file.xml,
                batches=batches,
                invoice_ids=invoice_ids,
            )
        numbers = [c.end_to_end_id for c in collections]
        await self.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="metering.sepa.export",
            target=f"sepa:{message_id}",
            details={"invoices": numbers, "control_sum": str(file.control_sum)},
        )
        return file, numbers

    async def _collectable(self, tenant_id: int) -> list[InvoiceRecord]:
        found = [
            i
            for i in await self.storage.all_invoices(
                tenant_id, status=[InvoiceStatus.OPEN], kind=InvoiceKind.INVOICE
            )
            if i.sepa_message_id is None
            and i.amount_due > 0
            and i.currency == "EUR"
            and i.document.get("payment", {}).get("method") == "sepa_direct_debit"
        ]
        return sorted(found, key=lambda i: i.id)

    async def import_status(
        self, tenant_id: int, document: bytes, *, actor: str, now: int | None = None
    ) -> StatusImport:
        """Apply a pain.002 or camt.054 file: invoices become paid or failed.

        Reading the same file again changes nothing. Each invoice whose status
        changes gets an audit entry and, when the settings name a webhook, the
        file's CloudEvent for it is queued there (signed, retried).
        """
        now = now if now is not None else now_ms()
        report = read_payment_status(document)
        wanted: dict[str, tuple[InvoiceStatus | None, str | None]] = {}
        for result in report.by_end_to_end_id().values():
            if result.outcome is PaymentOutcome.PAID:
                wanted[result.end_to_end_id] = (InvoiceStatus.PAID, None)
            elif result.outcome is PaymentOutcome.REJECTED:
                reason = result.reason or result.reason_code or "rejected"
                wanted[result.end_to_end_id] = (InvoiceStatus.FAILED, reason)
            else:
                wanted[result.end_to_end_id] = (None, None)
        for batch in report.rejected_batches:
            for kept in await self.storage.export_batches(tenant_id, batch.original_message_id):
                if batch.payment_information_id in (None, kept["payment_information_id"]):
                    reason = batch.reason or batch.reason_code or "batch rejected"
                    for number in kept["end_to_end_ids"]:
                        wanted.setdefault(number, (InvoiceStatus.FAILED, reason))
        paid: list[str] = []
        failed: list[str] = []
        pending: list[str] = []
        unknown: list[str] = []
        for number, (status, why) in wanted.items():
            try:
                invoice = await self.storage.invoice(tenant_id, number)
            except NotFoundError:
                unknown.append(number)
                continue
            if status is None:
                pending.append(number)
                continue
            if invoice.status is status or invoice.status is InvoiceStatus.PAID:
                continue  # already applied (a file read twice), or paid for good
            await self.storage.set_status(invoice.id, status, reason=why)
            (paid if status is InvoiceStatus.PAID else failed).append(number)
            await self.audit.record(
                tenant_id=tenant_id,
                actor=actor,
                action=f"metering.invoice.{status.value}",
                target=f"invoice:{number}",
                details={"report": report.kind, "message_id": report.message_id, "reason": why},
            )
        changed = set(paid) | set(failed)
        webhooks: list[str] = []
        settings = await self.storage.settings(tenant_id)
        events = payment_events(
            report, source=self.source, received_at=datetime.fromtimestamp(now / 1000, UTC)
        )
        for event in events if changed else ():
            if event.subject in changed or event.type.endswith("batch_rejected"):
                delivery = await self._notify(tenant_id, settings, event)
                if delivery is not None:
                    webhooks.append(delivery)
        return StatusImport(
            kind=report.kind,
            message_id=report.message_id,
            paid=paid,
            failed=failed,
            pending=pending,
            unknown=unknown,
            webhooks=webhooks,
        )

    async def mark_overdue_everywhere(self, *, now: int | None = None) -> dict[int, list[str]]:
        """The scheduler's job: mark overdue invoices of every tenant, once across all
        processes (a lease held for the job's interval); invoice numbers by tenant."""
        interval_ms = int(OVERDUE_INTERVAL_S * 1000)
        if not await self.store.try_lease("metering.overdue", self.holder, interval_ms):
            return {}
        now = now if now is not None else now_ms()
        today = datetime.fromtimestamp(now / 1000, UTC).date()
        marked: dict[int, list[str]] = {}
        for tenant_id in await self.storage.tenants_with_unpaid():
            numbers = await self.mark_overdue(tenant_id, actor="scheduler", today=today, now=now)
            if numbers:
                marked[tenant_id] = numbers
        return marked

    async def mark_overdue(
        self,
        tenant_id: int,
        *,
        actor: str,
        today: date | None = None,
        now: int | None = None,
    ) -> list[str]:
        """Mark open and failed invoices past their due date (plus grace days) overdue.

        Each one is audited and, when the settings name a webhook, sent there as an
        ``io.m2mhub.metering.invoice.overdue`` CloudEvent (one id per invoice and due
        date, so a receiver can drop repeats).
        """
        now = now if now is not None else now_ms()
        day = today or datetime.fromtimestamp(now / 1000, UTC).date()
        settings = await self.storage.settings(tenant_id)
        marked: list[str] = []
        for invoice in await self.storage.all_invoices(
            tenant_id,
            status=[InvoiceStatus.OPEN, InvoiceStatus.FAILED],
            kind=InvoiceKind.INVOICE,
        ):
            state = invoice_payment_state(
                due_date=invoice.due_date,
                today=day,
                result=None,
                grace_days=settings.grace_days,
            )
            if state is not InvoicePaymentState.OVERDUE:
                continue
            await self.storage.set_status(
                invoice.id, InvoiceStatus.OVERDUE, reason=f"not paid by {invoice.due_date}"
            )
            marked.append(invoice.number)
            await self.audit.record(
                tenant_id=tenant_id,
                actor=actor,
                action="metering.invoice.overdue",
                target=f"invoice:{invoice.number}",
                details={"due_date": invoice.due_date.isoformat()},
            )
            event = overdue_event(
                invoice=invoice.number,
                account=invoice.account,
                due_date=invoice.due_date,
                amount_due=invoice.amount_due,
                currency=invoice.currency,
                source=self.source,
                marked_at=datetime.fromtimestamp(now / 1000, UTC),
            )
            await self._notify(tenant_id, settings, event)
        return marked

    async def _notify(self, tenant_id: int, settings: BillingSettings, event: Any) -> str | None:
        """Queue ``event`` (a CloudEvent) for the webhook the settings name, if any; its id."""
        if not settings.webhook_url or self.webhooks is None:
            return None
        return await self.webhooks.enqueue(
            tenant_id=tenant_id,
            source="metering",
            url=settings.webhook_url,
            payload=msgspec.to_builtins(event),
            secret=settings.webhook_secret,
        )
