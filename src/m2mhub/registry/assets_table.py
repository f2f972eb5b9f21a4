"""The asset table that CSV and Excel files share: its columns, and importing its rows.

Columns: ``name`` (required), ``kind`` (default ``equipment``), ``devices`` (device ids
separated by ``;``, assigned from now), and every other column is a property of the asset.
Each file format reads its cells into :class:`TableRow` values; the checks and the all-or-nothing
creation are the same for every format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
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
#: Separates the device ids in the ``devices`` column.
DEVICE_SEPARATOR: Final = ";"
# The signature of an OLE2 compound file, which is what an Excel 97-2003 ``.xls`` is
# ([MS-CFB] 2.2, header signature).
_OLE2_SIGNATURE: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class TableRow:
    """One row of an asset table as a file holds it.

    ``number`` is the row as the user sees it in the file (the header is row 1);
    ``properties`` have their type (number, boolean or text) and leave out empty cells.
    """

    number: int
    name: str
    kind: str
    devices: str
    properties: dict[str, Value]


@dataclass(frozen=True)
class AssetTable:
    """The header and rows of a file, and the cells that could not be read at all."""

    columns: list[str]
    rows: list[TableRow]
    errors: list[RowError] = field(default_factory=list)


def property_columns(rows: Iterable[tuple[Asset, list[str]]]) -> list[str]:
    """The property columns of an export: every property of any asset, by name."""
    return sorted({k for asset, _ in rows for k in asset.properties} - set(COLUMNS))


def reject_xls(data: bytes) -> None:
    """Refuse an Excel 97-2003 workbook, which neither the CSV nor the Excel import reads."""
    if data.startswith(_OLE2_SIGNATURE):
        raise PayloadError(
            "file: this is an Excel 97-2003 workbook (.xls); save it as an Excel workbook "
            "(.xlsx) or as CSV UTF-8 and import that",
            field="file",
        )


def _reason(exc: PayloadError) -> str:
    prefix = f"{exc.field}: "
    return exc.message.removeprefix(prefix) if exc.field else exc.message


async def import_asset_table(store: Store, tenant_id: int, table: AssetTable) -> list[Asset]:
    """Create every asset of ``table`` and assign its devices, or none.

    Every row is checked first; :class:`ImportRejected` lists every error (those found while
    reading the file too) by row number.
    """
    if "name" not in table.columns:
        raise ImportRejected([RowError(1, "name", "missing column 'name'; the header needs name")])
    errors: list[RowError] = []
    planned: list[tuple[str, str, dict[str, Value], list[int]]] = []
    seen_names: set[str] = set()
    seen_devices: dict[str, int] = {}
    for row in table.rows:
        number = row.number
        before = len(errors)
        name = kind = ""
        try:
            name = check_path_name(row.name)
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
            kind = check_name(row.kind or DEFAULT_KIND, field="kind")
        except PayloadError as exc:
            errors.append(RowError(number, "kind", _reason(exc)))
        device_pks = []
        ids = (d.strip() for d in row.devices.split(DEVICE_SEPARATOR))
        for device_id in filter(None, ids):
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
        if len(errors) == before:
            planned.append((name, kind, row.properties, device_pks))
    if table.errors or errors:
        # Stable: a row's unreadable cells come before what the checks found in it.
        raise ImportRejected(sorted([*table.errors, *errors], key=lambda e: e.row))
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
