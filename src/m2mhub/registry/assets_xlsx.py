"""Assets to and from Excel workbooks (``.xlsx``, Office Open XML, ECMA-376).

The columns are those of the CSV (:mod:`m2mhub.registry.assets_table`), and cells keep their
type: numbers, booleans, text and dates. A property held as ``YYYY-MM-DD`` or
``YYYY-MM-DDTHH:MM:SS`` is a date cell in the export; a date cell is that text in the import.

The import reads the sheet named ``assets`` (in any case) or, without one, the first sheet; row 1
is the header and blank rows are skipped. Formulas are not calculated here: the result that Excel
or LibreOffice saved with the file is read, and a formula saved without a result is refused,
naming its cell. An upload is a zip archive, so its parts, rows and cells are capped: a small
file cannot unpack into a large one.
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from datetime import date, datetime, time, timedelta
from typing import Final, NamedTuple
from xml.etree.ElementTree import ParseError

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Font
from openpyxl.styles.numbers import is_datetime
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet.worksheet import Worksheet

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
from m2mhub.registry.service import RowError
from m2mhub.store.base import Store
from m2mhub.store.models import Asset

#: The media type of an ``.xlsx`` workbook (ECMA-376 Part 2, registered with IANA).
XLSX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: The sheet the import prefers, and the one the export writes.
SHEET_NAME: Final = "assets"
#: Data rows one import takes (the header comes on top).
MAX_ROWS: Final = 50_000
#: Columns one import reads.
MAX_COLUMNS: Final = 200
#: Cells holding something, over the whole sheet.
MAX_CELLS: Final = 1_000_000
#: What the archive may unpack to; a bigger workbook is split or stripped of pictures.
MAX_UNPACKED_BYTES: Final = 64 * 1024 * 1024
#: Parts in the archive; a workbook of a few sheets has a few dozen.
MAX_PARTS: Final = 1_000

# Every zip archive starts with a local file header (APPNOTE.TXT 4.3.7).
_ZIP_SIGNATURE: Final = b"PK\x03\x04"
# Text that round-trips through a date cell exactly.
_DATE_TEXT: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_TEXT: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_DATE_FORMAT: Final = "yyyy-mm-dd"
_DATETIME_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"
_MIN_WIDTH: Final = 8
_MAX_WIDTH: Final = 60


def is_zip(data: bytes) -> bool:
    """True when ``data`` starts as a zip archive does, as every ``.xlsx`` does."""
    return data.startswith(_ZIP_SIGNATURE)


# -- export ----------------------------------------------------------------------------


def _put(cell: Cell, value: Value) -> int:
    """Write ``value`` into ``cell`` with its type; the width it needs, in characters."""
    if isinstance(value, str):
        if _DATE_TEXT.fullmatch(value):
            try:
                cell.value = date.fromisoformat(value)
            except ValueError:
                pass  # 2024-02-30 and the like stay text
            else:
                cell.number_format = _DATE_FORMAT
                return len(_DATE_FORMAT)
        if _DATETIME_TEXT.fullmatch(value):
            try:
                cell.value = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                cell.number_format = _DATETIME_FORMAT
                return len(_DATETIME_FORMAT)
        # XML 1.0 cannot carry most control characters; openpyxl refuses them.
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell.data_type = "s"  # text that starts with "=" stays text, not a formula
        return len(value)
    cell.value = value
    return 5 if isinstance(value, bool) else len(str(value))


def assets_xlsx(rows: Iterable[tuple[Asset, list[str]]]) -> bytes:
    """The assets with their current devices as a workbook: the CSV's columns, typed cells.

    The header row is bold, frozen and filtered; columns are as wide as their content (within
    limits). Blocking: run it off the event loop.
    """
    rows = list(rows)
    properties = property_columns(rows)
    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)  # a new workbook has one sheet of cells
    sheet.title = SHEET_NAME
    header = [*COLUMNS, *properties]
    widths = [len(h) for h in header]
    bold = Font(bold=True)
    for column, title in enumerate(header, start=1):
        cell = sheet.cell(1, column)
        assert isinstance(cell, Cell)  # not a merged cell: the sheet is new
        _put(cell, title)
        cell.font = bold
    for number, (asset, devices) in enumerate(rows, start=2):
        values: list[Value | None] = [
            asset.name,
            asset.kind,
            DEVICE_SEPARATOR.join(devices),
            *(asset.properties.get(k) for k in properties),
        ]
        for column, value in enumerate(values, start=1):
            if value is None or value == "":
                continue
            cell = sheet.cell(number, column)
            assert isinstance(cell, Cell)
            width = _put(cell, value)
            widths[column - 1] = max(widths[column - 1], width)
    for column, width in enumerate(widths, start=1):
        letter = get_column_letter(column)
        sheet.column_dimensions[letter].width = min(max(width + 2, _MIN_WIDTH), _MAX_WIDTH)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(header))}{len(rows) + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- import ----------------------------------------------------------------------------


class _Cell(NamedTuple):
    """A cell with something in it, as read from the sheet."""

    column: int
    value: object
    number_format: str
    formula: str | None  # a formula saved without its result
    error: bool  # an error value such as #DIV/0!


def _not_a_workbook(data: bytes) -> PayloadError:
    reject_xls(data)
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        what = "(every .xlsx is a zip archive):"
    else:
        what = "but text, perhaps a CSV file renamed: import it as .csv, or"
    return PayloadError(
        f"file: this is not an Excel workbook (.xlsx) {what} save the sheet from Excel or "
        "LibreOffice as .xlsx",
        field="file",
    )


def _check_archive(data: bytes) -> None:
    if not is_zip(data):
        raise _not_a_workbook(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise PayloadError(
            "file: the workbook is damaged (an incomplete zip archive); save it again from "
            "Excel or LibreOffice",
            field="file",
        ) from None
    if len(parts) > MAX_PARTS:
        raise PayloadError(
            f"file: the workbook has {len(parts)} parts, more than the {MAX_PARTS} an import "
            "reads; save the asset sheet alone as .xlsx",
            field="file",
        )
    # ZipFile stops every part at the size its directory declares, so this sum bounds
    # what openpyxl can unpack, whatever the compressed data says.
    unpacked = sum(p.file_size for p in parts)
    if unpacked > MAX_UNPACKED_BYTES:
        raise PayloadError(
            f"file: the workbook unpacks to {unpacked / 2**20:.1f} MiB, more than the "
            f"{MAX_UNPACKED_BYTES // 2**20} MiB an import reads; save the asset sheet alone, "
            "without pictures, as .xlsx",
            field="file",
        )
    if not any(p.filename == "[Content_Types].xml" for p in parts):
        raise PayloadError(
            "file: this zip archive is not an Excel workbook (.xlsx); save the sheet from "
            "Excel or LibreOffice as .xlsx",
            field="file",
        )


def _choose(sheets: Sequence[object]) -> ReadOnlyWorksheet:
    cells = [s for s in sheets if isinstance(s, ReadOnlyWorksheet)]  # not chart sheets
    if not cells:
        raise PayloadError("file: the workbook has no sheet of cells", field="file")
    named = (s for s in cells if s.title.strip().casefold() == SHEET_NAME)
    return next(named, cells[0])


def _rows(sheet: ReadOnlyWorksheet) -> Iterator[tuple[object, ...]]:
    # The stubs declare iter_rows on Worksheet only; ReadOnlyWorksheet has its own.
    rows: Iterator[tuple[object, ...]] = sheet.iter_rows(max_col=MAX_COLUMNS)  # type: ignore[misc]
    return rows


def _formula_text(value: object) -> str:
    text = str(getattr(value, "text", value))  # ArrayFormula keeps its formula in .text
    return text if text.startswith("=") else f"={text}"


def _read_cells(data: bytes, max_rows: int) -> list[tuple[int, list[_Cell]]]:
    """The rows of the sheet that have something in them, by row number.

    openpyxl drops either a formula's result or its text, so the workbook is read twice, in
    step: once for the saved results, once to find the formulas among the empty results.
    """
    with (
        closing(load_workbook(io.BytesIO(data), read_only=True, data_only=True)) as values_book,
        closing(load_workbook(io.BytesIO(data), read_only=True, data_only=False)) as formulas_book,
    ):
        values_sheet = _choose(values_book.worksheets)
        formulas_sheet = formulas_book[values_sheet.title]
        assert isinstance(formulas_sheet, ReadOnlyWorksheet)
        declared = values_sheet.max_column
        if declared is not None and declared > MAX_COLUMNS:
            raise PayloadError(
                f"file: the sheet {values_sheet.title!r} is {declared} columns wide (to column "
                f"{get_column_letter(declared)}), more than the {MAX_COLUMNS} an import reads; "
                "delete the columns right of the table",
                field="file",
            )
        rows: list[tuple[int, list[_Cell]]] = []
        cells = 0
        pairs: Iterator[tuple[tuple[object, ...], tuple[object, ...]]] = zip(
            _rows(values_sheet),
            _rows(formulas_sheet),
            strict=True,
        )
        for number, (value_row, formula_row) in enumerate(pairs, start=1):
            if number > max_rows + 1:
                raise PayloadError(
                    f"file: the sheet {values_sheet.title!r} goes on past row {max_rows + 1}; "
                    f"an import takes at most {max_rows} rows under the header: split the "
                    "file, or delete the rows below the table",
                    field="file",
                )
            found = []
            for column, (held, formula) in enumerate(
                zip(value_row, formula_row, strict=True), start=1
            ):
                value = getattr(held, "value", None)
                saved_formula = (
                    _formula_text(getattr(formula, "value", None))
                    if value is None and getattr(formula, "data_type", None) == "f"
                    else None
                )
                if value is None and saved_formula is None:
                    continue
                found.append(
                    _Cell(
                        column,
                        value,
                        str(getattr(held, "number_format", None) or "General"),
                        saved_formula,
                        getattr(held, "data_type", None) == "e",
                    )
                )
            cells += len(found)
            if cells > MAX_CELLS:
                raise PayloadError(
                    f"file: the sheet {values_sheet.title!r} has more than {MAX_CELLS} cells "
                    "with content; split the file",
                    field="file",
                )
            if found:
                rows.append((number, found))
        return rows


def _typed(cell: _Cell) -> Value | None:
    """The value of a cell as a property; None for no value."""
    value = cell.value
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        if is_datetime(cell.number_format) == "date":
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, timedelta):
        return str(value)
    return None if value is None else str(value)


def _text(value: Value | None) -> str:
    """A cell as text, for the name, kind and devices columns."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an id typed as a number: 1001, not 1001.0
    return str(value)


