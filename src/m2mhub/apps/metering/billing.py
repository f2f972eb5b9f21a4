"""Billing runs: issue, hold, correct and release the invoices of a period.

What a run bills is laid out in :mod:`.sections`.

A billing run is idempotent: each invoice carries a hash of what it bills, and
running the period again with the same data issues nothing. When the data or
edits changed, the old invoice is reversed by a credit note and a new invoice
issued (:func:`.invoices.credit_note`). One run per tenant at a time: a run
takes a lease in the database, so several m2mhub processes never bill twice.

Incomplete data is never billed silently: an invoice with intervals still
missing, or (with ``on_missing_data: hold``) more estimated intervals than the
settings allow, is **held** with the reason, under a provisional reference and
without an invoice number, and is not collected. :meth:`BillingRuns.release`
numbers and issues it; a run after the data was fixed replaces it.

**Netting.** When the invoice a credit note reverses was already paid, what was
paid is set off against the replacement: the replacement's ``amount_due`` (what
a SEPA collection takes) is its total less what was paid, and it is ``paid`` at
once when that covers it. A surplus stays on the credit note as a negative
``amount_due``: money owed to the customer, to refund or set off by hand.

**Usage events.** When the settings name a ``usage_webhook_url``, the run queues
the usage of each section it issued or left unchanged there, one CloudEvent per
meter, register and direction (:mod:`.usage`); the ids repeat when the period is
run again, so the receiver drops what it already has.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeAlias

import msgspec

from m2mhub.apps.metering.invoice_export import parse_invoice_document, render_invoice_json
from m2mhub.apps.metering.invoices import (
    BankTransfer,
    CustomerAccount,
    DirectDebit,
    Invoice,
    PaymentTerms,
    Seller,
    credit_note,
    creditor_reference,
)
from m2mhub.apps.metering.invoices import InvoiceKind as DocumentKind
from m2mhub.apps.metering.invoices import SupplyPoint as DocumentSupplyPoint
from m2mhub.apps.metering.models import (
    Account,
    BillingRun,
    BillingSettings,
    InvoiceKind,
    InvoiceRecord,
    InvoiceStatus,
    MissingData,
    PaymentMethod,
    RunStatus,
)
from m2mhub.apps.metering.periods import Period, parse_period
from m2mhub.apps.metering.sections import Section
from m2mhub.apps.metering.storage import NewInvoice, next_number
from m2mhub.apps.metering.usage import UsageExport
from m2mhub.audit import AuditLog
from m2mhub.core.errors import ConflictError, M2MHubError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.store.base import Tx

__all__ = ["BillingRuns", "seller_of"]

#: A billing run renews its lease after each account; a crashed run frees it after this.
LEASE_TTL_MS: Final = 15 * 60_000
#: Accounts a process claims at a time when several share a run, at most; fewer when
#: there are not four chunks per process, so that every process gets some.
CHUNK_ACCOUNTS: Final = 100
#: A billed chunk's lease lasts until the run ends and removes it.
_BILLED_TTL_MS: Final = 10 * 365 * 86_400_000
#: Starts a helper process for (run id, now, accounts per chunk) and yields the chunks
#: it reports.
StartHelper: TypeAlias = Callable[[int, int, int], AsyncIterator[tuple[int, list[dict[str, Any]]]]]
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Job:
    """What every process sharing a billing run bills with."""

    tenant_id: int
    run_id: int
    period: Period
    settings: BillingSettings
    now: int
    started_ms: int
    chunk_accounts: int


#: The number a document carries until it is held or numbered (an ISO 11649 body).
_UNNUMBERED: Final = "UNNUMBERED"


def _content_hash(section: Section, account: Account) -> str:
    """What an invoice bills, as a hash: equal hashes, nothing to correct."""
    content = {
        "draft": msgspec.to_builtins(section.draft),
        "meters": msgspec.to_builtins(section.meters),
        "account": [account.number, account.name, list(account.address), account.iban],
        "payment": [account.payment_method.value, account.mandate_id],
        "supply_point": [section.point.code, list(section.point.address)],
    }
    return hashlib.sha256(msgspec.json.encode(content, order="sorted")).hexdigest()


def _hold_reason(section: Section, settings: BillingSettings) -> str | None:
    """Why ``section`` must wait for review instead of being issued, if it must."""
    missing = int(section.details["missing_intervals"])
    if missing:
        return (
            f"{missing} intervals have no data to bill or estimate from; fix the reads or "
            "add edits and run the period again, or release the invoice to bill without them"
        )
    draft = section.draft
    total = draft.actual_intervals + draft.estimated_intervals
    limit = settings.max_estimated_percent
    if (
        settings.on_missing_data is MissingData.HOLD
        and total
        and draft.estimated_intervals * 100 > limit * total
    ):
        share = (Decimal(draft.estimated_intervals * 100) / total).quantize(Decimal("0.1"))
        return (
            f"{draft.estimated_intervals} of {total} intervals ({share} %) are estimated, "
            f"more than max_estimated_percent ({limit} %); fix the reads and run the period "
            "again, or release the invoice to bill the estimates"
        )
    return None


def _renumbered(document: Invoice, number: str, account: Account) -> Invoice:
    """``document`` under ``number``; a bank transfer's reference follows the number."""
    payment = payment_terms(account, number, document.currency, document.seller)
    return msgspec.structs.replace(document, number=number, payment=payment)


