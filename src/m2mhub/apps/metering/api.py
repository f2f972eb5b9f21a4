"""Metering REST API under ``/api/v1/metering``: meters, accounts, links, tariffs,
intervals and edits, billing runs, invoices (JSON, CSV, PDF), SEPA payments.

Viewers read, operators declare and edit, admins run billing, change the billing
settings and exchange payment files with the bank. See docs/metering.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from m2mhub.api.deps import Admin, Operator, PlatformDep, Viewer, read_body
from m2mhub.api.pagination import decode_cursor, encode_cursor
from m2mhub.apps.metering.invoice_export import parse_invoice_document, render_lines_csv
from m2mhub.apps.metering.invoice_pdf import render_invoice_pdf
from m2mhub.apps.metering.models import (
    BillingSettings,
    InvoiceKind,
    InvoiceRecord,
    InvoiceStatus,
    MeterKind,
    PaymentMethod,
    RegisterSpec,
)
from m2mhub.apps.metering.service import MeteringService
from m2mhub.apps.metering.usage import BATCH_MEDIA_TYPE
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms, parse_time
from m2mhub.platform import Platform

router = APIRouter(prefix="/api/v1/metering", tags=["metering"])

_T = TypeVar("_T")

#: Largest tariff YAML or bank status file accepted.
MAX_FILE_BYTES = 5_000_000


def service_of(platform: Platform) -> MeteringService:
    """The metering service over the platform's store, audit log and webhooks."""
    return MeteringService(
        platform.store,
        holder=platform.holder,
        audit=platform.audit,
        webhooks=platform.webhooks,
    )


def _out(value: Any) -> Any:
    return msgspec.to_builtins(value)


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


#: Items on a page of a list.
Limit = Annotated[int, Query(ge=1, le=1000)]


def _page(
    items: Sequence[_T], limit: int, key: Callable[[_T], Any], out: Callable[[_T], Any] = _out
) -> Page:
    """A full page of ``items`` points at the next one with the ``key`` of its last item."""
    next_cursor = encode_cursor(key(items[-1])) if len(items) == limit else None
    return Page(items=[out(item) for item in items], next_cursor=next_cursor)


def _attachment(content: str | bytes, media_type: str, filename: str, **headers: str) -> Response:
    """A download named ``filename``."""
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(content, media_type=media_type, headers={**disposition, **headers})


# -- meters, supply points, accounts, links -------------------------------------------------


class RegisterIn(BaseModel):
    key: str = Field(description="The telemetry key carrying the register.")
    direction: str = Field("import", description="import or export")
    unit: str = "kWh"
    digits: int | None = Field(None, description="Whole digits shown (for rollovers).")
    decimals: int = 3
    net: bool = Field(False, description="Runs backwards while exporting.")


class MeterIn(BaseModel):
    name: str
    device: str = Field(description="The device id that reports the registers.")
    kind: MeterKind = MeterKind.ELECTRICITY
    registers: list[RegisterIn] = Field(min_length=1)
    interval_minutes: int = 60


def _registers(items: list[RegisterIn]) -> list[RegisterSpec]:
    try:
        return [msgspec.convert(item.model_dump(), RegisterSpec) for item in items]
    except msgspec.ValidationError as exc:
        raise PayloadError(f"registers: {exc}", field="registers") from None


@router.post("/meters", status_code=201)
async def create_meter(body: MeterIn, who: Operator, platform: PlatformDep) -> Any:
    """Declare a device a meter: its kind, registers and billing interval."""
    meter = await service_of(platform).add_meter(
        who.tenant_id,
        name=body.name,
        device_id=body.device,
        kind=body.kind,
        registers=_registers(body.registers),
        interval_minutes=body.interval_minutes,
    )
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="metering.meter.create",
        target=f"meter:{meter.name}",
    )
    return _out(meter)


