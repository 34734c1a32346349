"""Statistics rows as CSV and XLSX, for a spreadsheet. Pure.

CSV starts with a UTF-8 byte-order mark: without it Excel reads a CSV file in the machine's ANSI code page
and shows the Chinese as mojibake. Rates are fractions (0.9312), empty when their denominator is zero."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

BOM = "\ufeff"


def _cells(names: Sequence[str], row: Any) -> list[Any]:
    return [getattr(row, name) for name in names]


def to_csv(names: Sequence[str], rows: Sequence[Any], first_column: str, *, bom: bool = True) -> str:
    """CSV, with the byte-order mark unless ``bom`` is False (a terminal's, a pipe's)."""
    out = io.StringIO()
    if bom:
        out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([first_column, *names[1:]])
    for row in rows:
        writer.writerow(["" if value is None else value for value in _cells(names, row)])
    return out.getvalue()


def to_xlsx(names: Sequence[str], rows: Sequence[Any], first_column: str, title: str) -> bytes:
    """One sheet: a bold header row, then the rows; rates as percentages."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]  # Excel's limit on a sheet's name
    sheet.append([first_column, *names[1:]])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(_cells(names, row))
    for index, name in enumerate(names, start=1):
        if name.endswith("rate") or name.startswith("answer_rate"):
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = "0.00%"
    sheet.freeze_panes = "B2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
