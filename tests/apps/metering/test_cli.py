"""``m2mhub metering`` and ``m2mhub billing`` run as a user runs them: one process each,
on a data directory whose reads came in over HTTP telemetry."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from m2mhub.api.app import create_app
from m2mhub.apps.metering.payments import validate_direct_debit
from m2mhub.config import Settings
from m2mhub.platform import Platform
from tests.apps.metering.billing_data import KEY, TARIFF_YAML, m1_reads, post_reads
from tests.processes import fails, m2mhub_env, ok

FIXTURES = Path(__file__).parent / "fixtures"

DECLARATIONS = f"""\
tenant: acme
settings:
  seller_name: Stroom BV
  seller_address: [Keizersgracht 1, 1015 CJ Amsterdam]
  vat_id: NL123456789B01
  iban: DE89370400440532013000
  creditor_id: DE98ZZZ09999999999
tariffs:
  - kind: electricity
    file: flat.yaml
supply_points:
  - {{code: "871687120000000001", address: [Dorpsstraat 1, Ede]}}
accounts:
  - number: A-1
    name: J. de Vries
    address: [Dorpsstraat 1, 6711 AA Ede]
    payment_method: sepa_debit
    iban: NL91ABNA0417164300
    mandate_id: MANDATE-A1
    mandate_signed_on: 2026-01-05
meters:
  - name: m1
    device: m1
    registers: [{{key: {KEY}, digits: 6, decimals: 3}}]
links:
  - {{meter: m1, supply_point: "871687120000000001", from: "2026-01-01T00:00:00+01:00"}}
  - {{supply_point: "871687120000000001", account: A-1, from: "2026-01-01T00:00:00+01:00"}}
tariff_assignments:
  - {{account: A-1, tariff: Flat 2026, from: 2026-01-01}}
"""


@pytest.fixture
async def hub(tmp_path: Path) -> dict[str, str]:
    """A data directory with tenant acme and a month of meter m1's reads, posted over HTTP."""
    env = m2mhub_env(tmp_path / "hub")
    settings = Settings(data_dir=Path(env["M2MHUB_DATA_DIR"]), roles="api")
    async with Platform(settings) as platform:
        tenant = await platform.registry.create_tenant("acme", "Acme")
        await platform.registry.create_device_type(tenant.id, "meter", [])
        device, token = await platform.registry.create_device(
            tenant.id, type_name="meter", name="m1", device_id="m1"
        )
        app = create_app(settings, platform=platform)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m2mhub.test") as client:
            await post_reads(client, device.id, token, m1_reads())
    return env


def test_apply_bill_collect(hub: dict[str, str], tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "flat.yaml").write_text(TARIFF_YAML)
    (files / "metering.yaml").write_text(DECLARATIONS)
    applied = ok("metering", "apply", str(files / "metering.yaml"), env=hub)
    assert "created meter m1" in applied and "created account A-1" in applied
    again = ok("metering", "apply", str(files / "metering.yaml"), env=hub)
    assert "kept meter m1 (exists)" in again and "created" not in again

    first = ok("billing", "run", "--period", "2026-10", "--tenant", "acme", env=hub)
    assert "INV-000001" in first and "issued" in first
    second = ok("billing", "run", "--period", "2026-10", "--tenant", "acme", env=hub)
    assert "unchanged" in second and "INV-000002" not in second
    listed = ok("billing", "invoices", "--tenant", "acme", env=hub)
    assert "INV-000001" in listed and "242.24 EUR" in listed and "open" in listed

    out = tmp_path / "collect.xml"
    exported = ok("billing", "export-sepa", "--out", str(out), "--tenant", "acme", env=hub)
    assert "1 collections, 242.24 EUR" in exported
    validate_direct_debit(out.read_bytes())
    message_id = exported.split(":")[0].split("/")[-1].removesuffix(".xml")
    camt = tmp_path / "camt.xml"
    camt.write_text(
        (FIXTURES / "camt.054.001.02_collections_and_return.xml")
        .read_text()
        .replace("INV-2024-0001", "INV-000001")
        .replace("M2M-2024-05-31-001", message_id)
    )
    imported = ok("billing", "import-status", str(camt), "--tenant", "acme", env=hub)
    assert "paid: INV-000001" in imported
    assert "paid" in ok("billing", "invoices", "--status", "paid", "--tenant", "acme", env=hub)

    refused = fails("billing", "run", "--period", "2026-13", "--tenant", "acme", env=hub)
    assert "period" in refused


def test_a_held_invoice_is_released_from_the_command_line(
    hub: dict[str, str], tmp_path: Path
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "flat.yaml").write_text(TARIFF_YAML)
    held_settings = "  on_missing_data: hold\n  max_estimated_percent: 0\ntariffs:"
    (files / "metering.yaml").write_text(DECLARATIONS.replace("tariffs:", held_settings, 1))
    ok("metering", "apply", str(files / "metering.yaml"), env=hub)
    run = ok("billing", "run", "--period", "2026-10", "--tenant", "acme", env=hub)
    assert "held" in run and "HELD-000001" in run and "INV-000001" not in run
    listed = ok("billing", "invoices", "--status", "held", "--tenant", "acme", env=hub)
    assert "HELD-000001" in listed
    released = ok("billing", "release", "HELD-000001", "--tenant", "acme", env=hub)
    assert "released HELD-000001 as INV-000001: 242.24 EUR" in released
    refused = fails("billing", "release", "INV-000001", "--tenant", "acme", env=hub)
    assert "not held" in refused