@router.get("/meters", response_model=Page)
async def list_meters(
    who: Viewer,
    platform: PlatformDep,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page:
    after = decode_cursor(cursor, str) if cursor else None
    meters = await service_of(platform).storage.list_meters(who.tenant_id, after=after, limit=limit)
    return _page(meters, limit, lambda m: m.name)


@router.get("/meters/{name}")
async def get_meter(name: str, who: Viewer, platform: PlatformDep) -> Any:
    service = service_of(platform)
    meter = await service.storage.meter(who.tenant_id, name)
    links = await service.storage.meter_links(who.tenant_id, meter_id=meter.id)
    return {**_out(meter), "links": _out(links)}


class SupplyPointIn(BaseModel):
    code: str = Field(description="EAN code, or any site or contract id.")
    address: list[str] = Field(min_length=1)


@router.post("/supply-points", status_code=201)
async def create_supply_point(body: SupplyPointIn, who: Operator, platform: PlatformDep) -> Any:
    point = await service_of(platform).add_supply_point(
        who.tenant_id, code=body.code, address=body.address
    )
    return _out(point)


@router.get("/supply-points", response_model=Page)
async def list_supply_points(
    who: Viewer,
    platform: PlatformDep,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page:
    after = decode_cursor(cursor, str) if cursor else None
    points = await service_of(platform).storage.list_supply_points(
        who.tenant_id, after=after, limit=limit
    )
    return _page(points, limit, lambda p: p.code)


@router.get("/supply-points/{code}")
async def get_supply_point(code: str, who: Viewer, platform: PlatformDep) -> Any:
    """A supply point with its meters and accounts over time."""
    storage = service_of(platform).storage
    point = await storage.supply_point(who.tenant_id, code)
    return {
        **_out(point),
        "meters": _out(await storage.meter_links(who.tenant_id, supply_point_id=point.id)),
        "accounts": _out(await storage.account_links(who.tenant_id, supply_point_id=point.id)),
    }


class AccountIn(BaseModel):
    number: str
    name: str
    address: list[str] = Field(min_length=1, description="Lines as printed.")
    email: str | None = None
    payment_method: PaymentMethod = PaymentMethod.TRANSFER
    iban: str | None = None
    bic: str | None = None
    mandate_id: str | None = None
    mandate_signed_on: date | None = None


@router.post("/accounts", status_code=201)
async def create_account(body: AccountIn, who: Operator, platform: PlatformDep) -> Any:
    account = await service_of(platform).add_account(who.tenant_id, **body.model_dump())
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="metering.account.create",
        target=f"account:{account.number}",
    )
    return _out(account)


@router.get("/accounts", response_model=Page)
async def list_accounts(
    who: Viewer,
    platform: PlatformDep,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page:
    after = decode_cursor(cursor, str) if cursor else None
    accounts = await service_of(platform).storage.list_accounts(
        who.tenant_id, after=after, limit=limit
    )
    return _page(accounts, limit, lambda a: a.number)


@router.get("/accounts/{number}")
async def get_account(number: str, who: Viewer, platform: PlatformDep) -> Any:
    """An account with its supply points and tariffs over time."""
    storage = service_of(platform).storage
    account = await storage.account(who.tenant_id, number)
    return {
        **_out(account),
        "supply_points": _out(await storage.account_links(who.tenant_id, account_id=account.id)),
        "tariffs": _out(await storage.assignments(who.tenant_id, account.id)),
    }


class MeterLinkIn(BaseModel):
    meter: str
    supply_point: str
    from_: str | int = Field(alias="from", description="Epoch ms or ISO 8601.")


class AccountLinkIn(BaseModel):
    supply_point: str
    account: str
    from_: str | int = Field(alias="from", description="Epoch ms or ISO 8601.")


@router.post("/links/meters", status_code=201)
async def link_meter(body: MeterLinkIn, who: Operator, platform: PlatformDep) -> Any:
    """Install a meter at a supply point from a time; a meter of the same kind there is
    swapped out at that time."""
    at = parse_time(str(body.from_), field="from")
    link = await service_of(platform).link_meter(
        who.tenant_id, meter=body.meter, supply_point=body.supply_point, at_ms=at
    )
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="metering.meter.link",
        target=f"meter:{body.meter}",
        details={"supply_point": body.supply_point, "from": at},
    )
    return _out(link)


@router.post("/links/accounts", status_code=201)
async def link_account(body: AccountLinkIn, who: Operator, platform: PlatformDep) -> Any:
    """Bill a supply point to an account from a time (a change of tenant)."""
    at = parse_time(str(body.from_), field="from")
    link = await service_of(platform).link_account(
        who.tenant_id, supply_point=body.supply_point, account=body.account, at_ms=at
    )
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="metering.account.link",
        target=f"supply_point:{body.supply_point}",
        details={"account": body.account, "from": at},
    )
    return _out(link)


