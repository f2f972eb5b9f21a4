"""The metering console pages on each backend: accounts, meters, invoices, who may act.

The data is billing_data's October 2026: meters declared through the service, their
reads posted as the devices do (HTTP telemetry, the real ingest path), the month billed
by the service. A-1 owes 242.24 EUR (INV-000001), A-2 365.96 EUR (INV-000002); meter
m1 lost the reads of hours 200 to 202, which are estimated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import httpx
import pytest

from m2mhub.apps.metering.api import service_of
from m2mhub.apps.metering.service import MeteringService
from m2mhub.core.values import Role
from tests.apps.metering.billing_data import (
    EAN_1,
    EAN_2,
    GAP,
    HOUR,
    KEY,
    OCT_START,
    declare,
    m1_reads,
    post_reads,
    swap_reads,
)
from tests.conftest import Api
from tests.web.conftest import PASSWORD, USERS, csrf_of, sign_in

M = "/console/metering"


@dataclass
class Metered:
    """The billed month, and a signed-in client per role."""

    api: Api
    service: MeteringService
    clients: dict[Role, httpx.AsyncClient]

    def __getitem__(self, role: Role) -> httpx.AsyncClient:
        return self.clients[role]


async def _clients(api: Api) -> dict[Role, httpx.AsyncClient]:
    clients = {}
    for role, email in USERS.items():
        await api.platform.registry.create_user(api.tenant.id, email, role, PASSWORD)
        client = httpx.AsyncClient(transport=api.client._transport, base_url="http://m2mhub.test")
        assert (await sign_in(client, email)).status_code == 303
        clients[role] = client
    return clients


@pytest.fixture
async def metered(api: Api) -> Metered:
    await api.device_type("meter")
    for name in ("m1", "m2a", "m2b"):
        await api.new_device(name, "meter")
    service = service_of(api.platform)
    await declare(service, api.tenant.id)
    old, new = swap_reads()
    for device, reads in (("m1", m1_reads()), ("m2a", old), ("m2b", new)):
        await post_reads(api.client, device, api.tokens[device], reads)
    run = await service.run_billing(api.tenant.id, "2026-10", actor="user:admin@example.com")
    assert [entry["outcome"] for entry in run.summary] == ["issued", "issued"]
    return Metered(api, service, await _clients(api))


def _table(html: str, table_id: str) -> str:
    found = re.search(rf'<table[^>]* id="{table_id}"[^>]*>(.*?)</table>', html, re.S)
    assert found, f"no table #{table_id} in the page"
    return found.group(1)


def _rows(html: str, table_id: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", _table(html, table_id), re.S)
    assert body is not None
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def _edit(client: httpx.AsyncClient, start: int, quantity: str) -> httpx.Response:
    csrf = csrf_of((await client.get(f"{M}/meters/m1")).text)
    return await client.post(
        "/api/v1/metering/meters/m1/edits",
        json={"register": KEY, "start": start, "quantity": quantity, "reason": "photo of m1"},
        headers={"X-CSRF-Token": csrf},
    )


# -- accounts ----------------------------------------------------------------------------------


async def test_the_accounts_list_searches_and_links_each_account(metered: Metered) -> None:
    page = await metered[Role.VIEWER].get(f"{M}/accounts")
    assert page.status_code == 200, page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    rows = _rows(page.text, "accounts")
    assert [re.search(r">(A-\d)</a>", r).group(1) for r in rows] == ["A-1", "A-2"]  # type: ignore[union-attr]
    assert "direct debit" in rows[0] and "transfer" in rows[1]
    assert 'href="/console/metering"' in page.text  # the main navigation
    found = await metered[Role.VIEWER].get(f"{M}/accounts", params={"q": "jansen"})
    assert [_text(r).split()[0] for r in _rows(found.text, "accounts")] == ["A-2"]
    none = await metered[Role.VIEWER].get(f"{M}/accounts", params={"q": "nobody"})
    assert "No account matches “nobody”" in none.text
    # /console/metering starts at the accounts.
    home = await metered[Role.VIEWER].get(M)
    assert home.status_code == 303 and home.headers["location"] == f"{M}/accounts"


async def test_an_account_page_shows_the_customer_links_tariff_invoices_and_balance(
    metered: Metered,
) -> None:
    page = await metered[Role.VIEWER].get(f"{M}/accounts/A-1")
    assert page.status_code == 200, page.text
    html = page.text
    text = _text(html)
    assert "J. de Vries" in text and "Dorpsstraat 1" in text and "6711 AA Ede" in text
    assert "SEPA direct debit" in text and "NL91ABNA0417164300" in text and "MANDATE-A1" in text
    assert f"{EAN_1} current" in text
    assert 'href="/console/metering/meters/m1"' in html
    tariffs = _rows(html, "tariffs")
    assert len(tariffs) == 1 and "Flat 2026" in tariffs[0] and "2026-01-01" in tariffs[0]
    assert ("in force" in tariffs[0]) == (datetime.now(UTC).date() >= date(2026, 1, 1))
    [invoice] = _rows(html, "account-invoices")
    assert "INV-000001" in invoice and "242.24 EUR" in invoice and "inv-open" in invoice
    assert 'href="/api/v1/metering/invoices/INV-000001.pdf"' in invoice
    assert 'href="/api/v1/metering/invoices/INV-000001.csv"' in invoice
    balance = re.search(r'<div id="balance">(.*?)</div>', html, re.S)
    assert balance is not None and "242.24 EUR unpaid" in _text(balance.group(1))
    assert "2026-10" in _text(html[html.index('id="runs"') :])  # the run that billed it
    assert "No interval of this account was edited." in text
    # A viewer (and an operator) gets no billing form; an admin does.
    assert 'id="run-billing"' not in html
    operator = await metered[Role.OPERATOR].get(f"{M}/accounts/A-1")
    assert 'id="run-billing"' not in operator.text
    admin = await metered[Role.ADMIN].get(f"{M}/accounts/A-1")
    form = re.search(r'<form[^>]*id="run-billing"[^>]*>(.*?)</form>', admin.text, re.S)
    assert form is not None
    assert 'data-api="/api/v1/metering/billing-runs"' in form.group(0)
    assert 'name="account" value="A-1"' in form.group(1)


async def test_the_swap_shows_both_meters_over_time(metered: Metered) -> None:
    html = (await metered[Role.VIEWER].get(f"{M}/accounts/A-2")).text
    section = html[html.index('id="points-h"') : html.index('id="tariffs-h"')]
    meters = re.findall(r"/console/metering/meters/(m2\w)\"", section)
    assert meters == ["m2a", "m2b"]
    assert EAN_2 in section and "2026-10-14T22:00:00.000Z" in section  # the swap instant


async def test_only_admins_run_billing_from_the_console(metered: Metered) -> None:
    for role in (Role.VIEWER, Role.OPERATOR):
        client = metered[role]
        csrf = csrf_of((await client.get(f"{M}/accounts/A-1")).text)
        refused = await client.post(
            "/api/v1/metering/billing-runs",
            json={"period": "2026-10", "account": "A-1"},
            headers={"X-CSRF-Token": csrf},
        )
        assert refused.status_code == 403, role
    admin = metered[Role.ADMIN]
    csrf = csrf_of((await admin.get(f"{M}/accounts/A-1")).text)
    ran = await admin.post(
        "/api/v1/metering/billing-runs",
        json={"period": "2026-10", "account": "A-1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert ran.status_code == 201, ran.text
    runs = (await admin.get(f"{M}/accounts/A-1")).text
    assert "unchanged" in runs[runs.index('id="runs"') :]


# -- meters ------------------------------------------------------------------------------------


async def test_the_meter_page_charts_a_day_with_its_estimated_intervals(
    metered: Metered,
) -> None:
    # Hour 200 after 1 October 00:00 (Amsterdam) is 9 October 08:00.
    page = await metered[Role.VIEWER].get(
        f"{M}/meters/m1", params={"from": "2026-10-09", "to": "2026-10-09"}
    )
    assert page.status_code == 200, page.text
    html = page.text
    found = re.search(r'<script type="application/json" id="meter-data">(.*?)</script>', html)
    assert found is not None
    chart = json.loads(found.group(1))
    assert chart["tz"] == "Europe/Amsterdam" and chart["unit"] == "kWh"
    assert len(chart["x"]) == 24 and chart["x"][0] == (OCT_START + 8 * 24 * HOUR) / 1000
    estimated = [i for i, v in enumerate(chart["estimated"]) if v is not None]
    # The reads of hours 200-202 are lost: the intervals from 07:00 to 11:00 are estimated.
    assert estimated == [7, 8, 9, 10]
    assert [chart["estimated"][i] for i in estimated] == [1.0, 1.0, 1.0, 1.0]
    assert all(chart["actual"][i] == 1.0 for i in range(24) if i not in estimated)
    assert chart["missing"] == [None] * 24
    legend = _text(re.search(r'<ul class="legend"[^>]*>(.*?)</ul>', html, re.S).group(1))  # type: ignore[union-attr]
    assert legend == "Actual (20) Estimated (4) Edited (0) Missing, a gap (0)"
    assert '<script src="/console/static/metering.js" defer></script>' in html
    review = _rows(html, "review")
    assert len(review) == 4 and all("q-estimated" in r for r in review)
    assert "2026-10-09 07:00 \u2013 08:00" in _text(review[0])
    findings = _text(html[html.index('id="findings"') :])
    assert "gap" in findings and "No reads for longer than an hour" in findings
    registers = _rows(html, "registers")
    assert KEY in registers[0] and "245 kWh" in _text(registers[0])  # (999500 + 745) % 1e6
    # Viewers see no edit form nor edit buttons.
    assert 'id="edit-form"' not in html and "data-edit-start" not in html
    script = await metered[Role.VIEWER].get("/console/static/metering.js")
    assert script.status_code == 200 and "createPattern" in script.text


async def test_days_without_reads_are_missing_gaps_on_the_chart(metered: Metered) -> None:
    page = await metered[Role.VIEWER].get(
        f"{M}/meters/m1", params={"from": "2026-12-10", "to": "2026-12-10"}
    )
    assert page.status_code == 200, page.text
    found = re.search(r'id="meter-data">(.*?)</script>', page.text)
    assert found is not None
    chart = json.loads(found.group(1))
    assert chart["missing"] == [1] * 24
    assert chart["actual"] == chart["estimated"] == chart["edited"] == [None] * 24
    assert "Missing, a gap (24)" in _text(page.text)


async def test_an_operator_edits_an_interval_and_the_audit_trail_shows_it(
    metered: Metered,
) -> None:
    operator = metered[Role.OPERATOR]
    page = await operator.get(f"{M}/meters/m1", params={"from": "2026-10-09", "to": "2026-10-09"})
    form = re.search(r'<form[^>]*id="edit-form"[^>]*>', page.text)
    assert form is not None and 'data-api="/api/v1/metering/meters/m1/edits"' in form.group(0)
    start = OCT_START + GAP[0] * HOUR
    assert 'data-edit-start="2026-10-09T06:00:00Z"' in page.text  # hour 200, in UTC
    # A viewer's edit is refused by the API the form calls.
    assert (await _edit(metered[Role.VIEWER], start, "2.5")).status_code == 403
    edited = await _edit(operator, start, "2.5")
    assert edited.status_code == 201, edited.text
    html = (
        await operator.get(f"{M}/meters/m1", params={"from": "2026-10-09", "to": "2026-10-09"})
    ).text
    chart = json.loads(re.search(r'id="meter-data">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    assert chart["edited"][8] == 2.5 and chart["estimated"][8] is None
    row = next(r for r in _rows(html, "review") if "q-edited" in r)
    assert "2.5 kWh" in _text(row) and "(was 1, estimated)" in _text(row)
    [trail] = _rows(html, "edits")
    assert "user:operator@example.com" in trail and "photo of m1" in trail and "2.5" in trail
    assert "2026-10-09 08:00" in trail  # the interval, local time
    account = (await metered[Role.VIEWER].get(f"{M}/accounts/A-1")).text
    [edit] = _rows(account, "account-edits")
    assert "photo of m1" in edit and "/console/metering/meters/m1" in edit


async def test_the_meters_list_and_wrong_parameters(metered: Metered) -> None:
    viewer = metered[Role.VIEWER]
    page = await viewer.get(f"{M}/meters")
    rows = _rows(page.text, "meters")
    assert [_text(r).split()[0] for r in rows] == ["m1", "m2a", "m2b"]
    assert EAN_1 in rows[0] and "—" in rows[1] and EAN_2 in rows[2]  # m2a was swapped out
    wrong = await viewer.get(f"{M}/meters/m1", params={"from": "9 October"})
    assert wrong.status_code == 422 and "from: &#39;9 October&#39; is not a day" in wrong.text
    zone = await viewer.get(f"{M}/meters/m1", params={"tz": "Mars/Olympus"})
    assert zone.status_code == 422 and "tz:" in zone.text
    register = await viewer.get(f"{M}/meters/m1", params={"register": "gas_m3"})
    assert register.status_code == 422 and "has no register" in register.text
    long = await viewer.get(f"{M}/meters/m1", params={"from": "2026-01-01", "to": "2026-10-01"})
    assert long.status_code == 422 and "at most 93 days" in long.text
    missing = await viewer.get(f"{M}/meters/nope")
    assert missing.status_code == 404 and "meter &#39;nope&#39; not found" in missing.text


# -- invoices ----------------------------------------------------------------------------------


async def test_the_invoices_list_filters_and_adds_up(metered: Metered) -> None:
    viewer = metered[Role.VIEWER]
    page = await viewer.get(f"{M}/invoices")
    assert page.status_code == 200
    numbers = [re.search(r">(INV-\d+)</a>", r).group(1) for r in _rows(page.text, "invoices")]  # type: ignore[union-attr]
    assert numbers == ["INV-000002", "INV-000001"]
    [totals] = _rows(page.text, "totals")
    assert _text(totals) == "EUR 2 502.65 105.55 608.20"
    one = await viewer.get(f"{M}/invoices", params={"account": "A-2", "status": "open"})
    assert [_text(r).split()[0] for r in _rows(one.text, "invoices")] == ["INV-000002"]
    assert "<option selected>open</option>" in one.text
    paid = await viewer.get(f"{M}/invoices", params={"status": "paid"})
    assert "No invoice matches these filters." in paid.text
    other = await viewer.get(f"{M}/invoices", params={"period": "2026-11"})
    assert "No invoice matches these filters." in other.text
    unknown = await viewer.get(f"{M}/invoices", params={"account": "Z-9"})
    assert "account: no account Z-9" in unknown.text
    wrong = await viewer.get(f"{M}/invoices", params={"status": "lost"})
    assert wrong.status_code == 422 and "status: &#39;lost&#39;; choose one of" in wrong.text


async def test_an_invoice_page_shows_lines_taxes_reads_and_downloads(metered: Metered) -> None:
    viewer = metered[Role.VIEWER]
    page = await viewer.get(f"{M}/invoices/INV-000001")
    assert page.status_code == 200, page.text
    html = page.text
    lines = [_text(r) for r in _rows(html, "lines")]
    assert lines == [
        "Standing charge 2026-10-01 2026-11-01 31 day 0.45 13.95 EUR 0.21",
        "Energy 2026-10-01 2026-11-01 745.000000 kWh 0.25 186.25 EUR 0.21",
    ]
    footer = _text(_table(html, "lines").split("<tfoot>")[1])
    assert footer == "Subtotal 200.20 EUR VAT 0.21 of 200.20 42.04 EUR Total 242.24 EUR"
    [reads] = _rows(html, "reads")
    assert _text(reads) == f"m1 {KEY} 2026-10-01: 999500.0 2026-11-01: 245.0 745.000 kWh"
    [quality] = _rows(html, "quality")
    assert _text(quality) == f"m1 {KEY} 741 4 0 0 gap" and "q-estimated" in quality
    downloads = re.search(r'<p class="downloads" id="downloads">(.*?)</p>', html, re.S)
    assert downloads is not None
    links = re.findall(r'href="([^"]+)"', downloads.group(1))
    assert links == [
        "/api/v1/metering/invoices/INV-000001.pdf",
        "/api/v1/metering/invoices/INV-000001.csv",
        "/api/v1/metering/invoices/INV-000001",
    ]
    pdf = await viewer.get(links[0])
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    csv = await viewer.get(links[1])
    assert csv.status_code == 200 and "INV-000001,invoice,2,Energy" in csv.text
    missing = await viewer.get(f"{M}/invoices/INV-999999")
    assert missing.status_code == 404


async def test_a_correction_links_the_credit_note_and_the_new_invoice(metered: Metered) -> None:
    start = OCT_START + GAP[0] * HOUR
    assert (await _edit(metered[Role.OPERATOR], start, "11")).status_code == 201
    run = await metered.service.run_billing(
        metered.api.tenant.id, "2026-10", account="A-1", actor="user:admin@example.com"
    )
    assert run.summary[0]["credit_notes"] == ["CN-000001"]
    assert run.summary[0]["issued"] == ["INV-000003"]
    viewer = metered[Role.VIEWER]
    old = _text((await viewer.get(f"{M}/invoices/INV-000001")).text)
    assert "credited reversed by CN-000001" in old
    assert "Reversed by credit note CN-000001 (-242.24 EUR, open)" in old
    assert "Replaced by invoice INV-000003 (245.27 EUR, open)" in old  # 10 kWh more
    note = await viewer.get(f"{M}/invoices/CN-000001")
    assert "Reverses invoice INV-000001" in _text(note.text)
    assert "Credit note CN-000001" in _text(note.text)
    new = await viewer.get(f"{M}/invoices/INV-000003")
    assert "Replaces invoice INV-000001" in _text(new.text)
    listed = await viewer.get(f"{M}/invoices", params={"kind": "credit_note"})
    [row] = _rows(listed.text, "invoices")
    assert "credit note" in row and 'href="/console/metering/invoices/INV-000001"' in row
    # The credit note cancels the unpaid invoice: A-1 owes the new one only.
    account = (await viewer.get(f"{M}/accounts/A-1")).text
    balance = re.search(r'<div id="balance">(.*?)</div>', account, re.S)
    assert balance is not None and "245.27 EUR unpaid" in _text(balance.group(1))


# -- empty states and signing in -------------------------------------------------------------


async def test_empty_pages_say_what_to_do(api: Api) -> None:
    clients = await _clients(api)
    viewer = clients[Role.VIEWER]
    accounts = await viewer.get(f"{M}/accounts")
    assert "No accounts yet" in accounts.text and "m2mhub metering apply" in accounts.text
    meters = await viewer.get(f"{M}/meters")
    assert "No meters yet" in meters.text
    invoices = await viewer.get(f"{M}/invoices")
    assert "No invoices yet" in invoices.text
    service = service_of(api.platform)
    await service.add_account(api.tenant.id, number="B-1", name="Bare", address=["Street 1"])
    bare = _text((await viewer.get(f"{M}/accounts/B-1")).text)
    for empty in (
        "No invoices yet, nothing owed.",
        "No supply point is billed to this account",
        "No tariff assigned",
        "This account has not been billed yet.",
        "No invoices for this account yet.",
    ):
        assert empty in bare
    missing = await viewer.get(f"{M}/accounts/NOPE")
    assert missing.status_code == 404 and "account &#39;NOPE&#39; not found" in missing.text


async def test_a_meter_without_reads_has_no_chart(api: Api) -> None:
    from m2mhub.apps.metering.models import MeterKind, RegisterSpec

    clients = await _clients(api)
    await api.device_type("meter")
    await api.new_device("quiet", "meter")
    await service_of(api.platform).add_meter(
        api.tenant.id,
        name="quiet",
        device_id="quiet",
        kind=MeterKind.WATER,
        registers=[RegisterSpec(key="water_m3", unit="m3")],
    )
    page = await clients[Role.VIEWER].get(f"{M}/meters/quiet")
    assert page.status_code == 200, page.text
    text = _text(page.text)
    assert "no read yet" in text and "Not installed at any supply point" in text
    assert "No interval of this meter was edited." in text
    # A week without reads: 168 missing hours, shaded on the chart and listed for review.
    assert "Missing, a gap (168)" in text and 'id="meter-chart"' in page.text
    assert len(_rows(page.text, "review")) == 168
    assert "gap" in _text(page.text[page.text.index('id="findings"') :])
    # ...and an operator cannot edit a register the meter does not have.
    operator = clients[Role.OPERATOR]
    csrf = csrf_of((await operator.get(f"{M}/meters/quiet")).text)
    refused = await operator.post(
        "/api/v1/metering/meters/quiet/edits",
        json={"register": KEY, "start": OCT_START, "quantity": "1", "reason": "test"},
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status_code == 422 and "has no register" in refused.text


async def test_pages_ask_to_sign_in_and_page_long_lists(api: Api) -> None:
    anonymous = httpx.AsyncClient(transport=api.client._transport, base_url="http://m2mhub.test")
    page = await anonymous.get(f"{M}/accounts")
    assert page.status_code == 303 and page.headers["location"].startswith("/console/login")
    service = service_of(api.platform)
    for n in range(55):
        await service.add_account(
            api.tenant.id, number=f"C-{n:03d}", name=f"Customer {n}", address=["Street 1"]
        )
    viewer = (await _clients(api))[Role.VIEWER]
    first = await viewer.get(f"{M}/accounts")
    assert len(_rows(first.text, "accounts")) == 50 and "55 accounts, page 1 of 2" in first.text
    assert 'href="/console/metering/accounts?page=2"' in first.text
    second = await viewer.get(f"{M}/accounts", params={"page": 2})
    assert [_text(r).split()[0] for r in _rows(second.text, "accounts")] == [
        f"C-{n:03d}" for n in range(50, 55)
    ]