def _cell_error(number: int, field: str, coordinate: str, cell: _Cell) -> RowError | None:
    if cell.formula is not None:
        return RowError(
            number,
            field,
            f"cell {coordinate} holds the formula {cell.formula} but no saved result; open the "
            "file in Excel or LibreOffice, save it, and import it again (formulas are not "
            "calculated on import)",
        )
    if cell.error:
        return RowError(
            number,
            field,
            f"cell {coordinate} holds the error {cell.value}; correct the formula or clear "
            "the cell",
        )
    return None


def read_assets_xlsx(data: bytes, *, max_rows: int = MAX_ROWS) -> AssetTable:
    """The rows of an asset table in an ``.xlsx`` workbook, numbered as Excel shows them.

    Raises :class:`PayloadError` (field ``file``) for a file that is not a workbook or is too
    large; cells that cannot be read (a formula without a saved result, an error value) are
    the table's errors. Blocking: run it off the event loop.
    """
    _check_archive(data)
    try:
        rows = _read_cells(data, max_rows)
    except PayloadError:
        raise
    # openpyxl raises whatever its parsers meet in a missing or malformed part.
    except (
        InvalidFileException,
        zipfile.BadZipFile,
        OSError,
        KeyError,
        ValueError,
        TypeError,
        ParseError,
    ):
        raise PayloadError(
            "file: the workbook could not be read (a part is missing or malformed); open it "
            "in Excel or LibreOffice and save it again as .xlsx",
            field="file",
        ) from None
    if not rows or rows[0][0] != 1:
        return AssetTable([], [])  # no header: the import names the missing column
    errors: list[RowError] = []
    header: dict[int, str] = {}
    for cell in rows[0][1]:
        coordinate = f"{get_column_letter(cell.column)}1"
        problem = _cell_error(1, coordinate, coordinate, cell)
        if problem:
            errors.append(problem)
        else:
            header[cell.column] = _text(_typed(cell)).strip()
    table_rows = []
    for number, cells in rows[1:]:
        text = dict.fromkeys(COLUMNS, "")
        properties: dict[str, Value] = {}
        for cell in cells:
            letter = get_column_letter(cell.column)
            field = header.get(cell.column, "")
            problem = _cell_error(number, field or letter, f"{letter}{number}", cell)
            if problem:
                errors.append(problem)
                continue
            value = _typed(cell)
            if not field or value is None:
                continue  # like the CSV: a column without a header is not read
            if field in text:
                text[field] = _text(value)
            else:
                properties[field] = value
        if all(_typed(c) is None and c.formula is None and not c.error for c in cells):
            continue  # a row of blank text: skipped like an empty one
        table_rows.append(TableRow(number, text["name"], text["kind"], text["devices"], properties))
    return AssetTable(list(header.values()), table_rows, errors)


async def import_assets_xlsx(store: Store, tenant_id: int, data: bytes) -> list[Asset]:
    """Create every asset of an ``.xlsx`` workbook and assign its devices, or none.

    The workbook is parsed in a worker thread; the checks are those of the CSV import and
    :class:`~m2mhub.registry.ImportRejected` lists every error by its row in Excel.
    """
    table = await asyncio.to_thread(read_assets_xlsx, data)
    return await import_asset_table(store, tenant_id, table)