# -- tariffs -----------------------------------------------------------------------------------


@router.put("/tariffs", openapi_extra={"requestBody": {"content": {"application/yaml": {}}}})
async def put_tariff(
    request: Request, who: Admin, platform: PlatformDep, kind: MeterKind = MeterKind.ELECTRICITY
) -> Any:
    """Create or replace a tariff (by the name in its YAML; see docs/metering.md)."""
    text = (await read_body(request, MAX_FILE_BYTES)).decode("utf-8", errors="replace")
    record, created = await service_of(platform).put_tariff(
        who.tenant_id, yaml_text=text, kind=kind
    )
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="metering.tariff.create" if created else "metering.tariff.replace",
        target=f"tariff:{record.name}",
    )
    return _out(record)


@router.get("/tariffs")
async def list_tariffs(who: Viewer, platform: PlatformDep) -> list[Any]:
    return [_out(t) for t in await service_of(platform).storage.list_tariffs(who.tenant_id)]


class AssignmentIn(BaseModel):
    tariff: str
    from_: date = Field(alias="from", description="First local date it applies.")


@router.post("/accounts/{number}/tariffs", status_code=201)
async def assign_tariff(
    number: str, body: AssignmentIn, who: Operator, platform: PlatformDep
) -> Any:
    assignment = await service_of(platform).assign_tariff(
        who.tenant_id, account=number, tariff=body.tariff, from_date=body.from_
    )
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="metering.tariff.assign",
        target=f"account:{number}",
        details={"tariff": body.tariff, "from": str(body.from_)},
    )
    return _out(assignment)


# -- intervals and edits --------------------------------------------------------------------


@router.get("/meters/{name}/intervals")
async def meter_intervals(
    name: str,
    who: Viewer,
    platform: PlatformDep,
    start: Annotated[str, Query(alias="from", description="Epoch ms, ISO 8601 or -7d.")] = "-7d",
    to: str = "now",
    tz: Annotated[str, Query(description="IANA time zone the intervals align to.")] = "UTC",
) -> Any:
    """Each register's intervals with their quality (actual, estimated, edited, missing),
    the edit behind an edited one, and the findings of validation."""
    now = now_ms()
    first = parse_time(start, field="from", now=now)
    last = parse_time(to, field="to", now=now + 1)
    if last <= first:
        raise PayloadError("to: must be after from", field="to")
    meter, series = await service_of(platform).meter_series(
        who.tenant_id, meter=name, start=first, end=last, tz=tz
    )
    return {
        "meter": meter.name,
        "registers": [
            {
                "key": s.register.key,
                "unit": s.register.unit,
                "intervals": _out(s.intervals),
                "flags": _out(s.flags),
            }
            for s in series
        ],
    }


class EditIn(BaseModel):
    register_key: str = Field(alias="register", description="The register's telemetry key.")
    start: str | int = Field(description="Start of the interval: epoch ms or ISO 8601.")
    quantity: Decimal
    reason: str = Field(min_length=1)


