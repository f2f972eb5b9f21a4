"""The demo's electricity meters are declared for billing, and a day of their simulated
reports bills: a register rollover, a flaky link's gaps and two tariffs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from m2mhub.api.app import create_app
from m2mhub.apps.metering.invoice_export import parse_invoice_document
from m2mhub.apps.metering.service import MeteringService
from m2mhub.config import Settings
from m2mhub.demo import TENANT, prepare
from m2mhub.platform import Platform
from m2mhub.sim.clock import backfill
from m2mhub.sim.fleet import build_models, load_fleet

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
DAY = "2026-10-14"  # a Wednesday: peak and off-peak hours
METERS = ["meter-001", "meter-002", "meter-003", "meter-004", "meter-101", "meter-102"]
ACCOUNTS = {"H-001", "H-002", "H-003", "H-004", "B-101", "B-102"}
HOUR_MS = 3_600_000


async def test_a_day_of_the_demo_meters_bills_every_account(tmp_path: Path) -> None:
    fleet = load_fleet()
    settings = Settings(data_dir=tmp_path, roles="api", mqtt_enabled=False)
    async with Platform(settings) as platform:
        credentials = await prepare(
            platform, tmp_path, fleet, webhook_url="http://127.0.0.1:9/webhook"
        )
        tenant = await platform.store.get_tenant(TENANT)
        assert tenant is not None
        service = MeteringService(platform.store, holder="test")
        accounts = await service.storage.list_accounts(tenant.id)
        assert {a.number for a in accounts} == ACCOUNTS

        # The day's reports, and an hour either side, posted as the meters' batches.
        start = int(datetime.fromisoformat(DAY).replace(tzinfo=AMSTERDAM).timestamp() * 1000)
        models = build_models(fleet, seed="billing", origin_ms=start - HOUR_MS)
        app = create_app(settings, platform=platform)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo.test") as client:
            for meter in METERS:
                reports = [
                    {"ts": ts, "values": values}
                    for ts, values in backfill(
                        models[meter], start - HOUR_MS, start + 25 * HOUR_MS, 300_000
                    )
                ]
                posted = await client.post(
                    f"/api/v1/devices/{meter}/telemetry",
                    json=reports,
                    headers={"Authorization": f"Bearer {credentials.tokens[meter]}"},
                )
                assert posted.status_code == 200, posted.text

        run = await service.run_billing(tenant.id, f"{DAY}..{DAY}", actor="test")

        outcomes = {entry["account"]: entry["outcome"] for entry in run.summary}
        assert outcomes == dict.fromkeys(ACCOUNTS, "issued")
        invoices = {}
        for entry in run.summary:
            (number,) = entry["issued"]
            record = await service.storage.invoice(tenant.id, number)
            invoices[entry["account"]] = parse_invoice_document(record.document)
        # The five-digit register of meter-003 rolls over during the day: read as a day's
        # household consumption, not as minus 99,995 kWh.
        rolled = invoices["H-003"]
        assert rolled.meters[0].last.value < rolled.meters[0].first.value
        assert 1 < rolled.draft.import_kwh < 50
        # meter-002's link drops out: its missing quarter-hours are estimated and said so.
        assert invoices["H-002"].draft.estimated_intervals > 0
        assert invoices["H-001"].draft.estimated_intervals == 0
        # Households on time of use, offices on the flat tariff with a demand charge.
        assert {c.period for c in invoices["H-001"].draft.consumption} == {"peak", "off-peak"}
        assert invoices["B-101"].draft.peak is not None
        for invoice in invoices.values():
            assert invoice.draft.days == 1
            assert invoice.draft.total.amount > 0