def _settled(old: InvoiceRecord) -> Decimal:
    """What of ``old`` the customer has settled: all of it once paid, else what an earlier
    set-off covered."""
    if old.status is InvoiceStatus.PAID:
        return old.total
    return old.total - old.amount_due


def seller_of(settings: BillingSettings) -> Seller:
    for field in ("seller_name", "vat_id", "iban"):
        if not getattr(settings, field):
            raise PayloadError(
                f"settings.{field}: the seller on the invoices is not set; set it with "
                "PUT /api/v1/metering/settings or `m2mhub billing settings`",
                field=f"settings.{field}",
            )
    if not settings.seller_address:
        raise PayloadError(
            "settings.seller_address: the seller's address is not set",
            field="settings.seller_address",
        )
    assert settings.seller_name and settings.vat_id and settings.iban
    return Seller(
        name=settings.seller_name,
        address=settings.seller_address,
        vat_id=settings.vat_id,
        iban=settings.iban,
        creditor_id=settings.creditor_id,
        bic=settings.bic,
    )


def payment_terms(account: Account, number: str, currency: str, seller: Seller) -> PaymentTerms:
    if (
        account.payment_method is PaymentMethod.SEPA_DEBIT
        and currency == "EUR"
        and seller.creditor_id is not None
        and account.mandate_id
        and account.iban
    ):
        return DirectDebit(mandate_reference=account.mandate_id, debtor_iban=account.iban)
    return BankTransfer(reference=creditor_reference(number))