@router.post("/meters/{name}/edits", status_code=201)
async def add_edit(name: str, body: EditIn, who: Operator, platform: PlatformDep) -> Any:
    """Correct one interval; the raw reads stay as they are, the edit is kept and audited.
    The next billing run of the period picks it up (credit note and new invoice)."""
    start = parse_time(str(body.start), field="start")
    edit = await service_of(platform).add_edit(
        who.tenant_id,
        meter=name,
        register=body.register_key,
        start=start,
        quantity=body.quantity,
        author=who.subject,
        reason=body.reason,
    )
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="metering.interval.edit",
        target=f"meter:{name}",
        details={
            "register": body.register_key,
            "start": start,
            "quantity": str(body.quantity),
            "reason": body.reason,
        },
    )
    return _out(edit)


@router.get("/meters/{name}/edits")
async def list_edits(name: str, who: Viewer, platform: PlatformDep) -> list[Any]:
    storage = service_of(platform).storage
    meter = await storage.meter(who.tenant_id, name)
    return [_out(e) for e in await storage.edits(who.tenant_id, meter.id)]


# -- billing runs and invoices ----------------------------------------------------------------


class RunIn(BaseModel):
    period: str = Field(examples=["2026-10", "2026-10-01..2026-10-15"])
    account: str | None = Field(None, description="Only this account; all when left out.")


@router.post("/billing-runs", status_code=201)
async def run_billing(body: RunIn, who: Admin, platform: PlatformDep) -> Any:
    """Bill a period: new invoices, nothing for unchanged data, a credit note and a new
    invoice where the data changed. 409 while another run of the tenant is in progress."""
    run = await service_of(platform).run_billing(
        who.tenant_id, body.period, account=body.account, actor=who.subject
    )
    return _out(run)


