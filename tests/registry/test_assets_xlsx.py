"""Excel workbooks of assets: typed cells out, the same rows in, and files that are refused.

Every workbook here is written by openpyxl, as Excel and LibreOffice write them; where a test
needs what only a spreadsheet application writes (the saved result of a formula), the sheet's
XML is completed the way Excel completes it.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from m2mhub.core.errors import PayloadError
from m2mhub.registry.assets_table import TableRow
from m2mhub.registry.assets_xlsx import (
    MAX_UNPACKED_BYTES,
    XLSX_MEDIA_TYPE,
    assets_xlsx,
    is_zip,
    read_assets_xlsx,
)
from m2mhub.store.models import Asset

GENERATOR = Asset(
    id=1,
    tenant_id=1,
    name="generator-7",
    kind="generator",
    properties={
        "rated_kw": 250,
        "efficiency": 0.93,
        "standby": True,
        "commissioned": "2021-04-01",
        "serviced": "2024-11-05T08:30:00",
        "site": "north",
        "note": '=HYPERLINK("http://example.com")',
    },
    created_ms=0,
)
PUMP = Asset(id=2, tenant_id=1, name="pump-1", kind="pump", properties={}, created_ms=0)


def workbook(*rows: list[object], title: str = "Sheet1") -> bytes:
    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = title
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_saved(data: bytes, cell: str, saved: str) -> bytes:
    """The workbook as a spreadsheet application saves it: the formula cell ``cell`` (as
    openpyxl wrote it, without a result) replaced by ``saved``, the cell with its result."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            part = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                assert cell.encode() in part
                part = part.replace(cell.encode(), saved.encode())
            target.writestr(item, part)
    return out.getvalue()


