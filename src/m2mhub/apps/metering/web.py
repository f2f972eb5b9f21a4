"""The metering console pages: accounts, meters with their interval chart, invoices.

Pages read through the metering service and its storage, as the REST API does. Every
change is a form that calls the REST API (an interval edit: operators; a billing run:
admins), so a page shows such a form only to a role that may use it, and the API
refuses anybody else anyway.

The meter page carries its intervals as JSON for ``metering.js`` to draw with uPlot
(scripts come from this server only); the intervals that need a look (estimated, edited,
missing, flagged) and the findings are plain HTML beside it, so they read without
scripts too.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from m2mhub.api.deps import PlatformDep, Viewer
from m2mhub.apps.metering.api import service_of
from m2mhub.apps.metering.models import (
    AccountLink,
    EditRecord,
    InvoiceKind,
    InvoiceRecord,
    InvoiceStatus,
    Meter,
    MeterLink,
    RegisterSpec,
)
from m2mhub.apps.metering.storage import FOREVER, MeteringStorage
from m2mhub.apps.metering.values import FlagCode, Interval, Quality
from m2mhub.core.errors import NotFoundError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.web.days import FirstDay, LastDay, parse_day
from m2mhub.web.routing import PREFIX, console_router
from m2mhub.web.templating import render

router = console_router()

BASE: Final = f"{PREFIX}/metering"
API: Final = "/api/v1/metering"
PAGE_SIZE: Final = 50
#: Rows read from storage per query when a page needs all of them (search, totals).
_BATCH: Final = 500
#: Days shown on the meter page when no range is asked for.
DEFAULT_DAYS: Final = 7
#: The longest range the service derives at once (MeteringService.meter_series).
MAX_DAYS: Final = 93
#: Intervals listed for review under the chart; the chart shows them all.
REVIEW_ROWS: Final = 500
#: Unpaid invoice statuses: what the account still owes.
UNPAID: Final = (InvoiceStatus.OPEN, InvoiceStatus.FAILED, InvoiceStatus.OVERDUE)

#: What each finding means, in a sentence (validation.py and consumption.py raise them).
FLAG_MEANINGS: Final = {
    FlagCode.ROLLOVER: "The register passed its maximum and started again from zero; the "
    "step across the wrap is counted.",
    FlagCode.RESET: "The register dropped without wrapping (a replaced or reset meter); that "
    "step is not counted.",
    FlagCode.CONFLICT: "Two different values were reported for one instant; neither is used.",
    FlagCode.NO_PROFILE: "A long gap without four weeks of history to shape it: spread evenly.",
    FlagCode.HIGH: "A quantity above the high limit.",
    FlagCode.LOW: "A quantity below the low limit.",
    FlagCode.SPIKE: "A quantity many times the median interval of the range.",
    FlagCode.FROZEN: "The register stood still for many intervals while it usually moves.",
    FlagCode.NEGATIVE: "An import register went backwards, or an interval came out negative.",
    FlagCode.GAP: "No reads for longer than an hour: the intervals are estimated or missing.",
    FlagCode.FUTURE: "A read time-stamped in the future: the meter's clock runs ahead.",
    FlagCode.OUT_OF_RANGE: "A read below zero or above what the register can show.",
}

Text = Annotated[str, Query(max_length=200)]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]


# -- reading everything a page needs ---------------------------------------------------------


def _is_current(from_ms: int, to_ms: int | None, now: int) -> bool:
    return from_ms <= now < (to_ms or FOREVER)


# -- values the templates show ---------------------------------------------------------------


@dataclass
class Paged:
    """One page of a list filtered on the server, and how to reach the others."""

    rows: list[Any]
    total: int
    page: int
    pages: int
    path: str
    query: dict[str, str]

    def url(self, page: int) -> str:
        kept = {k: v for k, v in {**self.query, "page": str(page)}.items() if v and v != "1"}
        return self.path + (f"?{urlencode(kept)}" if kept else "")


def _paged(rows: list[Any], page: int, path: str, query: dict[str, str]) -> Paged:
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return Paged(shown, len(rows), page, pages, path, {**query, "page": str(page)})


@dataclass
class Totals:
    """Invoices added up in one currency."""

    currency: str
    count: int = 0
    subtotal: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    total: Decimal = Decimal(0)


def _totals(invoices: Sequence[InvoiceRecord]) -> list[Totals]:
    by_currency: dict[str, Totals] = {}
    for invoice in invoices:
        totals = by_currency.setdefault(invoice.currency, Totals(invoice.currency))
        totals.count += 1
        totals.subtotal += invoice.subtotal
        totals.tax += invoice.tax
        totals.total += invoice.total
    return [by_currency[c] for c in sorted(by_currency)]


@dataclass
class Balance:
    """Where an account stands in one currency: what it owes, and what it is owed."""

    currency: str
    unpaid: Decimal = Decimal(0)
    overdue: Decimal = Decimal(0)
    failed: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    """Credit notes reversing paid invoices: to refund or to offset."""


def _balances(invoices: Sequence[InvoiceRecord]) -> list[Balance]:
    by_number = {i.number: i for i in invoices}
    by_currency: dict[str, Balance] = {}
    for invoice in invoices:
        balance = by_currency.setdefault(invoice.currency, Balance(invoice.currency))
        if invoice.kind is InvoiceKind.INVOICE and invoice.status in UNPAID:
            balance.unpaid += invoice.total
            if invoice.status is InvoiceStatus.OVERDUE:
                balance.overdue += invoice.total
            if invoice.status is InvoiceStatus.FAILED:
                balance.failed += invoice.total
        elif invoice.kind is InvoiceKind.CREDIT_NOTE and invoice.corrects:
            # A credit note of an unpaid invoice only cancels it (that one is `credited`);
            # of a paid one, the money is the customer's.
            reversed_ = by_number.get(invoice.corrects)
            if reversed_ is not None and reversed_.status is InvoiceStatus.PAID:
                balance.credit -= invoice.total
    return [by_currency[c] for c in sorted(by_currency)]


@dataclass
class PointRow:
    """A supply point the account held, and the meters installed there over time."""

    link: AccountLink
    address: tuple[str, ...]
    meters: list[MeterLink]
    is_current: bool


@dataclass
class EditRow:
    """An interval edit with the meter it belongs to."""

    meter: str
    edit: EditRecord


@dataclass
class IntervalRow:
    """An interval listed for review under the chart."""

    interval: Interval
    flags: list[str] = field(default_factory=list)


def _zone(text: str, field: str = "tz") -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise PayloadError(
            f"{field}: {text!r} is not a time zone; give an IANA name such as Europe/Amsterdam",
            field=field,
        ) from None


def _midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=zone).timestamp() * 1000)


def _local(zone: ZoneInfo) -> Any:
    """A template function: UTC ms as the local time of ``zone`` (minutes)."""

    def show(ts: int) -> str:
        return datetime.fromtimestamp(ts / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return show


def _iso(ts: int) -> str:
    """UTC ms as ISO 8601 UTC (what the edit form sends back as the interval's start)."""
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: Decimal) -> str:
    """A quantity without trailing zeros or an exponent: 745.000000 -> 745, 1E+2 -> 100."""
    return format(value.normalize(), "f")