@router.get("/billing-runs", response_model=Page)
async def list_runs(
    who: Viewer,
    platform: PlatformDep,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page:
    before = decode_cursor(cursor, int) if cursor else None
    runs = await service_of(platform).storage.list_runs(who.tenant_id, before=before, limit=limit)
    return _page(runs, limit, lambda r: r.id)


@router.get("/billing-runs/{run_id}")
async def get_run(run_id: int, who: Viewer, platform: PlatformDep) -> Any:
    return _out(await service_of(platform).storage.run(who.tenant_id, run_id))


@router.get(
    "/usage",
    response_class=Response,
    responses={200: {"content": {BATCH_MEDIA_TYPE: {}}}},
)
async def usage_events(
    who: Viewer,
    platform: PlatformDep,
    period: Annotated[str, Query(examples=["2026-10"])],
    account: str | None = None,
) -> Response:
    """The usage a billing run of ``period`` counts, per meter and register, as a JSON
    array of CloudEvents (OpenMeter-style; the same events the run sends to the
    settings' ``usage_webhook_url``)."""
    events = await service_of(platform).usage_events(who.tenant_id, period, account=account)
    return Response(msgspec.json.encode(events), media_type=BATCH_MEDIA_TYPE)


def invoice_out(invoice: InvoiceRecord) -> dict[str, Any]:
    """An invoice's record without its document (for lists)."""
    out: dict[str, Any] = _out(invoice)
    del out["document"]
    return out


@router.get("/invoices", response_model=Page)
async def list_invoices(
    who: Viewer,
    platform: PlatformDep,
    period: str | None = None,
    account: str | None = None,
    status: Annotated[
        str | None,
        Query(description="Comma-separated: held, open, paid, failed, overdue, credited."),
    ] = None,
    kind: InvoiceKind | None = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page:
    """Invoices and credit notes, newest first."""
    storage = service_of(platform).storage
    account_id = (await storage.account(who.tenant_id, account)).id if account else None
    try:
        statuses = [InvoiceStatus(s) for s in status.split(",") if s] if status else []
    except ValueError:
        raise PayloadError(
            f"status: {status!r}; use held, open, paid, failed, overdue or credited",
            field="status",
        ) from None
    before = decode_cursor(cursor, int) if cursor else None
    invoices = await storage.list_invoices(
        who.tenant_id,
        period=period,
        account_id=account_id,
        status=statuses,
        kind=kind,
        before=before,
        limit=limit,
    )
    return _page(invoices, limit, lambda i: i.id, invoice_out)


@router.get("/invoices/{number}.csv", response_class=Response)
async def invoice_csv(number: str, who: Viewer, platform: PlatformDep) -> Response:
    """The invoice's lines as CSV (RFC 4180)."""
    invoice = await service_of(platform).storage.invoice(who.tenant_id, number)
    text = render_lines_csv([parse_invoice_document(invoice.document)])
    return _attachment(text, "text/csv; charset=utf-8", f"{number}.csv")


@router.get("/invoices/{number}.pdf", response_class=Response)
async def invoice_pdf(number: str, who: Viewer, platform: PlatformDep) -> Response:
    """The invoice as a PDF, rendered from its archived document."""
    invoice = await service_of(platform).storage.invoice(who.tenant_id, number)
    pdf = render_invoice_pdf(parse_invoice_document(invoice.document))
    return _attachment(pdf, "application/pdf", f"{number}.pdf")


@router.get("/invoices/{number}")
async def get_invoice(number: str, who: Viewer, platform: PlatformDep) -> Any:
    """An invoice or credit note: its status and its document (schema m2mhub.invoice/1)."""
    return _out(await service_of(platform).storage.invoice(who.tenant_id, number))


@router.post("/invoices/{reference}/release")
async def release_invoice(reference: str, who: Admin, platform: PlatformDep) -> Any:
    """Issue a held invoice as it is (estimates included): it gets its invoice number,
    today's date and becomes open and collectable. 409 unless it is held."""
    released = await service_of(platform).release(who.tenant_id, reference, actor=who.subject)
    return _out(released)


class OverdueIn(BaseModel):
    today: date | None = Field(None, description="The day to judge on; today (UTC) if left out.")


@router.post("/invoices/mark-overdue")
async def mark_overdue(body: OverdueIn, who: Operator, platform: PlatformDep) -> Any:
    """Mark open and failed invoices past their due date (plus grace days) overdue."""
    marked = await service_of(platform).mark_overdue(
        who.tenant_id, actor=who.subject, today=body.today
    )
    return {"overdue": marked}


# -- payments and settings ------------------------------------------------------------------


@router.post("/payments/sepa-export", response_class=Response)
async def export_sepa(who: Admin, platform: PlatformDep) -> Response:
    """A pain.008 file collecting the open direct-debit invoices not yet collected."""
    file, numbers = await service_of(platform).export_sepa(who.tenant_id, actor=who.subject)
    return _attachment(
        file.xml,
        "application/xml",
        f"{file.message_id}.xml",
        **{"X-M2MHub-Invoices": ",".join(numbers)},
    )


@router.post(
    "/payments/status", openapi_extra={"requestBody": {"content": {"application/xml": {}}}}
)
async def import_status(request: Request, who: Admin, platform: PlatformDep) -> Any:
    """Upload a pain.002 status report or camt.054 notification: invoices become paid or
    failed, each change is audited and sent to the settings' webhook as a CloudEvent."""
    document = await read_body(request, MAX_FILE_BYTES)
    return _out(
        await service_of(platform).import_status(who.tenant_id, document, actor=who.subject)
    )


@router.get("/settings")
async def get_settings(who: Admin, platform: PlatformDep) -> Any:
    settings = await service_of(platform).storage.settings(who.tenant_id)
    out: dict[str, Any] = _out(settings)
    out["webhook_secret"] = "***" if settings.webhook_secret else None
    out["usage_webhook_token"] = "***" if settings.usage_webhook_token else None
    return out


@router.put("/settings")
async def put_settings(body: dict[str, Any], who: Admin, platform: PlatformDep) -> Any:
    """Replace the billing settings (seller, creditor id, terms, prefixes, webhook)."""
    try:
        settings = msgspec.convert(body, BillingSettings)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = message.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in message else None
        raise PayloadError(f"settings: {message}", field=path) from None
    await service_of(platform).storage.save_settings(who.tenant_id, settings)
    await platform.audit.record(
        tenant_id=who.tenant_id,
        actor=who.subject,
        action="metering.settings.update",
        target="metering:settings",
    )
    return await get_settings(who, platform)
