"""The metering service: declare meters and accounts, turn stored reads into intervals,
and bill them.

Billing a period for an account, step by step:

1. **Tariffs.** Each tariff assigned to the account (per meter kind, over local
   dates) covers part of the period; the period is read in the tariff's time
   zone (``2024-10`` is 1 October 00:00 to 1 November 00:00 local time).
2. **Supply points.** Each supply point linked to the account during that part
   is billed on its own invoice, for the local days of the link.
3. **Meters.** Each meter of the tariff's kind installed at the supply point
   contributes the intervals that start while it was installed, so after a
   meter swap the days before come from the old meter and the days after from
   the new one. Record a swap at an interval boundary (a whole hour for hourly
   intervals): the interval holding the swap instant is counted on the old meter.
4. **Intervals.** The raw register reads are loaded from telemetry (never
   changed), derived into intervals (:func:`.consumption.derive`), the missing
   ones estimated (:func:`.estimation.estimate`, with four weeks of history for
   profiles), the edits laid over them (:func:`.edits.apply_edits`) and the
   result checked (:func:`.validation.validate`). Import registers add up (tariff
   1 and 2 of a P1 meter), a net register's negative quantities are export.
   Intervals still missing are not billed and are counted on the invoice's details.
5. **Pricing** with the tariff versions in force (:func:`.pricing.price_period`);
   for gas, water, heat and usage tariffs the kWh of the pricing core are read
   as the register's unit.

A billing run is idempotent: each invoice carries a hash of what it bills, and
running the period again with the same data issues nothing. When the data or
edits changed, the old invoice is reversed by a credit note and a new invoice
issued (:func:`.invoices.credit_note`). One run per tenant at a time: a run
takes a lease in the database, so several m2mhub processes never bill twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec

from m2mhub.actions.webhook import WebhookService
from m2mhub.apps.metering.consumption import Derivation, Interval, Quality, Read, derive
from m2mhub.apps.metering.edits import apply_edits
from m2mhub.apps.metering.estimation import estimate
from m2mhub.apps.metering.invoice_export import parse_invoice_json, render_invoice_json
from m2mhub.apps.metering.invoices import (
    BankTransfer,
    CustomerAccount,
    DirectDebit,
    Invoice,
    MeterReads,
    PaymentTerms,
    RegisterRead,
    Seller,
    credit_note,
    creditor_reference,
)
from m2mhub.apps.metering.invoices import InvoiceKind as DocumentKind
from m2mhub.apps.metering.invoices import SupplyPoint as DocumentSupplyPoint
from m2mhub.apps.metering.models import (
    INTERVAL_MINUTES,
    Account,
    AccountLink,
    BillingRun,
    BillingSettings,
    Direction,
    EditRecord,
    InvoiceKind,
    InvoiceRecord,
    InvoiceStatus,
    Meter,
    MeterKind,
    MeterLink,
    PaymentMethod,
    RegisterSpec,
    RunStatus,
    SupplyPoint,
    TariffAssignment,
    TariffRecord,
)
from m2mhub.apps.metering.payments import (
    Collection,
    Creditor,
    DirectDebitFile,
    InvoicePaymentState,
    PaymentOutcome,
    SequenceType,
    check_iban,
    export_direct_debit,
    invoice_payment_state,
    payment_events,
    read_payment_status,
)
from m2mhub.apps.metering.pricing import Interval as PricedInterval
from m2mhub.apps.metering.pricing import InvoiceDraft, price_period
from m2mhub.apps.metering.storage import FOREVER, MeteringStorage, NewInvoice, next_number
from m2mhub.apps.metering.tariffs import Tariff, parse_tariff_yaml
from m2mhub.apps.metering.validation import mark, validate
from m2mhub.apps.metering.values import Edit
from m2mhub.audit import AuditLog
from m2mhub.core.errors import ConflictError, M2MHubError, NotFoundError, PayloadError
from m2mhub.core.timeutil import format_ms, now_ms
from m2mhub.store.base import Segment, Store, Tx

__all__ = ["MeteringService", "Period", "RegisterSeries", "StatusImport", "parse_period"]

DAY_MS: Final = 86_400_000
#: History derived before a window, for profile estimates (estimation.EstimationRules.weeks).
HISTORY_MS: Final = 28 * DAY_MS
#: How far past a window to look for the reads that bound it.
LOOKAROUND_MS: Final = 2 * DAY_MS
#: A billing run renews its lease after each account; a crashed run frees it after this.
LEASE_TTL_MS: Final = 15 * 60_000
_PAGE: Final = 5000
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


class Period(msgspec.Struct, frozen=True):
    """A billing period: its label and local dates ``[start, end)``."""

    label: str
    start: date
    end: date


def parse_period(text: str) -> Period:
    """``2024-10`` (a calendar month) or ``2024-10-01..2024-10-15`` (first and last day)."""
    text = text.strip()
    month = _MONTH.match(text)
    try:
        if month:
            year, number = int(month.group(1)), int(month.group(2))
            start = date(year, number, 1)
            end = date(year + number // 12, number % 12 + 1, 1)
            return Period(text, start, end)
        days = _RANGE.match(text)
        if days:
            start = date.fromisoformat(days.group(1))
            end = date.fromisoformat(days.group(2)) + timedelta(days=1)
            if end > start:
                return Period(text, start, end)
    except ValueError:
        pass
    raise PayloadError(
        f"period: {text!r} is not a billing period; write a month (2024-10) or a range of "
        "days (2024-10-01..2024-10-15, both included)",
        field="period",
    )


class RegisterSeries(msgspec.Struct, frozen=True):
    """One register of a meter over a window: the derivation, the intervals as billed
    (estimated, edited, marked with their findings) and the findings."""

    register: RegisterSpec
    derivation: Derivation
    intervals: tuple[Interval, ...]
    flags: tuple[Any, ...]


class StatusImport(msgspec.Struct, frozen=True, kw_only=True):
    """What a bank status file changed: invoice numbers by new status, and those unknown."""

    kind: str
    message_id: str
    paid: list[str]
    failed: list[str]
    pending: list[str]
    unknown: list[str]
    webhooks: list[str]


@dataclass(frozen=True, slots=True)
class _Section:
    """One invoice to be: a supply point's consumption of one kind over some local days."""

    subject: str
    point: SupplyPoint
    kind: MeterKind
    tariff: TariffRecord
    start: date
    end: date
    draft: InvoiceDraft
    meters: tuple[MeterReads, ...]
    details: dict[str, Any]


