"""The metering tables (migration 10, and ``amount_due`` later), read and written
through the store.

The SQL is shared by SQLite and PostgreSQL, like the store's own. Amounts and
quantities are stored as decimal text, so nothing passes through a float; dates
as ISO text. Writes that must happen together (an invoice and its number) take
a :class:`~m2mhub.store.base.Tx` from the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec

from m2mhub.apps.metering.models import (
    Account,
    AccountLink,
    BillingRun,
    BillingSettings,
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
from m2mhub.core.errors import ConflictError, NotFoundError
from m2mhub.core.timeutil import format_ms, now_ms
from m2mhub.store.base import Row, Store, Tx

_T = TypeVar("_T", bound=msgspec.Struct)

#: Rows read at a time when a caller wants them all.
_PAGE: Final = 500
#: A time after every link's end, for "open" links in comparisons.
FOREVER: Final = 2**62

_ACCOUNT = (
    "SELECT id, number, name, address, email, payment_method, iban, bic, mandate_id, "
    "mandate_signed_on, created_ms FROM metering_accounts"
)
_METER = (
    "SELECT m.id, m.name, m.device_pk, d.id, m.kind, m.registers, m.interval_minutes, "
    "m.created_ms FROM metering_meters m JOIN devices d ON d.pk = m.device_pk"
)
_METER_LINK = (
    "SELECT l.id, l.meter_id, m.name, l.supply_point_id, p.code, l.from_ms, l.to_ms "
    "FROM metering_meter_links l JOIN metering_meters m ON m.id = l.meter_id "
    "JOIN metering_supply_points p ON p.id = l.supply_point_id"
)
_ACCOUNT_LINK = (
    "SELECT l.id, l.supply_point_id, p.code, l.account_id, a.number, l.from_ms, l.to_ms "
    "FROM metering_account_links l JOIN metering_supply_points p ON p.id = l.supply_point_id "
    "JOIN metering_accounts a ON a.id = l.account_id"
)
_SUPPLY_POINT = "SELECT id, code, address, created_ms FROM metering_supply_points"
_TARIFF = (
    "SELECT id, name, kind, yaml, currency, timezone, created_ms, updated_ms FROM metering_tariffs"
)
_ASSIGNMENT = (
    "SELECT s.id, s.account_id, s.tariff_id, t.name, s.kind, s.from_date, s.to_date "
    "FROM metering_tariff_assignments s JOIN metering_tariffs t ON t.id = s.tariff_id"
)
_INVOICE = (
    "SELECT i.id, i.number, i.kind, i.account_id, a.number, i.period, i.subject, i.start_date, "
    "i.end_date, c.number, i.document, i.details, i.currency, i.subtotal, i.tax, i.total, "
    "i.status, i.status_ms, i.status_reason, i.content_hash, i.issued_ms, i.due_date, i.run_id, "
    "i.sepa_message_id, COALESCE(i.amount_due, i.total) "
    "FROM metering_invoices i JOIN metering_accounts a ON a.id = i.account_id "
    "LEFT JOIN metering_invoices c ON c.id = i.corrects"
)
#: An invoice (``i``) that no credit note reverses.
_NOT_REVERSED: Final = (
    "NOT EXISTS (SELECT 1 FROM metering_invoices n WHERE n.corrects = i.id "
    "AND n.kind = 'credit_note')"
)
_EDIT = (
    "SELECT id, meter_id, register, interval_start, quantity, author, at_ms, reason "
    "FROM metering_edits"
)
_RUN = (
    "SELECT r.id, r.period, a.number, r.status, r.holder, r.actor, r.started_ms, r.finished_ms, "
    "r.summary FROM metering_runs r LEFT JOIN metering_accounts a ON a.id = r.account_id"
)


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.split("\n") if line)


#: The columns kept as text that a record's field reads otherwise (the rest msgspec
#: converts: ISO dates, decimal text and enum values).
_DECODE: Final[dict[type, dict[str, Callable[[Any], Any]]]] = {
    Account: {"address": _lines},
    SupplyPoint: {"address": _lines},
    Meter: {"registers": msgspec.json.decode},
    InvoiceRecord: {"document": msgspec.json.decode, "details": msgspec.json.decode},
    BillingRun: {"summary": msgspec.json.decode},
}


def _record(model: type[_T], row: Row) -> _T:
    """``row`` as a ``model``: the SELECT lists the record's fields in their order."""
    values = dict(zip(model.__struct_fields__, row, strict=True))
    for name, decode in _DECODE.get(model, {}).items():
        values[name] = decode(values[name])
    return msgspec.convert(values, model)


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """``column = ?`` for each (column, value) whose value is not None, joined by AND."""
    used = [(column, value) for column, value in conditions if value is not None]
    return " AND ".join(f"{column} = ?" for column, _ in used), [value for _, value in used]