class BillingRuns(UsageExport):
    """The billing part of :class:`~m2mhub.apps.metering.service.MeteringService`."""

    holder: str
    audit: AuditLog

    def _document(
        self,
        section: Section,
        account: Account,
        seller: Seller,
        *,
        number: str,
        issue_date: date,
        due_date: date,
        corrects: str | None,
    ) -> Invoice:
        return Invoice(
            number=number,
            kind=DocumentKind.INVOICE,
            issue_date=issue_date,
            due_date=due_date,
            seller=seller,
            customer=CustomerAccount(
                number=account.number, name=account.name, address=account.address
            ),
            supply_point=DocumentSupplyPoint(id=section.point.code, address=section.point.address),
            meters=section.meters,
            draft=section.draft,
            payment=payment_terms(account, number, section.draft.currency, seller),
            corrects=corrects,
        )

    async def _bill_account(
        self,
        tenant_id: int,
        account: Account,
        period: Period,
        settings: BillingSettings,
        run_id: int,
        now: int,
    ) -> tuple[dict[str, Any], list[Section]]:
        """Bill ``account`` for ``period``: the run's summary entry, and the sections
        billed (issued or unchanged; held ones wait for review)."""
        seller = seller_of(settings)
        sections, notes = await self._sections(tenant_id, account, period, now)
        issue_date = datetime.fromtimestamp(now / 1000, UTC).date()
        due_date = issue_date + timedelta(days=settings.due_days)
        result: dict[str, Any] = {
            "account": account.number,
            "issued": [],
            "credit_notes": [],
            "unchanged": [],
            "held": [],
            "notes": notes,
        }
        await self._refuse_overlap(tenant_id, account, period)
        billed: list[Section] = []
        async with self.store.transaction() as tx:
            current = await self.storage.current_invoices(tx, tenant_id, account.id, period.label)
            held = await self.storage.held_invoices(tx, tenant_id, account.id, period.label)
            for section in sections:
                digest = _content_hash(section, account)
                old = current.pop(section.subject, None)
                kept = held.pop(section.subject, None)
                reason = _hold_reason(section, settings)
                if reason is None:
                    billed.append(section)
                if kept is not None and kept.content_hash == digest and reason is not None:
                    result["held"].append({"reference": kept.number, "reason": reason})
                    continue
                if kept is not None:
                    await self.storage.delete_held(tx, kept.id)
                if old is not None and old.content_hash == digest:
                    result["unchanged"].append(old.number)
                    continue
                document = self._document(
                    section,
                    account,
                    seller,
                    number=_UNNUMBERED,
                    issue_date=issue_date,
                    due_date=due_date,
                    corrects=None if old is None else old.number,
                )
                new = NewInvoice(
                    number="",
                    kind=InvoiceKind.INVOICE,
                    account_id=account.id,
                    period=period.label,
                    subject=section.subject,
                    start_date=section.start,
                    end_date=section.end,
                    corrects=None if old is None else old.id,
                    document=b"",
                    details=section.details,
                    currency=section.draft.currency,
                    subtotal=section.draft.subtotal.amount,
                    tax=section.draft.tax.amount,
                    total=section.draft.total.amount,
                    status=InvoiceStatus.OPEN,
                    content_hash=digest,
                    issued_ms=now,
                    due_date=due_date,
                    run_id=run_id,
                )
                if reason is not None:
                    reference = f"HELD-{await next_number(tx, tenant_id, 'held'):06d}"
                    record = await self.storage.insert_invoice(
                        tx,
                        tenant_id,
                        msgspec.structs.replace(
                            new,
                            number=reference,
                            status=InvoiceStatus.HELD,
                            document=render_invoice_json(_renumbered(document, reference, account)),
                        ),
                    )
                    await self.storage.set_status(
                        record.id, InvoiceStatus.HELD, reason=reason, tx=tx
                    )
                    result["held"].append({"reference": reference, "reason": reason})
                    continue
                number, credit = await self._issue(
                    tx, tenant_id, new, document, account, old, settings, issue_date, now
                )
                if credit is not None:
                    result["credit_notes"].append(credit)
                result["issued"].append(number)
            for old in current.values():
                # Billed before, nothing to bill now (a link or tariff moved): reverse it.
                reversal = await self._credit(tx, tenant_id, old, settings, issue_date, run_id, now)
                result["credit_notes"].append(reversal.number)
            for kept in held.values():
                await self.storage.delete_held(tx, kept.id)
        if result["credit_notes"]:
            result["outcome"] = "corrected"
        elif result["issued"]:
            result["outcome"] = "issued"
        elif result["held"]:
            result["outcome"] = "held"
        elif result["unchanged"]:
            result["outcome"] = "unchanged"
        else:
            result["outcome"] = "nothing to bill"
        return result, billed

    async def _credit(
        self,
        tx: Tx,
        tenant_id: int,
        old: InvoiceRecord,
        settings: BillingSettings,
        issue_date: date,
        run_id: int | None,
        now: int,
    ) -> InvoiceRecord:
        """Reverse ``old`` with a credit note; an unpaid ``old`` is then ``credited``.

        The credit note's ``amount_due`` is minus what of ``old`` was settled: owed to
        the customer until :meth:`_issue` sets it off against a replacement.
        """
        number = (
            settings.credit_note_prefix + f"{await next_number(tx, tenant_id, 'credit_note'):06d}"
        )
        original = parse_invoice_document(old.document)
        note = credit_note(
            original,
            number=number,
            issue_date=max(issue_date, original.issue_date),
            note="the data behind this invoice changed; a corrected invoice follows",
        )
        draft = note.draft
        record = await self.storage.insert_invoice(
            tx,
            tenant_id,
            NewInvoice(
                number=number,
                kind=InvoiceKind.CREDIT_NOTE,
                account_id=old.account_id,
                period=old.period,
                subject=old.subject,
                start_date=old.start_date,
                end_date=old.end_date,
                corrects=old.id,
                document=render_invoice_json(note),
                details={"reverses": old.number},
                currency=draft.currency,
                subtotal=draft.subtotal.amount,
                tax=draft.tax.amount,
                total=draft.total.amount,
                status=InvoiceStatus.OPEN,
                content_hash=old.content_hash,
                issued_ms=now,
                due_date=note.due_date,
                run_id=run_id,
                amount_due=-_settled(old),
            ),
        )
        if old.status in (InvoiceStatus.OPEN, InvoiceStatus.FAILED, InvoiceStatus.OVERDUE):
            await self.storage.set_status(
                old.id, InvoiceStatus.CREDITED, reason=f"reversed by {number}", tx=tx
            )
        return record

    async def _issue(
        self,
        tx: Tx,
        tenant_id: int,
        new: NewInvoice,
        document: Invoice,
        account: Account,
        old: InvoiceRecord | None,
        settings: BillingSettings,
        issue_date: date,
        now: int,
    ) -> tuple[str, str | None]:
        """Number and write ``new`` (reversing ``old`` first), setting off what was paid on
        ``old``; returns the number and the credit note's number, if any."""
        credit: InvoiceRecord | None = None
        if old is not None:
            credit = await self._credit(tx, tenant_id, old, settings, issue_date, new.run_id, now)
        number = settings.invoice_prefix + f"{await next_number(tx, tenant_id, 'invoice'):06d}"
        settled = Decimal(0) if old is None else _settled(old)
        offset = min(settled, max(new.total, Decimal(0)))
        amount_due = new.total - offset
        currency = new.currency
        document = _renumbered(document, number, account)
        if credit is not None and old is not None and offset:
            document = msgspec.structs.replace(
                document,
                note=(
                    f"{offset} {currency} paid on invoice {old.number}, reversed by "
                    f"{credit.number}, is set off: amount due {amount_due} {currency}."
                ),
            )
        record = await self.storage.insert_invoice(
            tx,
            tenant_id,
            msgspec.structs.replace(
                new,
                number=number,
                document=render_invoice_json(document),
                amount_due=amount_due,
            ),
        )
        if credit is not None and offset:
            surplus = settled - offset
            await self.storage.set_amount_due(
                tx,
                credit.id,
                -surplus,
                status=None if surplus else InvoiceStatus.PAID,
                reason=None if surplus else f"set off against {number}",
            )
            if not amount_due:
                await self.storage.set_status(
                    record.id,
                    InvoiceStatus.PAID,
                    reason=f"settled by {credit.number}: what was paid on the invoice it "
                    "replaces covers it",
                    tx=tx,
                )
        return number, None if credit is None else credit.number

    async def _refuse_overlap(self, tenant_id: int, account: Account, period: Period) -> None:
        """Refuse a period that meets an invoice of another period label of the account."""
        clashes = await self.storage.overlapping_invoices(
            tenant_id, account.id, period=period.label, start=period.start, end=period.end
        )
        if clashes:
            clash = clashes[0]
            last = clash.end_date - timedelta(days=1)
            raise ConflictError(
                f"period: {period.label} overlaps invoice {clash.number} of account "
                f"{account.number} (period {clash.period}, {clash.start_date} to {last}); "
                f"bill period {clash.period} again to correct it, or choose days it does "
                "not cover",
                field="period",
            )

    async def release(
        self, tenant_id: int, reference: str, *, actor: str, now: int | None = None
    ) -> InvoiceRecord:
        """Issue a held invoice as it is: number it, date it today, make it collectable.

        The invoice it replaces, if any, is reversed by a credit note first.
        """
        now = now if now is not None else now_ms()
        held = await self.storage.invoice(tenant_id, reference)
        if held.status is not InvoiceStatus.HELD:
            raise ConflictError(
                f"invoice: {reference} is {held.status.value}, not held; only held invoices "
                "are released",
                field="invoice",
            )
        settings = await self.storage.settings(tenant_id)
        account = await self.storage.account_by_id(held.account_id)
        issue_date = datetime.fromtimestamp(now / 1000, UTC).date()
        due_date = issue_date + timedelta(days=settings.due_days)
        document = msgspec.structs.replace(
            parse_invoice_document(held.document),
            issue_date=issue_date,
            due_date=due_date,
        )
        async with self.store.transaction() as tx:
            current = await self.storage.current_invoices(tx, tenant_id, account.id, held.period)
            old = current.get(held.subject)
            await self.storage.delete_held(tx, held.id)
            new = NewInvoice(
                number="",
                kind=InvoiceKind.INVOICE,
                account_id=account.id,
                period=held.period,
                subject=held.subject,
                start_date=held.start_date,
                end_date=held.end_date,
                corrects=None if old is None else old.id,
                document=b"",
                details={**held.details, "released": {"reference": reference, "by": actor}},
                currency=held.currency,
                subtotal=held.subtotal,
                tax=held.tax,
                total=held.total,
                status=InvoiceStatus.OPEN,
                content_hash=held.content_hash,
                issued_ms=now,
                due_date=due_date,
                run_id=held.run_id,
            )
            number, credit = await self._issue(
                tx, tenant_id, new, document, account, old, settings, issue_date, now
            )
        await self.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="metering.invoice.released",
            target=f"invoice:{number}",
            details={"reference": reference, "reason": held.status_reason, "credit_note": credit},
        )
        return await self.storage.invoice(tenant_id, number)

    async def run_billing(
        self,
        tenant_id: int,
        period: str,
        *,
        actor: str,
        account: str | None = None,
        now: int | None = None,
        helpers: int = 0,
        start_helper: StartHelper | None = None,
    ) -> BillingRun:
        """Bill ``period`` for one account or all; see the module docstring.

        Each account is billed in its own transaction: an account whose data cannot
        be billed (no tariff in force, a tariff that starts later) is reported in the
        run's summary with the reason and the others are billed. Raises
        :class:`ConflictError` while another run of the tenant holds the lease.

        With ``helpers`` and ``start_helper``, a run of all accounts is shared:
        ``start_helper(run_id, now, chunk_accounts)`` starts each helper (another
        process that calls :meth:`join_billing` with them), and this process and the
        helpers claim the accounts in chunks through leases in the database (see
        :meth:`_bill_shared`).
        """
        parsed = parse_period(period)
        now = now if now is not None else now_ms()
        settings = await self.storage.settings(tenant_id)
        seller_of(settings)
        if account is not None:
            accounts = [await self.storage.account(tenant_id, account)]
            # One account asked for: refuse the run itself, not just its summary entry.
            await self._refuse_overlap(tenant_id, accounts[0], parsed)
        else:
            accounts = await self.storage.all_accounts(tenant_id)
        lease = f"metering.billing:{tenant_id}"
        if not await self.store.try_lease(lease, self.holder, LEASE_TTL_MS):
            raise ConflictError(
                "period: another billing run of this tenant is in progress; try again when "
                "it has finished",
                field="period",
            )
        run_id = await self.storage.start_run(
            tenant_id,
            period=parsed.label,
            account_id=accounts[0].id if account is not None else None,
            holder=self.holder,
            actor=actor,
        )
        summary: list[dict[str, Any]] = []
        status = RunStatus.FAILED
        try:
            if account is None and helpers > 0 and start_helper is not None:
                run = await self.storage.run(tenant_id, run_id)
                size = max(1, min(CHUNK_ACCOUNTS, len(accounts) // (4 * (helpers + 1))))
                job = _Job(tenant_id, run_id, parsed, settings, now, run.started_ms, size)
                summary = await self._bill_shared(job, lease, helpers, start_helper)
            else:
                for found in accounts:
                    await self.store.try_lease(lease, self.holder, LEASE_TTL_MS)
                    summary.append(
                        await self._bill_entry(tenant_id, found, parsed, settings, run_id, now)
                    )
            status = RunStatus.DONE
        finally:
            await self.storage.finish_run(run_id, status, summary)
            await self.storage.release_lease(lease, self.holder)
        await self.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="metering.billing.run",
            target=f"billing_run:{run_id}",
            details={"period": parsed.label, "account": account, "accounts": len(summary)},
        )
        return await self.storage.run(tenant_id, run_id)

    async def _bill_entry(
        self,
        tenant_id: int,
        account: Account,
        period: Period,
        settings: BillingSettings,
        run_id: int,
        now: int,
    ) -> dict[str, Any]:
        """Bill one account and push its usage: its entry in the run's summary."""
        try:
            result, billed = await self._bill_account(
                tenant_id, account, period, settings, run_id, now
            )
            usage = await self._push_usage(tenant_id, settings, account, billed)
            if usage:
                result["usage_deliveries"] = usage
            return result
        except M2MHubError as exc:
            return {
                "account": account.number,
                "outcome": "error",
                "message": exc.message,
                "field": exc.field,
            }

    async def _chunks(self, job: _Job) -> list[list[Account]]:
        """The run's accounts in claimable chunks, the same in every process of the run:
        the accounts that existed when it started, by number (accounts are never
        deleted; one created during the run is billed by the next)."""
        accounts = [
            found
            for found in await self.storage.all_accounts(job.tenant_id)
            if found.created_ms < job.started_ms
        ]
        size = job.chunk_accounts
        return [accounts[first : first + size] for first in range(0, len(accounts), size)]

    async def _claim_chunks(
        self, job: _Job, chunks: list[list[Account]], holder: str, renew: str | None
    ) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
        """Claim each chunk nobody holds (a lease per chunk), bill it and yield its
        index and summary entries; a billed chunk's lease is kept until the run ends,
        so no other process bills it again. ``renew`` is the run's own lease."""
        for index, chunk in enumerate(chunks):
            name = f"metering.billing:{job.tenant_id}:{job.run_id}:{index}"
            if not await self.store.try_lease(name, holder, LEASE_TTL_MS):
                continue
            entries = []
            for found in chunk:
                await self.store.try_lease(name, holder, LEASE_TTL_MS)
                if renew is not None:
                    await self.store.try_lease(renew, self.holder, LEASE_TTL_MS)
                entries.append(
                    await self._bill_entry(
                        job.tenant_id, found, job.period, job.settings, job.run_id, job.now
                    )
                )
            await self.store.try_lease(name, holder, _BILLED_TTL_MS)
            yield index, entries

    async def _bill_shared(
        self, job: _Job, lease: str, helpers: int, start_helper: StartHelper
    ) -> list[dict[str, Any]]:
        """Bill the run's accounts together with ``helpers`` other processes.

        Every process claims chunks of accounts through leases in the database and
        bills them, each account in its own transaction as always, so invoice numbers
        stay gapless and a chunk billed twice (after a helper died) changes nothing.
        The helpers report their chunks' summary entries; once they have exited,
        this process bills every chunk no helper reported and writes the summary in
        account order.
        """
        chunks = await self._chunks(job)
        reports: dict[int, list[dict[str, Any]]] = {}

        async def follow(helper: AsyncIterator[tuple[int, list[dict[str, Any]]]]) -> None:
            async for index, entries in helper:
                reports[index] = entries

        followers = [
            asyncio.create_task(follow(start_helper(job.run_id, job.now, job.chunk_accounts)))
            for _ in range(helpers)
        ]
        try:
            holder = f"{self.holder}:{job.run_id}:{os.getpid()}"
            async for index, entries in self._claim_chunks(job, chunks, holder, lease):
                reports[index] = entries
            for finished in await asyncio.gather(*followers, return_exceptions=True):
                if isinstance(finished, BaseException):
                    _log.warning("a billing helper stopped: %s", finished)
        finally:
            for follower in followers:
                follower.cancel()
        for index, chunk in enumerate(chunks):
            if index not in reports:
                # Claimed by a helper that stopped before reporting it: bill it here.
                entries = []
                for found in chunk:
                    await self.store.try_lease(lease, self.holder, LEASE_TTL_MS)
                    entries.append(
                        await self._bill_entry(
                            job.tenant_id, found, job.period, job.settings, job.run_id, job.now
                        )
                    )
                reports[index] = entries
        await self.storage.forget_leases(f"metering.billing:{job.tenant_id}:{job.run_id}:")
        return [entry for index in range(len(chunks)) for entry in reports[index]]

    async def join_billing(
        self, tenant_id: int, run_id: int, *, now: int, chunk_accounts: int
    ) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
        """Help billing run ``run_id`` (started with helpers by :meth:`run_billing` in
        another process, at ``now``, in chunks of ``chunk_accounts``): claim and bill
        chunks of its accounts, yielding each chunk's index and summary entries, until
        none is left to claim."""
        run = await self.storage.run(tenant_id, run_id)
        if run.status is not RunStatus.RUNNING:
            raise ConflictError(
                f"run: billing run {run_id} is {run.status}, not running; start a new run",
                field="run",
            )
        settings = await self.storage.settings(tenant_id)
        job = _Job(
            tenant_id,
            run_id,
            parse_period(run.period),
            settings,
            now,
            run.started_ms,
            max(1, chunk_accounts),
        )
        chunks = await self._chunks(job)
        holder = f"{self.holder}:{run_id}:{os.getpid()}"
        async for report in self._claim_chunks(job, chunks, holder, None):
            yield report