def _midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=zone).timestamp() * 1000)


def _local_date(ts: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts / 1000, UTC).astimezone(zone).date()


def _local_date_ceil(ts: int, zone: ZoneInfo) -> date:
    """The local date ``ts`` ends: its own date at midnight, else the next one."""
    day = _local_date(ts, zone)
    return day if _midnight(day, zone) == ts else day + timedelta(days=1)


def _text(value: str, field: str) -> str:
    if not value or not value.strip():
        raise PayloadError(f"{field}: must not be empty", field=field)
    return value.strip()


def _lines(lines: Sequence[str], field: str) -> tuple[str, ...]:
    cleaned = tuple(line.strip() for line in lines if line.strip())
    if not cleaned:
        raise PayloadError(
            f"{field}: give the postal address as lines, e.g. ['Keizersgracht 1', "
            "'1015 CJ Amsterdam']",
            field=field,
        )
    return cleaned


def _relabel(draft: InvoiceDraft, kind: MeterKind, unit: str) -> InvoiceDraft:
    """The draft of a gas, water, heat or usage tariff in its own words: the pricing
    core counts kWh, which are here the register's unit."""
    if kind is MeterKind.ELECTRICITY:
        return draft
    title = kind.value.capitalize()
    lines = tuple(
        dataclasses.replace(
            line,
            unit=unit if line.unit == "kWh" else line.unit,
            description=(
                title + line.description[len("Energy") :]
                if line.description.startswith("Energy")
                and not line.description.startswith("Energy tax")
                else line.description
            ),
        )
        for line in draft.lines
    )
    return dataclasses.replace(draft, lines=lines)


