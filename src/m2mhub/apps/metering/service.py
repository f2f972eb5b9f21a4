"""The metering service: declare meters and accounts, turn stored reads into intervals,
and bill them.

:class:`MeteringService` is one object over its parts, each in its own module:
declaring (here), the intervals of a register (:mod:`.series`), what a period
bills (:mod:`.sections`), billing runs and their invoices (:mod:`.billing`), and
collecting and chasing what was billed (:mod:`.receivables`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from m2mhub.actions.webhook import WebhookService
from m2mhub.apps.metering.billing import BillingRuns
from m2mhub.apps.metering.models import (
    INTERVAL_MINUTES,
    Account,
    AccountLink,
    EditRecord,
    Meter,
    MeterKind,
    MeterLink,
    PaymentMethod,
    RegisterSpec,
    SupplyPoint,
    TariffAssignment,
    TariffRecord,
)
from m2mhub.apps.metering.payments import check_iban
from m2mhub.apps.metering.periods import Period, parse_period
from m2mhub.apps.metering.receivables import OVERDUE_INTERVAL_S, Receivables, StatusImport
from m2mhub.apps.metering.series import RegisterSeries
from m2mhub.apps.metering.storage import MeteringStorage
from m2mhub.apps.metering.tariffs import parse_tariff_yaml
from m2mhub.apps.metering.values import Edit
from m2mhub.audit import AuditLog
from m2mhub.core.errors import M2MHubError, PayloadError
from m2mhub.core.timeutil import format_ms, now_ms
from m2mhub.store.base import Store

__all__ = [
    "OVERDUE_INTERVAL_S",
    "MeteringService",
    "Period",
    "RegisterSeries",
    "StatusImport",
    "parse_period",
]


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


class MeteringService(BillingRuns, Receivables):
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