class NewInvoice(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`MeteringStorage.insert_invoice` writes (the number is drawn there)."""

    kind: InvoiceKind
    number: str
    account_id: int
    period: str
    subject: str
    start_date: date
    end_date: date
    corrects: int | None
    document: bytes
    details: dict[str, Any]
    currency: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    status: InvoiceStatus
    content_hash: str
    issued_ms: int
    due_date: date
    run_id: int | None
    amount_due: Decimal | None = None
    """None: the total."""


class MeteringStorage:
    """The metering tables of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _one(
        self, model: type[_T], sql: str, params: Sequence[Any], *, missing: str, field: str
    ) -> _T:
        """The record of the one row ``sql`` finds; :class:`NotFoundError` naming
        ``missing`` (what was asked for) when there is none."""
        rows = await self.store.query(sql, params)
        if not rows:
            raise NotFoundError(f"{missing} not found", field=field)
        return _record(model, rows[0])

    # -- accounts, supply points, meters -----------------------------------------------

    async def create_account(
        self,
        tenant_id: int,
        *,
        number: str,
        name: str,
        address: Sequence[str],
        email: str | None,
        payment_method: PaymentMethod,
        iban: str | None,
        bic: str | None,
        mandate_id: str | None,
        mandate_signed_on: date | None,
    ) -> Account:
        async with self.store.transaction() as tx:
            await _refuse_taken(tx, "metering_accounts", tenant_id, number=number, what="account")
            await tx.execute(
                "INSERT INTO metering_accounts (tenant_id, number, name, address, email, "
                "payment_method, iban, bic, mandate_id, mandate_signed_on, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant_id,
                    number,
                    name,
                    "\n".join(address),
                    email,
                    payment_method.value,
                    iban,
                    bic,
                    mandate_id,
                    None if mandate_signed_on is None else mandate_signed_on.isoformat(),
                    now_ms(),
                ),
            )
        return await self.account(tenant_id, number)

    async def account(self, tenant_id: int, number: str) -> Account:
        return await self._one(
            Account,
            f"{_ACCOUNT} WHERE tenant_id = ? AND number = ?",
            (tenant_id, number),
            missing=f"account {number!r}",
            field="account",
        )

    async def account_by_id(self, account_id: int) -> Account:
        return await self._one(
            Account,
            f"{_ACCOUNT} WHERE id = ?",
            (account_id,),
            missing=f"account {account_id}",
            field="account",
        )

    async def list_accounts(
        self, tenant_id: int, *, after: str | None = None, limit: int = 100
    ) -> list[Account]:
        rows = await self.store.query(
            f"{_ACCOUNT} WHERE tenant_id = ? AND number > ? ORDER BY number LIMIT {int(limit)}",
            (tenant_id, after or ""),
        )
        return [_record(Account, r) for r in rows]

    async def all_accounts(self, tenant_id: int) -> list[Account]:
        """Every account of the tenant, by number."""
        return await _every(
            lambda after: self.list_accounts(tenant_id, after=after, limit=_PAGE),
            lambda account: account.number,
        )

    async def create_supply_point(
        self, tenant_id: int, code: str, address: Sequence[str]
    ) -> SupplyPoint:
        async with self.store.transaction() as tx:
            await _refuse_taken(
                tx, "metering_supply_points", tenant_id, code=code, what="supply point"
            )
            await tx.execute(
                "INSERT INTO metering_supply_points (tenant_id, code, address, created_ms) "
                "VALUES (?, ?, ?, ?)",
                (tenant_id, code, "\n".join(address), now_ms()),
            )
        return await self.supply_point(tenant_id, code)

    async def supply_point(self, tenant_id: int, code: str) -> SupplyPoint:
        return await self._one(
            SupplyPoint,
            f"{_SUPPLY_POINT} WHERE tenant_id = ? AND code = ?",
            (tenant_id, code),
            missing=f"supply point {code!r}",
            field="supply_point",
        )

    async def list_supply_points(
        self, tenant_id: int, *, after: str | None = None, limit: int = 100
    ) -> list[SupplyPoint]:
        rows = await self.store.query(
            f"{_SUPPLY_POINT} WHERE tenant_id = ? AND code > ? ORDER BY code LIMIT {int(limit)}",
            (tenant_id, after or ""),
        )
        return [_record(SupplyPoint, r) for r in rows]

    async def create_meter(
        self,
        tenant_id: int,
        *,
        name: str,
        device_pk: int,
        kind: MeterKind,
        registers: Sequence[RegisterSpec],
        interval_minutes: int,
    ) -> Meter:
        async with self.store.transaction() as tx:
            await _refuse_taken(tx, "metering_meters", tenant_id, name=name, what="meter")
            await tx.execute(
                "INSERT INTO metering_meters (tenant_id, name, device_pk, kind, registers, "
                "interval_minutes, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant_id,
                    name,
                    device_pk,
                    kind.value,
                    msgspec.json.encode(list(registers)).decode(),
                    interval_minutes,
                    now_ms(),
                ),
            )
        return await self.meter(tenant_id, name)

    async def meter(self, tenant_id: int, name: str) -> Meter:
        return await self._one(
            Meter,
            f"{_METER} WHERE m.tenant_id = ? AND m.name = ?",
            (tenant_id, name),
            missing=f"meter {name!r}",
            field="meter",
        )

    async def meters_by_id(self, ids: Sequence[int]) -> dict[int, Meter]:
        found: dict[int, Meter] = {}
        for meter_id in set(ids):
            rows = await self.store.query(f"{_METER} WHERE m.id = ?", (meter_id,))
            if rows:
                found[meter_id] = _record(Meter, rows[0])
        return found

    async def list_meters(
        self, tenant_id: int, *, after: str | None = None, limit: int = 100
    ) -> list[Meter]:
        rows = await self.store.query(
            f"{_METER} WHERE m.tenant_id = ? AND m.name > ? ORDER BY m.name LIMIT {int(limit)}",
            (tenant_id, after or ""),
        )
        return [_record(Meter, r) for r in rows]

    async def all_meters(self, tenant_id: int) -> list[Meter]:
        """Every meter of the tenant, by name."""
        return await _every(
            lambda after: self.list_meters(tenant_id, after=after, limit=_PAGE),
            lambda meter: meter.name,
        )

    # -- links over time -------------------------------------------------------------

    async def link_meter(
        self, tenant_id: int, meter: Meter, point: SupplyPoint, at_ms: int
    ) -> MeterLink:
        """Install ``meter`` at ``point`` from ``at_ms``: its link elsewhere, and the link of
        the meter of the same kind it replaces there (a swap), end at ``at_ms``."""
        async with self.store.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT l.id, l.meter_id, l.supply_point_id, l.from_ms, l.to_ms "
                "FROM metering_meter_links l JOIN metering_meters m ON m.id = l.meter_id "
                "WHERE l.tenant_id = ? AND (l.meter_id = ? OR (l.supply_point_id = ? "
                "AND m.kind = ?))",
                (tenant_id, meter.id, point.id, meter.kind.value),
            )
            await _close_before(tx, "metering_meter_links", rows, at_ms, what="meter link")
            await tx.execute(
                "INSERT INTO metering_meter_links (tenant_id, meter_id, supply_point_id, "
                "from_ms) VALUES (?, ?, ?, ?)",
                (tenant_id, meter.id, point.id, at_ms),
            )
        links = await self.meter_links(tenant_id, meter_id=meter.id)
        return links[-1]

    async def link_account(
        self, tenant_id: int, point: SupplyPoint, account: Account, at_ms: int
    ) -> AccountLink:
        """Bill ``point`` to ``account`` from ``at_ms``; its previous account's link ends there."""
        async with self.store.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT id, account_id, supply_point_id, from_ms, to_ms "
                "FROM metering_account_links WHERE tenant_id = ? AND supply_point_id = ?",
                (tenant_id, point.id),
            )
            await _close_before(tx, "metering_account_links", rows, at_ms, what="account link")
            await tx.execute(
                "INSERT INTO metering_account_links (tenant_id, supply_point_id, account_id, "
                "from_ms) VALUES (?, ?, ?, ?)",
                (tenant_id, point.id, account.id, at_ms),
            )
        links = await self.account_links(tenant_id, supply_point_id=point.id)
        return links[-1]

    async def end_meter_link(self, tenant_id: int, meter: Meter, at_ms: int) -> None:
        """The meter is removed at ``at_ms`` (without a replacement yet)."""
        async with self.store.transaction() as tx:
            changed = await tx.execute(
                "UPDATE metering_meter_links SET to_ms = ? WHERE tenant_id = ? AND meter_id = ? "
                "AND to_ms IS NULL AND from_ms < ?",
                (at_ms, tenant_id, meter.id, at_ms),
            )
        if not changed:
            raise NotFoundError(
                f"meter {meter.name!r} is not installed before that time", field="at"
            )

    async def meter_links(
        self,
        tenant_id: int,
        *,
        meter_id: int | None = None,
        supply_point_id: int | None = None,
    ) -> list[MeterLink]:
        where, params = _where(
            ("l.tenant_id", tenant_id),
            ("l.meter_id", meter_id),
            ("l.supply_point_id", supply_point_id),
        )
        rows = await self.store.query(
            f"{_METER_LINK} WHERE {where} ORDER BY l.from_ms, l.id", params
        )
        return [_record(MeterLink, r) for r in rows]

    async def account_links(
        self,
        tenant_id: int,
        *,
        account_id: int | None = None,
        supply_point_id: int | None = None,
    ) -> list[AccountLink]:
        where, params = _where(
            ("l.tenant_id", tenant_id),
            ("l.account_id", account_id),
            ("l.supply_point_id", supply_point_id),
        )
        rows = await self.store.query(
            f"{_ACCOUNT_LINK} WHERE {where} ORDER BY l.from_ms, l.id", params
        )
        return [_record(AccountLink, r) for r in rows]

    # -- tariffs -------------------------------------------------------------------------

    async def put_tariff(
        self, tenant_id: int, *, name: str, kind: MeterKind, yaml: str, currency: str, tz: str
    ) -> tuple[TariffRecord, bool]:
        """Create or replace a tariff by name; True when it was created."""
        now = now_ms()
        async with self.store.transaction() as tx:
            found = await tx.fetchone(
                "SELECT id FROM metering_tariffs WHERE tenant_id = ? AND name = ?",
                (tenant_id, name),
            )
            if found:
                await tx.execute(
                    "UPDATE metering_tariffs SET kind = ?, yaml = ?, currency = ?, timezone = ?, "
                    "updated_ms = ? WHERE id = ?",
                    (kind.value, yaml, currency, tz, now, found[0]),
                )
            else:
                await tx.execute(
                    "INSERT INTO metering_tariffs (tenant_id, name, kind, yaml, currency, "
                    "timezone, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (tenant_id, name, kind.value, yaml, currency, tz, now, now),
                )
        return await self.tariff(tenant_id, name), found is None

    async def tariff(self, tenant_id: int, name: str) -> TariffRecord:
        return await self._one(
            TariffRecord,
            f"{_TARIFF} WHERE tenant_id = ? AND name = ?",
            (tenant_id, name),
            missing=f"tariff {name!r}",
            field="tariff",
        )

    async def tariff_by_id(self, tariff_id: int) -> TariffRecord:
        return await self._one(
            TariffRecord,
            f"{_TARIFF} WHERE id = ?",
            (tariff_id,),
            missing=f"tariff {tariff_id}",
            field="tariff",
        )

    async def list_tariffs(self, tenant_id: int) -> list[TariffRecord]:
        rows = await self.store.query(f"{_TARIFF} WHERE tenant_id = ? ORDER BY name", (tenant_id,))
        return [_record(TariffRecord, r) for r in rows]

    async def assign_tariff(
        self, tenant_id: int, account: Account, tariff: TariffRecord, from_date: date
    ) -> TariffAssignment:
        """Put ``tariff`` in force for the account's meters of its kind from ``from_date``;
        the assignment it replaces ends there."""
        async with self.store.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT id, from_date, to_date FROM metering_tariff_assignments "
                "WHERE tenant_id = ? AND account_id = ? AND kind = ?",
                (tenant_id, account.id, tariff.kind.value),
            )
            day = from_date.isoformat()
            for row_id, start, end in rows:
                if start >= day or (end is not None and end > day):
                    raise ConflictError(
                        f"account {account.number!r} has a {tariff.kind} tariff from {start}; "
                        "assign the new one from a later date",
                        field="from",
                    )
                if end is None:
                    await tx.execute(
                        "UPDATE metering_tariff_assignments SET to_date = ? WHERE id = ?",
                        (day, row_id),
                    )
            await tx.execute(
                "INSERT INTO metering_tariff_assignments (tenant_id, account_id, tariff_id, "
                "kind, from_date) VALUES (?, ?, ?, ?, ?)",
                (tenant_id, account.id, tariff.id, tariff.kind.value, day),
            )
        return (await self.assignments(tenant_id, account.id))[-1]

    async def assignments(self, tenant_id: int, account_id: int) -> list[TariffAssignment]:
        rows = await self.store.query(
            f"{_ASSIGNMENT} WHERE s.tenant_id = ? AND s.account_id = ? ORDER BY s.from_date, s.id",
            (tenant_id, account_id),
        )
        return [_record(TariffAssignment, r) for r in rows]

    # -- edits ---------------------------------------------------------------------------

    async def add_edit(
        self,
        tenant_id: int,
        *,
        meter_id: int,
        register: str,
        interval_start: int,
        quantity: Decimal,
        author: str,
        reason: str,
    ) -> EditRecord:
        async with self.store.transaction() as tx:
            row = await tx.fetchone(
                "INSERT INTO metering_edits (tenant_id, meter_id, register, interval_start, "
                "quantity, author, at_ms, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    tenant_id,
                    meter_id,
                    register,
                    interval_start,
                    str(quantity),
                    author,
                    now_ms(),
                    reason,
                ),
            )
        assert row is not None
        edits = await self.edits(tenant_id, meter_id)
        return next(e for e in edits if e.id == row[0])

    async def edits(
        self, tenant_id: int, meter_id: int, *, register: str | None = None
    ) -> list[EditRecord]:
        where, params = _where(
            ("tenant_id", tenant_id), ("meter_id", meter_id), ("register", register)
        )
        rows = await self.store.query(f"{_EDIT} WHERE {where} ORDER BY interval_start, id", params)
        return [_record(EditRecord, r) for r in rows]

    # -- billing runs and invoices ------------------------------------------------------

    async def start_run(
        self, tenant_id: int, *, period: str, account_id: int | None, holder: str, actor: str
    ) -> int:
        async with self.store.transaction() as tx:
            row = await tx.fetchone(
                "INSERT INTO metering_runs (tenant_id, period, account_id, status, holder, "
                "actor, started_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (tenant_id, period, account_id, RunStatus.RUNNING.value, holder, actor, now_ms()),
            )
        assert row is not None
        return int(row[0])

    async def finish_run(
        self, run_id: int, status: RunStatus, summary: list[dict[str, Any]]
    ) -> None:
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE metering_runs SET status = ?, finished_ms = ?, summary = ? WHERE id = ?",
                (status.value, now_ms(), msgspec.json.encode(summary).decode(), run_id),
            )

    async def run(self, tenant_id: int, run_id: int) -> BillingRun:
        return await self._one(
            BillingRun,
            f"{_RUN} WHERE r.tenant_id = ? AND r.id = ?",
            (tenant_id, run_id),
            missing=f"billing run {run_id}",
            field="run",
        )

    async def list_runs(
        self, tenant_id: int, *, before: int | None = None, limit: int = 100
    ) -> list[BillingRun]:
        rows = await self.store.query(
            f"{_RUN} WHERE r.tenant_id = ? AND r.id < ? ORDER BY r.id DESC LIMIT {int(limit)}",
            (tenant_id, before if before is not None else FOREVER),
        )
        return [_record(BillingRun, r) for r in rows]

    async def release_lease(self, name: str, holder: str) -> None:
        """Give a lease up at once, so the next run need not wait for it to expire."""
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE leases SET expires_ms = 0 WHERE name = ? AND holder = ?", (name, holder)
            )

    async def forget_leases(self, prefix: str) -> None:
        """Remove every lease whose name starts with ``prefix`` (a shared run's chunks)."""
        async with self.store.transaction() as tx:
            await tx.execute(
                "DELETE FROM leases WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
            )

    async def current_invoices(
        self, tx: Tx, tenant_id: int, account_id: int, period: str
    ) -> dict[str, InvoiceRecord]:
        """The account's issued invoices for ``period`` that no credit note reverses, by
        subject (held invoices are in :meth:`held_invoices`)."""
        rows = await tx.fetchall(
            f"{_INVOICE} WHERE i.tenant_id = ? AND i.account_id = ? AND i.period = ? "
            f"AND i.kind = 'invoice' AND i.status <> 'held' AND {_NOT_REVERSED} ORDER BY i.id",
            (tenant_id, account_id, period),
        )
        return {invoice.subject: invoice for invoice in (_record(InvoiceRecord, r) for r in rows)}

    async def held_invoices(
        self, tx: Tx, tenant_id: int, account_id: int, period: str
    ) -> dict[str, InvoiceRecord]:
        """The account's held invoices for ``period``, by subject."""
        rows = await tx.fetchall(
            f"{_INVOICE} WHERE i.tenant_id = ? AND i.account_id = ? AND i.period = ? "
            "AND i.status = 'held' ORDER BY i.id",
            (tenant_id, account_id, period),
        )
        return {invoice.subject: invoice for invoice in (_record(InvoiceRecord, r) for r in rows)}

    async def overlapping_invoices(
        self, tenant_id: int, account_id: int, *, period: str, start: date, end: date
    ) -> list[InvoiceRecord]:
        """The account's invoices (issued or held) of another period label whose local
        dates meet ``[start, end)`` and that no credit note reverses."""
        rows = await self.store.query(
            f"{_INVOICE} WHERE i.tenant_id = ? AND i.account_id = ? AND i.period <> ? "
            f"AND i.kind = 'invoice' AND i.start_date < ? AND i.end_date > ? "
            f"AND {_NOT_REVERSED} ORDER BY i.id",
            (tenant_id, account_id, period, end.isoformat(), start.isoformat()),
        )
        return [_record(InvoiceRecord, r) for r in rows]

    async def delete_held(self, tx: Tx, invoice_id: int) -> None:
        """Drop a held invoice the next run replaces: it was never issued nor numbered."""
        await tx.execute(
            "DELETE FROM metering_invoices WHERE id = ? AND status = 'held'", (invoice_id,)
        )

    async def set_amount_due(
        self,
        tx: Tx,
        invoice_id: int,
        amount_due: Decimal,
        *,
        status: InvoiceStatus | None = None,
        reason: str | None = None,
    ) -> None:
        """Record what is left to pay (and, when settled, the status and why)."""
        await tx.execute(
            "UPDATE metering_invoices SET amount_due = ? WHERE id = ?",
            (str(amount_due), invoice_id),
        )
        if status is not None:
            await self.set_status(invoice_id, status, reason=reason, tx=tx)

    async def tenants_with_unpaid(self) -> list[int]:
        """Tenants with open or failed invoices (for the scheduled overdue job)."""
        rows = await self.store.query(
            "SELECT DISTINCT tenant_id FROM metering_invoices WHERE status IN ('open', 'failed') "
            "AND kind = 'invoice' ORDER BY tenant_id"
        )
        return [int(r[0]) for r in rows]

    async def insert_invoice(self, tx: Tx, tenant_id: int, invoice: NewInvoice) -> InvoiceRecord:
        """Write ``invoice``, numbered by :func:`next_number` in the same transaction."""
        row = await tx.fetchone(
            "INSERT INTO metering_invoices (tenant_id, number, kind, account_id, period, "
            "subject, start_date, end_date, corrects, document, details, currency, subtotal, "
            "tax, total, status, status_ms, content_hash, issued_ms, due_date, run_id, "
            "amount_due) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (
                tenant_id,
                invoice.number,
                invoice.kind.value,
                invoice.account_id,
                invoice.period,
                invoice.subject,
                invoice.start_date.isoformat(),
                invoice.end_date.isoformat(),
                invoice.corrects,
                invoice.document.decode(),
                msgspec.json.encode(invoice.details).decode(),
                invoice.currency,
                str(invoice.subtotal),
                str(invoice.tax),
                str(invoice.total),
                invoice.status.value,
                invoice.issued_ms,
                invoice.content_hash,
                invoice.issued_ms,
                invoice.due_date.isoformat(),
                invoice.run_id,
                None if invoice.amount_due is None else str(invoice.amount_due),
            ),
        )
        assert row is not None
        found = await tx.fetchone(f"{_INVOICE} WHERE i.id = ?", (row[0],))
        assert found is not None
        return _record(InvoiceRecord, found)

    async def invoice(self, tenant_id: int, number: str) -> InvoiceRecord:
        return await self._one(
            InvoiceRecord,
            f"{_INVOICE} WHERE i.tenant_id = ? AND i.number = ?",
            (tenant_id, number),
            missing=f"invoice {number!r}",
            field="invoice",
        )

    async def list_invoices(
        self,
        tenant_id: int,
        *,
        period: str | None = None,
        account_id: int | None = None,
        status: Sequence[InvoiceStatus] = (),
        kind: InvoiceKind | None = None,
        sepa_message_id: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[InvoiceRecord]:
        """Invoices newest first; ``before`` is the id of the last one of the previous page."""
        where, params = _where(
            ("i.tenant_id", tenant_id),
            ("i.period", period),
            ("i.account_id", account_id),
            ("i.kind", None if kind is None else kind.value),
            ("i.sepa_message_id", sepa_message_id),
        )
        where += " AND i.id < ?"
        params.append(before or FOREVER)
        if status:
            where += f" AND i.status IN ({','.join('?' * len(status))})"
            params += [s.value for s in status]
        rows = await self.store.query(
            f"{_INVOICE} WHERE {where} ORDER BY i.id DESC LIMIT {int(limit)}", params
        )
        return [_record(InvoiceRecord, r) for r in rows]

    async def all_invoices(
        self,
        tenant_id: int,
        *,
        period: str | None = None,
        account_id: int | None = None,
        status: Sequence[InvoiceStatus] = (),
        kind: InvoiceKind | None = None,
    ) -> list[InvoiceRecord]:
        """Every invoice :meth:`list_invoices` finds, newest first."""
        return await _every(
            lambda before: self.list_invoices(
                tenant_id,
                period=period,
                account_id=account_id,
                status=status,
                kind=kind,
                before=before,
                limit=_PAGE,
            ),
            lambda invoice: invoice.id,
        )

    async def set_status(
        self,
        invoice_id: int,
        status: InvoiceStatus,
        *,
        reason: str | None = None,
        tx: Tx | None = None,
    ) -> None:
        sql = (
            "UPDATE metering_invoices SET status = ?, status_ms = ?, status_reason = ? WHERE id = ?"
        )
        params = (status.value, now_ms(), reason, invoice_id)
        if tx is not None:
            await tx.execute(sql, params)
            return
        async with self.store.transaction() as own:
            await own.execute(sql, params)

    # -- SEPA exports and settings ---------------------------------------------------------

    async def has_collected(self, tenant_id: int, account_id: int) -> bool:
        """Whether a collection was already sent under the account's mandate."""
        rows = await self.store.query(
            "SELECT 1 FROM metering_invoices WHERE tenant_id = ? AND account_id = ? "
            "AND sepa_message_id IS NOT NULL LIMIT 1",
            (tenant_id, account_id),
        )
        return bool(rows)

    async def save_export(
        self,
        tx: Tx,
        tenant_id: int,
        *,
        message_id: str,
        xml: bytes,
        batches: list[dict[str, Any]],
        invoice_ids: Sequence[int],
    ) -> None:
        await tx.execute(
            "INSERT INTO metering_sepa_exports (tenant_id, message_id, created_ms, xml, batches) "
            "VALUES (?, ?, ?, ?, ?)",
            (tenant_id, message_id, now_ms(), xml.decode(), msgspec.json.encode(batches).decode()),
        )
        await tx.executemany(
            "UPDATE metering_invoices SET sepa_message_id = ? WHERE id = ?",
            [(message_id, invoice_id) for invoice_id in invoice_ids],
        )

    async def export_batches(self, tenant_id: int, message_id: str) -> list[dict[str, Any]]:
        rows = await self.store.query(
            "SELECT batches FROM metering_sepa_exports WHERE tenant_id = ? AND message_id = ?",
            (tenant_id, message_id),
        )
        return [] if not rows else list(msgspec.json.decode(rows[0][0]))

    async def settings(self, tenant_id: int) -> BillingSettings:
        rows = await self.store.query(
            "SELECT document FROM metering_settings WHERE tenant_id = ?", (tenant_id,)
        )
        if not rows:
            return BillingSettings()
        return msgspec.json.decode(rows[0][0], type=BillingSettings)

    async def save_settings(self, tenant_id: int, settings: BillingSettings) -> None:
        async with self.store.transaction() as tx:
            await tx.execute(
                "INSERT INTO metering_settings (tenant_id, document) VALUES (?, ?) "
                "ON CONFLICT (tenant_id) DO UPDATE SET document = excluded.document",
                (tenant_id, msgspec.json.encode(settings).decode()),
            )


async def next_number(tx: Tx, tenant_id: int, name: str) -> int:
    """The next number of the tenant's gapless sequence ``name``, inside ``tx``."""
    await tx.execute(
        "INSERT INTO metering_sequences (tenant_id, name, last_number) VALUES (?, ?, 0) "
        "ON CONFLICT (tenant_id, name) DO NOTHING",
        (tenant_id, name),
    )
    row = await tx.fetchone(
        "UPDATE metering_sequences SET last_number = last_number + 1 "
        "WHERE tenant_id = ? AND name = ? RETURNING last_number",
        (tenant_id, name),
    )
    assert row is not None
    return int(row[0])


async def _every(
    fetch: Callable[[Any], Awaitable[list[_T]]], cursor: Callable[[_T], Any]
) -> list[_T]:
    """Every row a paged list gives: ``fetch(None)``, then ``fetch`` of the ``cursor`` of
    each full page's last item."""
    found: list[_T] = []
    while True:
        page = await fetch(cursor(found[-1]) if found else None)
        found += page
        if len(page) < _PAGE:
            return found


async def _refuse_taken(tx: Tx, table: str, tenant_id: int, *, what: str, **key: str) -> None:
    """Refuse a second row of the tenant with the same ``key`` (one column and its value)."""
    ((column, value),) = key.items()
    if await tx.fetchone(
        f"SELECT 1 FROM {table} WHERE tenant_id = ? AND {column} = ?", (tenant_id, value)
    ):
        raise ConflictError(f"{what} {value!r} already exists", field=column)


async def _close_before(tx: Tx, table: str, rows: Sequence[Row], at_ms: int, *, what: str) -> None:
    """End the open links among ``rows`` (id, _, _, from, to) at ``at_ms``; refuse a time
    inside or before a link that has already ended or starts later."""
    for link_id, _, _, from_ms, to_ms in rows:
        if from_ms >= at_ms or (to_ms is not None and to_ms > at_ms):
            raise ConflictError(
                f"a {what} runs from {format_ms(from_ms)} to "
                f"{'now' if to_ms is None else format_ms(to_ms)}; link from a later time",
                field="from",
            )
        if to_ms is None:
            await tx.execute(f"UPDATE {table} SET to_ms = ? WHERE id = ?", (at_ms, link_id))