def _positive(text: str | None) -> bool:
    """Whether a decimal string of the invoice document is above zero."""
    return text is not None and Decimal(text) > 0


def _script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# -- accounts --------------------------------------------------------------------------------


@router.get("/metering", include_in_schema=False)
async def metering_home(who: Viewer) -> RedirectResponse:
    """The metering pages start at the accounts."""
    return RedirectResponse(f"{BASE}/accounts", status_code=303)


@router.get("/metering/accounts", response_class=HTMLResponse)
async def accounts_page(
    request: Request, who: Viewer, platform: PlatformDep, q: Text = "", page: PageNumber = 1
) -> HTMLResponse:
    """Every account, searched by number, name or address, 50 a page."""
    storage = service_of(platform).storage
    accounts = await storage.all_accounts(who.tenant_id)
    needle = q.strip().casefold()
    if needle:
        accounts = [
            a
            for a in accounts
            if needle in a.number.casefold()
            or needle in a.name.casefold()
            or any(needle in line.casefold() for line in a.address)
        ]
    table = _paged(accounts, page, f"{BASE}/accounts", {"q": q.strip()})
    return render(
        request,
        "metering_accounts.html",
        who,
        {"nav": "metering", "tab": "accounts", "table": table, "q": q.strip()},
    )


@router.get("/metering/accounts/{number}", response_class=HTMLResponse)
async def account_page(
    request: Request, number: str, who: Viewer, platform: PlatformDep
) -> HTMLResponse:
    """An account: the customer, supply points and meters over time, tariffs, invoices,
    what it owes, its billing runs and the edits of its intervals."""
    storage = service_of(platform).storage
    tenant_id = who.tenant_id
    account = await storage.account(tenant_id, number)
    now = now_ms()
    points: list[PointRow] = []
    edits: list[EditRow] = []
    for link in await storage.account_links(tenant_id, account_id=account.id):
        point = await storage.supply_point(tenant_id, link.supply_point)
        meters = await storage.meter_links(tenant_id, supply_point_id=link.supply_point_id)
        points.append(
            PointRow(link, point.address, meters, _is_current(link.from_ms, link.to_ms, now))
        )
        # The edits of the intervals this account was billed for at this supply point.
        for meter in meters:
            lo = max(link.from_ms, meter.from_ms)
            hi = min(link.to_ms or FOREVER, meter.to_ms or FOREVER)
            edits += [
                EditRow(meter.meter, e)
                for e in await storage.edits(tenant_id, meter.meter_id)
                if lo <= e.interval_start < hi
            ]
    edits.sort(key=lambda row: row.edit.at_ms, reverse=True)
    tariffs = {t.id: t for t in await storage.list_tariffs(tenant_id)}
    assignments = []
    for assignment in await storage.assignments(tenant_id, account.id):
        tariff = tariffs.get(assignment.tariff_id)
        today = datetime.now(_zone(tariff.timezone) if tariff else UTC).date()
        in_force = assignment.from_date <= today and (
            assignment.to_date is None or today < assignment.to_date
        )
        assignments.append((assignment, tariff, in_force))
    invoices = await storage.all_invoices(tenant_id, account_id=account.id)
    runs = [
        run
        for run in await storage.list_runs(tenant_id, limit=100)
        if run.account == account.number
        or any(entry.get("account") == account.number for entry in run.summary)
    ][:5]
    outcomes = {
        run.id: next((e for e in run.summary if e.get("account") == account.number), None)
        for run in runs
    }
    return render(
        request,
        "metering_account.html",
        who,
        {
            "nav": "metering",
            "tab": "accounts",
            "account": account,
            "points": points,
            "assignments": assignments,
            "invoices": invoices[:PAGE_SIZE],
            "invoice_count": len(invoices),
            "balances": _balances(invoices),
            "runs": runs,
            "outcomes": outcomes,
            "edits": edits,
            "this_month": datetime.now(UTC).strftime("%Y-%m"),
        },
    )


