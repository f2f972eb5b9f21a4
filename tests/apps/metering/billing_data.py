"""A month of metering for the service, API and CLI tests, stored through HTTP telemetry.

October 2026 in Europe/Amsterdam: 31 local days, 745 hours (the clocks go back on
25 October). Two supply points on one tariff:

- ``871687120000000001`` (account ``A-1``): meter ``m1`` reads 1 kWh an hour on a
  6-digit register (3 decimals) from 999500.000, so it wraps to zero after 500
  hours; the reads of three hours in a row never arrived (a gap, estimated).
  Consumption: 745 kWh.
- ``871687120000000002`` (account ``A-2``): meter ``m2a`` (1 kWh an hour from
  100.000) is swapped on 15 October at local midnight for ``m2b`` (2 kWh an hour
  from 0.000). Consumption: 14 days * 24 h * 1 + 409 h * 2 = 1154 kWh.

Tariff (flat): 0.25 EUR/kWh, 0.45 EUR a day, VAT 21 %. By hand, A-1:

    standing charge  31 * 0.45  =  13.95
    energy          745 * 0.25  = 186.25
    subtotal                      200.20
    VAT      0.21 * 200.20 = 42.042 -> 42.04
    total                         242.24

and A-2: 13.95 + 1154 * 0.25 (288.50) = 302.45, VAT 63.5145 -> 63.51, total 365.96.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import httpx

from m2mhub.apps.metering.models import BillingSettings, MeterKind, PaymentMethod, RegisterSpec
from m2mhub.apps.metering.service import MeteringService

HOUR: Final = 3_600_000
#: 1 October 2026 00:00 in Amsterdam (CEST, UTC+2).
OCT_START: Final = int(datetime(2026, 9, 30, 22, tzinfo=UTC).timestamp() * 1000)
#: 1 November 2026 00:00 in Amsterdam (CET, UTC+1): 745 hours later.
NOV_START: Final = int(datetime(2026, 10, 31, 23, tzinfo=UTC).timestamp() * 1000)
#: 15 October 2026 00:00 in Amsterdam: the meter swap.
SWAP: Final = int(datetime(2026, 10, 14, 22, tzinfo=UTC).timestamp() * 1000)
#: The hours (from OCT_START) whose reads never arrived.
GAP: Final = (200, 201, 202)
KEY: Final = "energy_import_kwh"
EAN_1: Final = "871687120000000001"
EAN_2: Final = "871687120000000002"

TARIFF_YAML: Final = """\
name: Flat 2026
currency: EUR
timezone: Europe/Amsterdam
versions:
  - valid_from: 2026-01-01
    tax: {name: VAT, rate: 0.21}
    standing_charge: {per_day: 0.45}
    energy: {type: flat, price_per_kwh: 0.25}
"""

SETTINGS: Final = BillingSettings(
    seller_name="Stroom BV",
    seller_address=("Keizersgracht 1", "1015 CJ Amsterdam"),
    vat_id="NL123456789B01",
    iban="DE89370400440532013000",
    creditor_id="DE98ZZZ09999999999",
    due_days=14,
)


def m1_reads() -> list[dict[str, Any]]:
    """Meter m1: 1 kWh an hour from 999500.000, wrapping at 1000000, three reads lost."""
    reads = []
    for hour in range(746):
        if hour in GAP:
            continue
        value = (999_500 + hour) % 1_000_000
        reads.append({"ts": OCT_START + hour * HOUR, "values": {KEY: float(value)}})
    return reads


def swap_reads() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Meters m2a (until the swap, 1 kWh an hour) and m2b (from the swap, 2 kWh an hour)."""
    old = [
        {"ts": OCT_START + hour * HOUR, "values": {KEY: 100.0 + hour}}
        for hour in range((SWAP - OCT_START) // HOUR + 1)
    ]
    new = [
        {"ts": SWAP + hour * HOUR, "values": {KEY: 2.0 * hour}}
        for hour in range((NOV_START - SWAP) // HOUR + 1)
    ]
    return old, new


async def post_reads(
    client: httpx.AsyncClient, device: str, token: str, reads: list[dict[str, Any]]
) -> None:
    """Post reads as a device does, in store-and-forward batches over HTTP."""
    for start in range(0, len(reads), 200):
        response = await client.post(
            f"/api/v1/devices/{device}/telemetry",
            json=reads[start : start + 200],
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code < 300, response.text


async def declare(service: MeteringService, tenant_id: int) -> None:
    """Meters, supply points, accounts, links and the tariff of the module docstring."""
    register = [RegisterSpec(key=KEY, digits=6, decimals=3)]
    for name in ("m1", "m2a", "m2b"):
        await service.add_meter(
            tenant_id, name=name, device_id=name, kind=MeterKind.ELECTRICITY, registers=register
        )
    await service.add_supply_point(tenant_id, code=EAN_1, address=["Dorpsstraat 1", "Ede"])
    await service.add_supply_point(tenant_id, code=EAN_2, address=["Dorpsstraat 2", "Ede"])
    await service.add_account(
        tenant_id,
        number="A-1",
        name="J. de Vries",
        address=["Dorpsstraat 1", "6711 AA Ede"],
        payment_method=PaymentMethod.SEPA_DEBIT,
        iban="NL91ABNA0417164300",
        mandate_id="MANDATE-A1",
        mandate_signed_on=datetime(2026, 1, 5).date(),
    )
    await service.add_account(
        tenant_id, number="A-2", name="P. Jansen", address=["Dorpsstraat 2", "6711 AA Ede"]
    )
    year_start = int(datetime(2025, 12, 31, 23, tzinfo=UTC).timestamp() * 1000)
    await service.link_meter(tenant_id, meter="m1", supply_point=EAN_1, at_ms=year_start)
    await service.link_meter(tenant_id, meter="m2a", supply_point=EAN_2, at_ms=year_start)
    await service.link_meter(tenant_id, meter="m2b", supply_point=EAN_2, at_ms=SWAP)
    await service.link_account(tenant_id, supply_point=EAN_1, account="A-1", at_ms=year_start)
    await service.link_account(tenant_id, supply_point=EAN_2, account="A-2", at_ms=year_start)
    await service.put_tariff(tenant_id, yaml_text=TARIFF_YAML)
    for account in ("A-1", "A-2"):
        await service.assign_tariff(
            tenant_id, account=account, tariff="Flat 2026", from_date=datetime(2026, 1, 1).date()
        )
    await service.storage.save_settings(tenant_id, SETTINGS)