def test_the_export_has_the_csv_columns_typed_cells_and_a_frozen_header() -> None:
    data = assets_xlsx([(GENERATOR, ["meter-1", "meter-2"]), (PUMP, [])])
    assert is_zip(data)
    sheet = load_workbook(io.BytesIO(data)).active
    assert isinstance(sheet, Worksheet)
    assert sheet.title == "assets"
    header = [c.value for c in sheet[1]]
    assert header == [
        "name",
        "kind",
        "devices",
        "commissioned",
        "efficiency",
        "note",
        "rated_kw",
        "serviced",
        "site",
        "standby",
    ]
    assert all(c.font.b for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    row = {h: c for h, c in zip(header, sheet[2], strict=True)}
    assert row["devices"].value == "meter-1;meter-2"
    assert (row["rated_kw"].value, row["rated_kw"].data_type) == (250, "n")
    assert (row["efficiency"].value, row["efficiency"].data_type) == (0.93, "n")
    assert (row["standby"].value, row["standby"].data_type) == (True, "b")
    assert row["commissioned"].value == datetime(2021, 4, 1)
    assert row["commissioned"].number_format == "yyyy-mm-dd"
    assert row["serviced"].value == datetime(2024, 11, 5, 8, 30)
    assert row["serviced"].is_date
    # Text that looks like a formula stays text: an export must not run anything.
    assert (row["note"].value, row["note"].data_type) == (GENERATOR.properties["note"], "s")
    assert [c.value for c in sheet[3]][:3] == ["pump-1", "pump", None]
    widths = {k: d.width for k, d in sheet.column_dimensions.items()}
    assert widths["A"] == len("generator-7") + 2
    assert widths["H"] == len("yyyy-mm-dd hh:mm:ss") + 2
    assert all(8 <= w <= 60 for w in widths.values())


def test_an_export_reads_back_as_the_same_rows() -> None:
    table = read_assets_xlsx(assets_xlsx([(GENERATOR, ["meter-1"]), (PUMP, [])]))
    assert table.errors == []
    assert table.columns[:3] == ["name", "kind", "devices"]
    assert table.rows == [
        TableRow(2, "generator-7", "generator", "meter-1", GENERATOR.properties),
        TableRow(3, "pump-1", "pump", "", {}),
    ]


def test_rows_keep_their_excel_numbers_and_cells_their_types() -> None:
    data = workbook(
        ["name", "kind", "devices", "rated_kw", "installed", "spare"],
        [1001, None, 42, 7.5, date(2020, 1, 31), False],
        [],  # a blank row: skipped, and the next row is still row 4
        ["  pump-2 ", "pump", "meter-1; meter-2", None, None, "  "],
    )
    table = read_assets_xlsx(data)
    assert table.errors == []
    assert table.rows == [
        TableRow(2, "1001", "", "42", {"rated_kw": 7.5, "installed": "2020-01-31", "spare": False}),
        TableRow(4, "pump-2", "pump", "meter-1; meter-2", {}),
    ]


def test_the_sheet_named_assets_is_read_before_the_first() -> None:
    book = Workbook()
    first = book.active
    assert isinstance(first, Worksheet)
    first.append(["notes"])
    second = book.create_sheet("Assets")
    second.append(["name"])
    second.append(["truck-1"])
    out = io.BytesIO()
    book.save(out)
    assert [r.name for r in read_assets_xlsx(out.getvalue()).rows] == ["truck-1"]
    only_first = workbook(["name"], ["truck-2"], title="Equipment")
    assert [r.name for r in read_assets_xlsx(only_first).rows] == ["truck-2"]


def test_a_formula_counts_with_its_saved_result() -> None:
    data = as_saved(
        workbook(["name", "rated_kw"], ["gen-1", "=100*2.5"]),
        '<c r="B2"><f>100*2.5</f><v /></c>',
        '<c r="B2"><f>100*2.5</f><v>250</v></c>',
    )
    table = read_assets_xlsx(data)
    assert table.errors == []
    assert table.rows[0].properties == {"rated_kw": 250}


def test_a_formula_without_a_saved_result_is_an_error_naming_its_cell() -> None:
    table = read_assets_xlsx(workbook(["name", "rated_kw"], ["gen-1", 250], ["gen-2", "=B2*2"]))
    assert [(e.row, e.field) for e in table.errors] == [(3, "rated_kw")]
    message = table.errors[0].message
    assert "cell B3 holds the formula =B2*2 but no saved result" in message
    assert "save it, and import it again" in message


def test_an_error_value_is_an_error_naming_its_cell() -> None:
    data = as_saved(
        workbook(["name", "rated_kw"], ["gen-1", "=1/0"]),
        '<c r="B2"><f>1/0</f><v /></c>',
        '<c r="B2" t="e"><f>1/0</f><v>#DIV/0!</v></c>',  # as Excel saves an error result
    )
    table = read_assets_xlsx(data)
    assert [(e.row, e.field) for e in table.errors] == [(2, "rated_kw")]
    assert "cell B2 holds the error #DIV/0!" in table.errors[0].message


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"name,kind\ngen-1,generator\n",
            "but text, perhaps a CSV file renamed: import it as .csv",
        ),
        (b"\x00\x01\x02\xff" * 10, "(every .xlsx is a zip archive): save the sheet"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504, "Excel 97-2003 workbook (.xls)"),
        (b"PK\x03\x04 cut short", "damaged"),
    ],
    ids=["csv-renamed", "binary", "xls", "truncated-zip"],
)
def test_a_file_that_is_not_a_workbook_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as refused:
        read_assets_xlsx(data)
    assert refused.value.field == "file"
    assert reason in refused.value.message


def test_a_zip_archive_that_is_not_a_workbook_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("assets.csv", "name\ngen-1\n")
    with pytest.raises(PayloadError, match="this zip archive is not an Excel workbook"):
        read_assets_xlsx(out.getvalue())
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")  # the parts a workbook needs: none
    with pytest.raises(PayloadError, match="the workbook could not be read"):
        read_assets_xlsx(out.getvalue())


def test_a_workbook_that_unpacks_past_the_cap_is_refused_before_it_is_parsed() -> None:
    out = io.BytesIO(workbook(["name"], ["gen-1"]))
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", bytes(MAX_UNPACKED_BYTES))
    data = out.getvalue()
    assert len(data) < 1024 * 1024  # a small upload...
    with pytest.raises(PayloadError, match=r"unpacks to 64\.0 MiB, more than the 64 MiB"):
        read_assets_xlsx(data)  # ...that would be large once unpacked


def test_rows_past_the_cap_are_refused() -> None:
    data = workbook(["name"], *([f"gen-{i}"] for i in range(4)))
    assert len(read_assets_xlsx(data, max_rows=4).rows) == 4
    with pytest.raises(PayloadError, match="goes on past row 4; an import takes at most 3 rows"):
        read_assets_xlsx(data, max_rows=3)


def test_the_media_type_is_the_registered_one() -> None:
    assert XLSX_MEDIA_TYPE == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