def _content_hash(section: _Section, account: Account) -> str:
    """What an invoice bills, as a hash: equal hashes, nothing to correct."""
    content = {
        "draft": msgspec.to_builtins(section.draft),
        "meters": msgspec.to_builtins(section.meters),
        "account": [account.number, account.name, list(account.address), account.iban],
        "payment": [account.payment_method.value, account.mandate_id],
        "supply_point": [section.point.code, list(section.point.address)],
    }
    return hashlib.sha256(msgspec.json.encode(content, order="sorted")).hexdigest()


def _seller(settings: BillingSettings) -> Seller:
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


def _payment(account: Account, number: str, currency: str, seller: Seller) -> PaymentTerms:
    if (
        account.payment_method is PaymentMethod.SEPA_DEBIT
        and currency == "EUR"
        and seller.creditor_id is not None
        and account.mandate_id
        and account.iban
    ):
        return DirectDebit(mandate_reference=account.mandate_id, debtor_iban=account.iban)
    return BankTransfer(reference=creditor_reference(number))


class MeteringService:
    """Meters, accounts and billing of one store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        holder: str,
        audit: AuditLog | None = None,
        webhooks: WebhookService | None = None,
        source: str = "m2mhub",
    ) -> None:
        self.store = store
        self.storage = MeteringStorage(store)
        self.holder = holder
        self.audit = audit or AuditLog(store)
        self.webhooks = webhooks
        self.source = source

    # -- declaring -------------------------------------------------------------------------

    async def add_meter(
        self,
        tenant_id: int,
        *,
        name: str,
        device_id: str,
        kind: MeterKind,
        registers: Sequence[RegisterSpec],
        interval_minutes: int = 60,
    ) -> Meter:
        """Declare the device ``device_id`` a meter of ``kind`` with ``registers``."""
        device = await self.store.get_device(device_id, tenant_id=tenant_id)
        if not registers:
            raise PayloadError(
                "registers: a meter needs at least one register, e.g. "
                "[{key: energy_import_kwh, direction: import}]",
                field="registers",
            )
        keys = [r.key for r in registers]
        if len(set(keys)) != len(keys):
            raise PayloadError("registers: each telemetry key once", field="registers")
        for index, spec in enumerate(registers):
            try:
                spec.register()
            except M2MHubError as exc:
                raise PayloadError(
                    f"registers[{index}]: {exc.message}", field=f"registers[{index}]"
                ) from None
        if interval_minutes not in INTERVAL_MINUTES:
            raise PayloadError(
                f"interval_minutes: {interval_minutes}; use one of "
                f"{', '.join(map(str, INTERVAL_MINUTES))}",
                field="interval_minutes",
            )
        return await self.storage.create_meter(
            tenant_id,
            name=_text(name, "name"),
            device_pk=device.pk,
            kind=kind,
            registers=registers,
            interval_minutes=interval_minutes,
        )

    async def add_account(
        self,
        tenant_id: int,
        *,
        number: str,
        name: str,
        address: Sequence[str],
        email: str | None = None,
        payment_method: PaymentMethod = PaymentMethod.TRANSFER,
        iban: str | None = None,
        bic: str | None = None,
        mandate_id: str | None = None,
        mandate_signed_on: date | None = None,
    ) -> Account:
        """Open a customer account; direct debit needs the IBAN and the signed mandate."""
        if payment_method is PaymentMethod.SEPA_DEBIT:
            if not iban:
                raise PayloadError("iban: direct debit needs the account's IBAN", field="iban")
            if not mandate_id or mandate_signed_on is None:
                raise PayloadError(
                    "mandate_id: direct debit needs the mandate reference and the date it "
                    "was signed (mandate_signed_on)",
                    field="mandate_id" if not mandate_id else "mandate_signed_on",
                )
        if iban:
            iban = check_iban(iban, field="iban")
        return await self.storage.create_account(
            tenant_id,
            number=_text(number, "number"),
            name=_text(name, "name"),
            address=_lines(address, "address"),
            email=email,
            payment_method=payment_method,
            iban=iban,
            bic=bic,
            mandate_id=mandate_id,
            mandate_signed_on=mandate_signed_on,
        )

    async def add_supply_point(
        self, tenant_id: int, *, code: str, address: Sequence[str]
    ) -> SupplyPoint:
        """A supply point (EAN code, or any contract or site id) and its address."""
        return await self.storage.create_supply_point(
            tenant_id, _text(code, "code"), _lines(address, "address")
        )

    async def link_meter(
        self, tenant_id: int, *, meter: str, supply_point: str, at_ms: int
    ) -> MeterLink:
        """Install ``meter`` at ``supply_point`` from ``at_ms`` (a swap ends the old link)."""
        found = await self.storage.meter(tenant_id, meter)
        point = await self.storage.supply_point(tenant_id, supply_point)
        return await self.storage.link_meter(tenant_id, found, point, at_ms)

    async def unlink_meter(self, tenant_id: int, *, meter: str, at_ms: int) -> None:
        """The meter is removed from where it is installed at ``at_ms``."""
        await self.storage.end_meter_link(
            tenant_id, await self.storage.meter(tenant_id, meter), at_ms
        )

    async def link_account(
        self, tenant_id: int, *, supply_point: str, account: str, at_ms: int
    ) -> AccountLink:
        """Bill ``supply_point`` to ``account`` from ``at_ms`` (a change of tenant)."""
        point = await self.storage.supply_point(tenant_id, supply_point)
        found = await self.storage.account(tenant_id, account)
        return await self.storage.link_account(tenant_id, point, found, at_ms)

    async def put_tariff(
        self, tenant_id: int, *, yaml_text: str, kind: MeterKind = MeterKind.ELECTRICITY
    ) -> tuple[TariffRecord, bool]:
        """Create or replace (by its name) the tariff of a YAML text; True if created."""
        tariff = parse_tariff_yaml(yaml_text)
        return await self.storage.put_tariff(
            tenant_id,
            name=tariff.name,
            kind=kind,
            yaml=yaml_text,
            currency=tariff.currency,
            tz=tariff.timezone.key,
        )

    async def assign_tariff(
        self, tenant_id: int, *, account: str, tariff: str, from_date: date
    ) -> TariffAssignment:
        """Put ``tariff`` in force for the account's meters of its kind from ``from_date``."""
        found = await self.storage.account(tenant_id, account)
        record = await self.storage.tariff(tenant_id, tariff)
        return await self.storage.assign_tariff(tenant_id, found, record, from_date)

    async def add_edit(
        self,
        tenant_id: int,
        *,
        meter: str,
        register: str,
        start: int,
        quantity: Decimal,
        author: str,
        reason: str,
    ) -> EditRecord:
        """Correct the interval of ``meter``'s ``register`` that starts at ``start``."""
        found = await self.storage.meter(tenant_id, meter)
        if register not in {r.key for r in found.registers}:
            raise PayloadError(
                f"register: meter {meter!r} has no register {register!r}; it has "
                f"{', '.join(r.key for r in found.registers)}",
                field="register",
            )
        step = found.interval_minutes * 60_000
        if found.interval_minutes < 60 and start % step:
            raise PayloadError(
                f"start: {format_ms(start)} is not the start of a {found.interval_minutes}-minute "
                "interval",
                field="start",
            )
        Edit(start, quantity, author, now_ms(), reason)  # checks author and reason
        return await self.storage.add_edit(
            tenant_id,
            meter_id=found.id,
            register=register,
            interval_start=start,
            quantity=quantity,
            author=author,
            reason=reason,
        )

    # -- intervals ---------------------------------------------------------------------------

    async def _reads(self, device_pk: int, key: str, start: int, end: int) -> list[Read]:
        """The raw reads of one telemetry key; values that are not numbers are left out."""
        reads: list[Read] = []
        after: tuple[int, int, int] | None = None
        while True:
            page = await self.store.history(
                [Segment(device_pk, start, end)], keys=[key], after=after, limit=_PAGE
            )
            for point in page:
                value = point.value
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                reads.append(Read.of(point.ts, value))
            if len(page) < _PAGE:
                return reads
            after = await self.store.cursor_of(page[-1])

    async def register_series(
        self,
        tenant_id: int,
        meter: Meter,
        spec: RegisterSpec,
        *,
        start: int,
        end: int,
        tz: str,
        now: int | None = None,
    ) -> RegisterSeries:
        """The intervals of one register over ``[start, end)``, as billing sees them."""
        length = timedelta(minutes=meter.interval_minutes)
        register = spec.register()
        reads = await self._reads(
            meter.device_pk, spec.key, start - HISTORY_MS - LOOKAROUND_MS, end + LOOKAROUND_MS
        )
        series = derive(reads, register, length=length, tz=tz, start=start, end=end)
        earlier = [read for read in reads if read.ts <= start]
        history: tuple[Interval, ...] = ()
        if earlier:
            history = derive(
                earlier, register, length=length, tz=tz, start=start - HISTORY_MS, end=start
            ).intervals
        intervals = estimate(series, history=history)
        starts = {interval.start for interval in intervals}
        edits = [
            Edit(e.interval_start, e.quantity, e.author, e.at_ms, e.reason)
            for e in await self.storage.edits(tenant_id, meter.id, register=spec.key)
            if e.interval_start in starts
        ]
        intervals = apply_edits(intervals, edits)
        flags = validate(series, now=now if now is not None else now_ms(), intervals=intervals)
        return RegisterSeries(spec, series, mark(intervals, flags), flags)

    async def meter_series(
        self, tenant_id: int, *, meter: str, start: int, end: int, tz: str
    ) -> tuple[Meter, list[RegisterSeries]]:
        """Every register of ``meter`` over ``[start, end)`` (for the API and console)."""
        found = await self.storage.meter(tenant_id, meter)
        if end - start > 93 * DAY_MS:
            raise PayloadError("to: ask for at most 93 days at a time", field="to")
        series = [
            await self.register_series(tenant_id, found, spec, start=start, end=end, tz=tz)
            for spec in found.registers
        ]
        return found, series

    # -- billing -------------------------------------------------------------------------------

    async def _meter_piece(
        self,
        tenant_id: int,
        meter: Meter,
        start: int,
        end: int,
        zone: ZoneInfo,
        now: int,
        quantities: dict[int, list[Any]],
    ) -> tuple[list[MeterReads], dict[str, Any]]:
        """Add one meter's intervals in ``[start, end)`` to ``quantities`` (by interval start:
        [end, import, export, estimated, registers seen]); its reads and details."""
        reads: list[MeterReads] = []
        registers: dict[str, Any] = {}
        for spec in meter.registers:
            series = await self.register_series(
                tenant_id, meter, spec, start=start, end=end, tz=zone.key, now=now
            )
            counts = {quality.value: 0 for quality in Quality}
            for interval in series.intervals:
                if not start <= interval.start < end:
                    continue
                counts[interval.quality.value] += 1
                slot = quantities.setdefault(
                    interval.start, [interval.end, Decimal(0), Decimal(0), False, 0, True]
                )
                if interval.quantity is None:
                    slot[5] = False
                    continue
                quantity = interval.quantity
                if spec.direction is Direction.EXPORT:
                    slot[2] += max(quantity, Decimal(0))
                else:
                    slot[1] += max(quantity, Decimal(0))
                    slot[2] += max(-quantity, Decimal(0)) if spec.net else Decimal(0)
                slot[3] = slot[3] or interval.quality is Quality.ESTIMATED
                slot[4] += 1
            registers[spec.key] = {
                **counts,
                "flags": sorted({flag.code.value for flag in series.flags}),
            }
            used = [read for read in series.derivation.reads if start <= read.ts <= end]
            if len(used) >= 2:
                first, last = used[0], used[-1]
                register = spec.register()
                # Reads on one day, or a net register that went down: no reads shown.
                with contextlib.suppress(M2MHubError):
                    reads.append(
                        MeterReads(
                            meter=meter.name,
                            register=spec.key,
                            first=RegisterRead(
                                read_on=_local_date(first.ts, zone), value=first.value
                            ),
                            last=RegisterRead(read_on=_local_date(last.ts, zone), value=last.value),
                            unit=spec.unit,
                            modulus=register.modulus,
                        )
                    )
        return reads, registers

    async def _supply_section(
        self,
        tenant_id: int,
        point: SupplyPoint,
        record: TariffRecord,
        tariff: Tariff,
        lo: int,
        hi: int,
        now: int,
    ) -> _Section | None:
        zone = tariff.timezone
        links = [
            link
            for link in await self.storage.meter_links(tenant_id, supply_point_id=point.id)
            if link.from_ms < hi and (link.to_ms or FOREVER) > lo
        ]
        meters = await self.storage.meters_by_id([link.meter_id for link in links])
        quantities: dict[int, list[Any]] = {}
        all_reads: list[MeterReads] = []
        pieces: list[dict[str, Any]] = []
        units: list[str] = []
        for link in links:
            meter = meters[link.meter_id]
            if meter.kind is not record.kind:
                continue
            start, end = max(lo, link.from_ms), min(hi, link.to_ms or FOREVER)
            reads, registers = await self._meter_piece(
                tenant_id, meter, start, end, zone, now, quantities
            )
            all_reads += reads
            units += [spec.unit for spec in meter.registers]
            pieces.append({"meter": meter.name, "from": start, "to": end, "registers": registers})
        if not pieces:
            return None
        intervals: list[PricedInterval] = []
        missing = 0
        for start_ms in sorted(quantities):
            end_ms, imported, exported, estimated, _, complete = quantities[start_ms]
            if not complete:
                missing += 1
                continue
            intervals.append(
                PricedInterval(
                    start=datetime.fromtimestamp(start_ms / 1000, UTC),
                    minutes=(end_ms - start_ms) // 60_000,
                    import_kwh=imported,
                    export_kwh=exported,
                    is_estimated=estimated,
                )
            )
        first_day, last_day = _local_date(lo, zone), _local_date_ceil(hi, zone)
        draft = price_period(tariff, first_day, last_day, intervals)
        draft = _relabel(draft, record.kind, units[0] if units else "kWh")
        notes = []
        if missing:
            notes.append(f"{missing} intervals without data are not billed")
        return _Section(
            subject=f"{point.code}/{record.kind.value}/{first_day.isoformat()}",
            point=point,
            kind=record.kind,
            tariff=record,
            start=first_day,
            end=last_day,
            draft=draft,
            meters=tuple(all_reads),
            details={
                "tariff": record.name,
                "meters": pieces,
                "missing_intervals": missing,
                "notes": notes,
            },
        )

    async def _sections(
        self, tenant_id: int, account: Account, period: Period, now: int
    ) -> tuple[list[_Section], list[str]]:
        sections: list[_Section] = []
        notes: list[str] = []
        links = await self.storage.account_links(tenant_id, account_id=account.id)
        assignments = await self.storage.assignments(tenant_id, account.id)
        if links and not assignments:
            notes.append("no tariff is assigned to the account; nothing billed")
        for assignment in assignments:
            first = max(period.start, assignment.from_date)
            last = min(period.end, assignment.to_date or period.end)
            if first >= last:
                continue
            record = await self.storage.tariff_by_id(assignment.tariff_id)
            tariff = parse_tariff_yaml(record.yaml)
            zone = tariff.timezone
            lo_part, hi_part = _midnight(first, zone), _midnight(last, zone)
            for link in links:
                lo, hi = max(lo_part, link.from_ms), min(hi_part, link.to_ms or FOREVER)
                if lo >= hi:
                    continue
                point = await self.storage.supply_point(tenant_id, link.supply_point)
                section = await self._supply_section(tenant_id, point, record, tariff, lo, hi, now)
                if section is None:
                    notes.append(
                        f"supply point {point.code}: no {record.kind.value} meter from "
                        f"{format_ms(lo)} to {format_ms(hi)}"
                    )
                    continue
                sections.append(section)
        return sections, notes

    def _document(
        self,
        section: _Section,
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
            payment=_payment(account, number, section.draft.currency, seller),
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
    ) -> dict[str, Any]:
        seller = _seller(settings)
        sections, notes = await self._sections(tenant_id, account, period, now)
        issue_date = datetime.fromtimestamp(now / 1000, UTC).date()
        due_date = issue_date + timedelta(days=settings.due_days)
        result: dict[str, Any] = {
            "account": account.number,
            "issued": [],
            "credit_notes": [],
            "unchanged": [],
            "notes": notes,
        }
        async with self.store.transaction() as tx:
            current = await self.storage.current_invoices(tx, tenant_id, account.id, period.label)
            for section in sections:
                digest = _content_hash(section, account)
                old = current.pop(section.subject, None)
                if old is not None and old.content_hash == digest:
                    result["unchanged"].append(old.number)
                    continue
                if old is not None:
                    credit = await self._credit(
                        tx, tenant_id, old, settings, issue_date, run_id, now
                    )
                    result["credit_notes"].append(credit)
                number = (
                    settings.invoice_prefix + f"{await next_number(tx, tenant_id, 'invoice'):06d}"
                )
                document = self._document(
                    section,
                    account,
                    seller,
                    number=number,
                    issue_date=issue_date,
                    due_date=due_date,
                    corrects=None if old is None else old.number,
                )
                draft = section.draft
                await self.storage.insert_invoice(
                    tx,
                    tenant_id,
                    NewInvoice(
                        number=number,
                        kind=InvoiceKind.INVOICE,
                        account_id=account.id,
                        period=period.label,
                        subject=section.subject,
                        start_date=section.start,
                        end_date=section.end,
                        corrects=None if old is None else old.id,
                        document=render_invoice_json(document),
                        details=section.details,
                        currency=draft.currency,
                        subtotal=draft.subtotal.amount,
                        tax=draft.tax.amount,
                        total=draft.total.amount,
                        status=InvoiceStatus.OPEN,
                        content_hash=digest,
                        issued_ms=now,
                        due_date=due_date,
                        run_id=run_id,
                    ),
                )
                result["issued"].append(number)
            for old in current.values():
                # Billed before, nothing to bill now (a link or tariff moved): reverse it.
                credit = await self._credit(tx, tenant_id, old, settings, issue_date, run_id, now)
                result["credit_notes"].append(credit)
        if result["credit_notes"]:
            result["outcome"] = "corrected"
        elif result["issued"]:
            result["outcome"] = "issued"
        elif result["unchanged"]:
            result["outcome"] = "unchanged"
        else:
            result["outcome"] = "nothing to bill"
        return result

    async def _credit(
        self,
        tx: Tx,
        tenant_id: int,
        old: InvoiceRecord,
        settings: BillingSettings,
        issue_date: date,
        run_id: int,
        now: int,
    ) -> str:
        """Reverse ``old`` with a credit note; an unpaid ``old`` is then ``credited``."""
        number = (
            settings.credit_note_prefix + f"{await next_number(tx, tenant_id, 'credit_note'):06d}"
        )
        original = parse_invoice_json(msgspec.json.encode(old.document))
        note = credit_note(
            original,
            number=number,
            issue_date=max(issue_date, original.issue_date),
            note="the data behind this invoice changed; a corrected invoice follows",
        )
        draft = note.draft
        await self.storage.insert_invoice(
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
            ),
        )
        if old.status in (InvoiceStatus.OPEN, InvoiceStatus.FAILED, InvoiceStatus.OVERDUE):
            await self.storage.set_status(
                old.id, InvoiceStatus.CREDITED, reason=f"reversed by {number}", tx=tx
            )
        return number

    async def run_billing(
        self,
        tenant_id: int,
        period: str,
        *,
        actor: str,
        account: str | None = None,
        now: int | None = None,
    ) -> BillingRun:
        """Bill ``period`` for one account or all; see the module docstring.

        Each account is billed in its own transaction: an account whose data cannot
        be billed (no tariff in force, a tariff that starts later) is reported in the
        run's summary with the reason and the others are billed. Raises
        :class:`ConflictError` while another run of the tenant holds the lease.
        """
        parsed = parse_period(period)
        now = now if now is not None else now_ms()
        settings = await self.storage.settings(tenant_id)
        _seller(settings)
        if account is not None:
            accounts = [await self.storage.account(tenant_id, account)]
        else:
            accounts = await self._all_accounts(tenant_id)
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
            for found in accounts:
                await self.store.try_lease(lease, self.holder, LEASE_TTL_MS)
                try:
                    summary.append(
                        await self._bill_account(tenant_id, found, parsed, settings, run_id, now)
                    )
                except M2MHubError as exc:
                    summary.append(
                        {
                            "account": found.number,
                            "outcome": "error",
                            "message": exc.message,
                            "field": exc.field,
                        }
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

    async def _all_accounts(self, tenant_id: int) -> list[Account]:
        found: list[Account] = []
        while True:
            page = await self.storage.list_accounts(
                tenant_id, after=found[-1].number if found else None, limit=500
            )
            found += page
            if len(page) < 500:
                return found

    # -- payments --------------------------------------------------------------------------------

    async def export_sepa(
        self, tenant_id: int, *, actor: str, now: int | None = None
    ) -> tuple[DirectDebitFile, list[str]]:
        """A pain.008 file collecting every open direct-debit invoice not yet collected.

        The file is kept with the invoices (to match a bank's rejection of a whole
        block later); the invoices it holds are not collected again.
        """
        now = now if now is not None else now_ms()
        settings = await self.storage.settings(tenant_id)
        seller = _seller(settings)
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
                    amount=invoice.total,
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
        found: list[InvoiceRecord] = []
        before: int | None = None
        while True:
            page = await self.storage.list_invoices(
                tenant_id,
                status=[InvoiceStatus.OPEN],
                kind=InvoiceKind.INVOICE,
                before=before,
                limit=500,
            )
            found += [
                i
                for i in page
                if i.sepa_message_id is None
                and i.total > 0
                and i.currency == "EUR"
                and i.document.get("payment", {}).get("method") == "sepa_direct_debit"
            ]
            if len(page) < 500:
                return sorted(found, key=lambda i: i.id)
            before = page[-1].id

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
        if changed and settings.webhook_url and self.webhooks is not None:
            events = payment_events(
                report, source=self.source, received_at=datetime.fromtimestamp(now / 1000, UTC)
            )
            for event in events:
                if event.subject in changed or event.type.endswith("batch_rejected"):
                    webhooks.append(
                        await self.webhooks.enqueue(
                            tenant_id=tenant_id,
                            source="metering",
                            url=settings.webhook_url,
                            payload=msgspec.to_builtins(event),
                            secret=settings.webhook_secret,
                        )
                    )
        return StatusImport(
            kind=report.kind,
            message_id=report.message_id,
            paid=paid,
            failed=failed,
            pending=pending,
            unknown=unknown,
            webhooks=webhooks,
        )

    async def mark_overdue(
        self, tenant_id: int, *, actor: str, today: date | None = None
    ) -> list[str]:
        """Mark open and failed invoices past their due date (plus grace days) overdue."""
        day = today or datetime.now(UTC).date()
        settings = await self.storage.settings(tenant_id)
        marked: list[str] = []
        before: int | None = None
        while True:
            page = await self.storage.list_invoices(
                tenant_id,
                status=[InvoiceStatus.OPEN, InvoiceStatus.FAILED],
                kind=InvoiceKind.INVOICE,
                before=before,
                limit=500,
            )
            for invoice in page:
                state = invoice_payment_state(
                    due_date=invoice.due_date,
                    today=day,
                    result=None,
                    grace_days=settings.grace_days,
                )
                if state is InvoicePaymentState.OVERDUE:
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
            if len(page) < 500:
                return marked
            before = page[-1].id