# -- meters ----------------------------------------------------------------------------------


@router.get("/metering/meters", response_class=HTMLResponse)
async def meters_page(
    request: Request, who: Viewer, platform: PlatformDep, q: Text = "", page: PageNumber = 1
) -> HTMLResponse:
    """Every meter with where it is installed now, searched by name or device id."""
    storage = service_of(platform).storage
    meters = await storage.all_meters(who.tenant_id)
    needle = q.strip().casefold()
    if needle:
        meters = [
            m for m in meters if needle in m.name.casefold() or needle in m.device_id.casefold()
        ]
    now = now_ms()
    table = _paged(meters, page, f"{BASE}/meters", {"q": q.strip()})
    installed: dict[int, str] = {}
    for meter in table.rows:
        links = await storage.meter_links(who.tenant_id, meter_id=meter.id)
        current = [ml for ml in links if _is_current(ml.from_ms, ml.to_ms, now)]
        if current:
            installed[meter.id] = current[-1].supply_point
    return render(
        request,
        "metering_meters.html",
        who,
        {
            "nav": "metering",
            "tab": "meters",
            "table": table,
            "q": q.strip(),
            "installed": installed,
        },
    )


async def _meter_zone(storage: MeteringStorage, tenant_id: int, links: list[MeterLink]) -> str:
    """The time zone the meter is billed in: the tariff of the account holding its latest
    supply point; UTC when there is none."""
    for meter_link in reversed(links):
        held = await storage.account_links(tenant_id, supply_point_id=meter_link.supply_point_id)
        for account_link in reversed(held):
            assignments = await storage.assignments(tenant_id, account_link.account_id)
            if assignments:
                return (await storage.tariff_by_id(assignments[-1].tariff_id)).timezone
    return "UTC"


