"""What ``m2mhub metering apply`` declares: settings, tariffs, supply points, accounts,
meters, links and tariff assignments, in one YAML file (docs/metering.md), applied so
that a file can be applied again after it grew: what exists is kept, tariffs are
replaced by name.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import yaml

from m2mhub.apps.metering.models import BillingSettings, MeterKind, PaymentMethod, RegisterSpec
from m2mhub.apps.metering.service import MeteringService
from m2mhub.core.errors import ConflictError, PayloadError
from m2mhub.core.timeutil import parse_time

__all__ = ["Declarations", "apply_declarations", "parse_declarations"]


class Declarations(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The file of ``m2mhub metering apply``."""

    tenant: str | None = None
    settings: BillingSettings | None = None
    tariffs: list[dict[str, Any]] = []
    supply_points: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    meters: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    tariff_assignments: list[dict[str, Any]] = []


async def apply_declarations(
    service: MeteringService, tenant_id: int, spec: Declarations, base: Path
) -> list[str]:
    """Create what the file declares and the tenant lacks; existing entries are kept."""
    done: list[str] = []

    async def attempt(label: str, work: Any) -> None:
        try:
            await work
            done.append(f"created {label}")
        except ConflictError:
            done.append(f"kept {label} (exists)")

    if spec.settings is not None:
        await service.storage.save_settings(tenant_id, spec.settings)
        done.append("set billing settings")
    for i, item in enumerate(spec.tariffs):
        text = item.get("yaml")
        if text is None and "file" in item:
            text = (base / str(item["file"])).read_text()
        if not isinstance(text, str):
            raise PayloadError(
                f"tariffs[{i}]: give the tariff as yaml: | ... or file: name.yaml",
                field=f"tariffs[{i}]",
            )
        record, created = await service.put_tariff(
            tenant_id, yaml_text=text, kind=MeterKind(item.get("kind", "electricity"))
        )
        done.append(f"{'created' if created else 'replaced'} tariff {record.name}")
    for item in spec.supply_points:
        await attempt(
            f"supply point {item['code']}",
            service.add_supply_point(tenant_id, code=str(item["code"]), address=item["address"]),
        )
    for item in spec.accounts:
        await attempt(
            f"account {item['number']}",
            service.add_account(
                tenant_id,
                number=str(item["number"]),
                name=item["name"],
                address=item["address"],
                email=item.get("email"),
                payment_method=PaymentMethod(item.get("payment_method", "transfer")),
                iban=item.get("iban"),
                bic=item.get("bic"),
                mandate_id=item.get("mandate_id"),
                mandate_signed_on=item.get("mandate_signed_on"),
            ),
        )
    for item in spec.meters:
        registers = msgspec.convert(item.get("registers", []), list[RegisterSpec])
        await attempt(
            f"meter {item['name']}",
            service.add_meter(
                tenant_id,
                name=item["name"],
                device_id=item["device"],
                kind=MeterKind(item.get("kind", "electricity")),
                registers=registers,
                interval_minutes=int(item.get("interval_minutes", 60)),
            ),
        )
    for i, item in enumerate(spec.links):
        at = parse_time(str(item["from"]), field=f"links[{i}].from")
        if "meter" in item:
            label = f"link of meter {item['meter']} to {item['supply_point']}"
            meter = await service.storage.meter(tenant_id, item["meter"])
            installed = await service.storage.meter_links(tenant_id, meter_id=meter.id)
            if any(link.from_ms == at for link in installed):
                done.append(f"kept {label} (exists)")
                continue
            await attempt(
                label,
                service.link_meter(
                    tenant_id, meter=item["meter"], supply_point=str(item["supply_point"]), at_ms=at
                ),
            )
        else:
            label = f"link of {item['supply_point']} to account {item['account']}"
            point = await service.storage.supply_point(tenant_id, str(item["supply_point"]))
            links = await service.storage.account_links(tenant_id, supply_point_id=point.id)
            if any(link.from_ms == at for link in links):
                done.append(f"kept {label} (exists)")
                continue
            await attempt(
                label,
                service.link_account(
                    tenant_id,
                    supply_point=str(item["supply_point"]),
                    account=str(item["account"]),
                    at_ms=at,
                ),
            )
    for item in spec.tariff_assignments:
        start = item["from"] if isinstance(item["from"], date) else date.fromisoformat(item["from"])
        account = await service.storage.account(tenant_id, str(item["account"]))
        assigned = await service.storage.assignments(tenant_id, account.id)
        label = f"tariff {item['tariff']} for {account.number} from {start}"
        if any(a.tariff == item["tariff"] and a.from_date == start for a in assigned):
            done.append(f"kept {label} (exists)")
            continue
        await attempt(
            label,
            service.assign_tariff(
                tenant_id, account=account.number, tariff=item["tariff"], from_date=start
            ),
        )
    return done


def parse_declarations(text: str) -> Declarations:
    """The declarations of a YAML text; :class:`PayloadError` naming what is wrong."""
    try:
        return msgspec.convert(yaml.safe_load(text), Declarations)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise PayloadError(f"declarations: {exc}", field="declarations") from None
