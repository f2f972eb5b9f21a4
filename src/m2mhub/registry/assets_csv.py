"""Assets to and from CSV, the spreadsheet many fleets keep their equipment in.

Columns: ``name`` (required), ``kind`` (default ``equipment``), ``devices`` (device ids
separated by ``;``, assigned from now), and every other column is a property of the asset
(numbers and ``true``/``false`` keep their type; an empty cell is no property).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from m2mhub.core.errors import PayloadError
from m2mhub.core.values import Value
from m2mhub.registry.assets_table import (
    COLUMNS,
    DEVICE_SEPARATOR,
    AssetTable,
    TableRow,
    import_asset_table,
    property_columns,
    reject_xls,
)
from m2mhub.store.base import Store
from m2mhub.store.models import Asset


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
    properties = property_columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, *properties])
    for asset, devices in rows:
        writer.writerow(
            [
                asset.name,
                asset.kind,
                DEVICE_SEPARATOR.join(devices),
                *(_cell(asset.properties[k]) if k in asset.properties else "" for k in properties),
            ]
        )
    return out.getvalue()


def decode_csv(data: bytes) -> str:
    """The text of an uploaded CSV file (UTF-8, with or without a byte order mark)."""
    reject_xls(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"file: byte {exc.start} is not UTF-8 text; save the file as CSV UTF-8 or as an "
            "Excel workbook (.xlsx)",
            field="file",
        ) from None


def read_assets_csv(text: str) -> AssetTable:
    """The rows of a CSV asset table (the header is row 1)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    rows = []
    for number, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        properties = {
            key: cell_value(value)
            for key, value in row.items()
            if key and key not in COLUMNS and value
        }
        rows.append(
            TableRow(
                number, row.get("name", ""), row.get("kind", ""), row.get("devices", ""), properties
            )
        )
    return AssetTable(columns, rows)


async def import_assets_csv(store: Store, tenant_id: int, text: str) -> list[Asset]:
    """Create every asset of a CSV and assign its devices, or none.

    Every row is checked first; :class:`ImportRejected` lists every error by row number (the
    header is row 1).
    """
    return await import_asset_table(store, tenant_id, read_assets_csv(text))