def _register(meter: Meter, key: str | None) -> RegisterSpec:
    if not key:
        return meter.registers[0]
    for spec in meter.registers:
        if spec.key == key:
            return spec
    raise PayloadError(
        f"register: meter {meter.name!r} has no register {key!r}; it has "
        f"{', '.join(r.key for r in meter.registers)}",
        field="register",
    )


def _chart(intervals: Sequence[Interval], zone: ZoneInfo, unit: str) -> dict[str, Any]:
    """The chart's series: one per quality, null where the interval has another."""
    data: dict[str, Any] = {
        "tz": zone.key,
        "unit": unit,
        "x": [],
        "widths": [],
        "actual": [],
        "estimated": [],
        "edited": [],
        "missing": [],
    }
    for interval in intervals:
        data["x"].append(interval.start / 1000)
        data["widths"].append((interval.end - interval.start) / 1000)
        quantity = _number(interval.quantity)
        for quality in Quality:
            if quality is Quality.MISSING:
                data["missing"].append(1 if interval.quality is Quality.MISSING else None)
            else:
                data[quality.value].append(quantity if interval.quality is quality else None)
    return data


@router.get("/metering/meters/{name}", response_class=HTMLResponse)
async def meter_page(
    request: Request,
    name: str,
    who: Viewer,
    platform: PlatformDep,
    start: FirstDay = None,
    end: LastDay = None,
    tz: Annotated[str | None, Query(max_length=64)] = None,
    register: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """A meter: registers and latest reads, a chart of one register's intervals over some
    local days (estimated ones set apart, missing ones as gaps), the findings, and the
    edits with a form to add one (operators)."""
    service = service_of(platform)
    storage = service.storage
    tenant_id = who.tenant_id
    meter = await storage.meter(tenant_id, name)
    links = await storage.meter_links(tenant_id, meter_id=meter.id)
    zone = _zone(tz.strip() if tz and tz.strip() else await _meter_zone(storage, tenant_id, links))
    today = datetime.now(zone).date()
    last = parse_day(end, "to") or today
    first = parse_day(start, "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise PayloadError("to: give a day on or after from", field="to")
    if (last - first).days + 1 > MAX_DAYS:
        raise PayloadError(f"to: show at most {MAX_DAYS} days at a time", field="to")
    spec = _register(meter, register)
    lo, hi = _midnight(first, zone), _midnight(last + timedelta(days=1), zone)
    series = await service.register_series(tenant_id, meter, spec, start=lo, end=hi, tz=zone.key)
    intervals = [i for i in series.intervals if lo <= i.start < hi]
    counts = Counter(i.quality.value for i in intervals)
    total = sum((i.quantity for i in intervals if i.quantity is not None), Decimal(0))
    review = [
        IntervalRow(i, [f.value for f in i.flags])
        for i in intervals
        if i.quality is not Quality.ACTUAL or i.flags
    ]
    latest = (await platform.store.latest([meter.device_pk])).get(meter.device_pk, {})
    reads = [(r, latest.get(r.key)) for r in meter.registers]
    edits = sorted(await storage.edits(tenant_id, meter.id), key=lambda e: e.at_ms, reverse=True)
    now = now_ms()
    accounts: list[AccountLink] = []
    for meter_link in links:
        if _is_current(meter_link.from_ms, meter_link.to_ms, now):
            held = await storage.account_links(
                tenant_id, supply_point_id=meter_link.supply_point_id
            )
            accounts += [a for a in held if _is_current(a.from_ms, a.to_ms, now)]
    flags = sorted({f.code for f in series.flags}, key=lambda c: c.value)
    query = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "tz": zone.key,
        "register": spec.key,
    }
    return render(
        request,
        "metering_meter.html",
        who,
        {
            "nav": "metering",
            "tab": "meters",
            "meter": meter,
            "links": links,
            "accounts": accounts,
            "reads": reads,
            "spec": spec,
            "first": first,
            "last": last,
            "zone": zone.key,
            "local": _local(zone),
            "iso": _iso,
            "plain": _plain,
            "counts": {q.value: counts.get(q.value, 0) for q in Quality},
            "interval_count": len(intervals),
            "total": total,
            "review": review[:REVIEW_ROWS],
            "review_count": len(review),
            "findings": series.flags,
            "meanings": [(code.value, FLAG_MEANINGS.get(code, "")) for code in flags],
            "edits": edits,
            "chart": _script_json(_chart(intervals, zone, spec.unit)),
            "query": query,
            "api_intervals": f"{API}/meters/{quote(meter.name, safe='')}/intervals?"
            + urlencode({"from": str(lo), "to": str(hi), "tz": zone.key}),
        },
    )


# -- invoices --------------------------------------------------------------------------------


def _status_filter(text: str) -> list[InvoiceStatus]:
    try:
        return [InvoiceStatus(s) for s in text.split(",") if s]
    except ValueError:
        choices = ", ".join(s.value for s in InvoiceStatus)
        raise PayloadError(f"status: {text!r}; choose one of {choices}", field="status") from None


@router.get("/metering/invoices", response_class=HTMLResponse)
async def invoices_page(
    request: Request,
    who: Viewer,
    platform: PlatformDep,
    status: Text = "",
    period: Text = "",
    kind: Text = "",
    account: Text = "",
    page: PageNumber = 1,
) -> HTMLResponse:
    """Invoices and credit notes, newest first, filtered by status, period, kind and
    account, with the totals of all that match."""
    storage = service_of(platform).storage
    statuses = _status_filter(status.strip())
    if kind and kind not in {k.value for k in InvoiceKind}:
        raise PayloadError(f"kind: {kind!r}; choose invoice or credit_note", field="kind")
    unknown_account = None
    invoices: list[InvoiceRecord] = []
    account_id = None
    if account.strip():
        try:
            account_id = (await storage.account(who.tenant_id, account.strip())).id
        except NotFoundError:
            unknown_account = account.strip()
    if unknown_account is None:
        invoices = await storage.all_invoices(
            who.tenant_id,
            period=period.strip() or None,
            account_id=account_id,
            status=statuses,
            kind=InvoiceKind(kind) if kind else None,
        )
    query = {
        "status": status.strip(),
        "period": period.strip(),
        "kind": kind,
        "account": account.strip(),
    }
    table = _paged(invoices, page, f"{BASE}/invoices", query)
    return render(
        request,
        "metering_invoices.html",
        who,
        {
            "nav": "metering",
            "tab": "invoices",
            "table": table,
            "totals": _totals(invoices),
            "filters": query,
            "filtered": any(query.values()),
            "statuses": [s.value for s in InvoiceStatus],
            "unknown_account": unknown_account,
        },
    )


@router.get("/metering/invoices/{number}", response_class=HTMLResponse)
async def invoice_page(
    request: Request, number: str, who: Viewer, platform: PlatformDep
) -> HTMLResponse:
    """An invoice or credit note as issued: lines, taxes, totals, the register reads
    billed (estimated ones flagged), how it was computed, and what corrects what."""
    storage = service_of(platform).storage
    invoice = await storage.invoice(who.tenant_id, number)
    siblings = await storage.all_invoices(
        who.tenant_id, period=invoice.period, account_id=invoice.account_id
    )
    corrected_by = sorted((i for i in siblings if i.corrects == invoice.number), key=lambda i: i.id)
    consumption = invoice.document.get("consumption") or {}
    path = f"{API}/invoices/{quote(invoice.number, safe='')}"
    downloads = {"PDF": f"{path}.pdf", "CSV": f"{path}.csv", "JSON": path}
    return render(
        request,
        "metering_invoice.html",
        who,
        {
            "nav": "metering",
            "tab": "invoices",
            "invoice": invoice,
            "doc": invoice.document,
            "has_estimates": _positive(consumption.get("estimated_kwh")),
            "has_export": _positive(consumption.get("export_kwh")),
            "details": invoice.details,
            "corrected_by": corrected_by,
            "downloads": downloads,
        },
    )
