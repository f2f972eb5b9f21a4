"""Assets to and from CSV, the spreadsheet many fleets keep their equipment in.

Columns: ``name`` (required), ``kind`` (default ``equipment``), ``devices`` (device ids
separated by ``;``, assigned from now), and every other column is a property of the asset
(numbers and ``true``/``false`` keep their type; an empty cell is no property).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Final

from m2mhub.core.errors import ConflictError, NotFoundError, PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.core.values import Value
from m2mhub.registry.naming import check_name, check_path_name
from m2mhub.registry.service import ImportRejected, RowError
from m2mhub.store.base import Store
from m2mhub.store.models import Asset

COLUMNS: Final = ("name", "kind", "devices")
DEFAULT_KIND: Final = "equipment"


def cell_value(text: str) -> Value:
    """A property from a cell: a number or boolean when it reads as one, else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in lowered else number


def _cell(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def assets_csv(rows: Iterable[tuple[Asset, list[str]]]) -> str:
    """The assets with their current devices, one row each, a column per property."""
    rows = list(rows)
    properties = sorted({k for asset, _ in rows for k in asset.properties} - set(COLUMNS))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, *properties])
    for asset, devices in rows:
        writer.writerow(
            [
                asset.name,
                asset.kind,
                ";".join(devices),
                *(_cell(asset.properties[k]) if k in asset.properties else "" for k in properties),
            ]
        )
    return out.getvalue()


def _reason(exc: PayloadError) -> str:
    prefix = f"{exc.field}: "
    return exc.message.removeprefix(prefix) if exc.field else exc.message


async def import_assets_csv(store: Store, tenant_id: int, text: str) -> list[Asset]:
    """Create every asset of a CSV and assign its devices, or none.

    Every row is checked first; :class:`ImportRejected` lists every error by row number (the
    header is row 1).
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "name" not in columns:
        raise ImportRejected([RowError(1, "name", "missing column 'name'; the header needs name")])
    errors: list[RowError] = []
    planned: list[tuple[str, str, dict[str, Value], list[int]]] = []
    seen_names: set[str] = set()
    seen_devices: dict[str, int] = {}
    for number, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        before = len(errors)
        name = kind = ""
        try:
            name = check_path_name(row.get("name", ""))
        except PayloadError as exc:
            errors.append(RowError(number, "name", _reason(exc)))
        if name and name in seen_names:
            errors.append(RowError(number, "name", f"{name!r} appears twice in the file"))
        seen_names.add(name)
        if name:
            try:
                await store.get_asset(tenant_id, name)
            except NotFoundError:
                pass
            else:
                errors.append(RowError(number, "name", f"an asset named {name!r} already exists"))
        try:
            kind = check_name(row.get("kind") or DEFAULT_KIND, field="kind")
        except PayloadError as exc:
            errors.append(RowError(number, "kind", _reason(exc)))
        device_pks = []
        for device_id in filter(None, (d.strip() for d in row.get("devices", "").split(";"))):
            try:
                device_pks.append((await store.get_device(device_id, tenant_id=tenant_id)).pk)
            except NotFoundError:
                errors.append(RowError(number, "devices", f"unknown device {device_id!r}"))
            if device_id in seen_devices:
                errors.append(
                    RowError(
                        number,
                        "devices",
                        f"{device_id!r} is also in row {seen_devices[device_id]}; a device "
                        "is on one asset at a time",
                    )
                )
            seen_devices[device_id] = number
        properties = {
            key: cell_value(value)
            for key, value in row.items()
            if key and key not in COLUMNS and value
        }
        if len(errors) == before:
            planned.append((name, kind, properties, device_pks))
    if errors:
        raise ImportRejected(errors)
    created = []
    at = now_ms()
    for name, kind, properties, device_pks in planned:
        asset = await store.create_asset(tenant_id, name, kind, properties)
        for pk in device_pks:
            try:
                await store.assign_device(asset.id, pk, at)
            except ConflictError:
                continue  # already assigned from a later time: keep that assignment
        created.append(asset)
    return created
