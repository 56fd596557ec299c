"""Reading a CSV import row by row, with errors that name the line and the column.

Budgets and expenses arrive as spreadsheets exported by people and finance systems: a BOM
from Excel, semicolons from a European locale, a header in another case, a decimal comma.
Imports are all or nothing: every row is checked first, and one bad row rejects the whole
file with ``line N, column C: what is wrong`` so it can be fixed at the source and imported
again, never half applied.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from connector.money import CurrencyError, normalize_currency, to_decimal

MAX_REPORTED = 20


class RowError(ValueError):
    """One cell (or row) that cannot be imported."""

    def __init__(self, line: int, column: str | None, message: str) -> None:
        self.line = line
        self.column = column
        self.message = message
        where = f"line {line}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")


class CsvRejected(Exception):
    """The file was not applied; ``errors`` lists every problem found (up to a limit)."""

    def __init__(self, path: str, errors: Sequence[RowError]) -> None:
        self.path = path
        self.errors = list(errors)
        more = len(self.errors) - 1
        tail = (
            f" (and {more} more: {', '.join(_where(e) for e in self.errors[1:6])})" if more else ""
        )
        super().__init__(f"{path}: {self.errors[0]}{tail}; nothing of the file was applied")


def _where(error: RowError) -> str:
    return f"line {error.line}" + (f" {error.column}" if error.column else "")


@dataclass(frozen=True)
class CsvRow:
    """One data row: its line number in the file (the header is line 1) and its cells."""

    line: int
    cells: dict[str, str]

    def text(self, column: str) -> str:
        return (self.cells.get(column) or "").strip()

    def required(self, column: str) -> str:
        value = self.text(column)
        if not value:
            raise RowError(self.line, column, "is empty")
        return value

    def amount(self, column: str) -> Decimal:
        raw = self.required(column)
        try:
            return to_decimal(raw)
        except (TypeError, ValueError):
            hint = ""
            if "," in raw:
                hint = " (write 1234.50: no thousands separators, a dot for decimals)"
            raise RowError(self.line, column, f"{raw!r} is not an amount{hint}") from None

    def day(self, column: str) -> date:
        raw = self.required(column)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise RowError(
                self.line, column, f"{raw!r} is not a date; write it as 2026-11-23"
            ) from None

    def currency(self, column: str, default: str) -> str:
        raw = self.text(column) or default
        try:
            return normalize_currency(raw)
        except CurrencyError as exc:
            raise RowError(self.line, column, str(exc)) from None


def _canonical(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def read_rows(
    path: Path, *, required: Sequence[str], optional: Sequence[str] = ()
) -> tuple[list[CsvRow], list[str]]:
    """The data rows of ``path`` and the header's columns this import does not use.

    Header names are matched without regard to case, spaces or dashes (``Campaign ID`` is
    ``campaign_id``); the delimiter may be a comma, a semicolon or a tab. Raises
    :class:`CsvRejected` for a missing column or a malformed row.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvRejected(
            str(path), [RowError(1, None, f"is not UTF-8 text (byte {exc.start})")]
        ) from None
    first_line = text.split("\n", 1)[0]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(first_line, ",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvRejected(str(path), [RowError(1, None, "the file is empty")]) from None
    columns = [_canonical(name) for name in header]
    missing = [c for c in required if c not in columns]
    if missing:
        raise CsvRejected(
            str(path),
            [
                RowError(1, c, f"missing from the header (found: {', '.join(columns)})")
                for c in missing
            ],
        )
    duplicated = sorted({c for c in columns if c and columns.count(c) > 1})
    if duplicated:
        raise CsvRejected(
            str(path), [RowError(1, c, "appears twice in the header") for c in duplicated]
        )
    ignored = [c for c in columns if c not in required and c not in optional]
    rows: list[CsvRow] = []
    errors: list[RowError] = []
    for line, cells in _records(reader):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns) :]):
            errors.append(
                RowError(line, None, f"has {len(cells)} cells, the header has {len(columns)}")
            )
            continue
        rows.append(CsvRow(line, dict(zip(columns, cells, strict=False))))
    if errors:
        raise CsvRejected(str(path), errors[:MAX_REPORTED])
    return rows, ignored


def _records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Rows with the line each starts on (a quoted cell may span several lines)."""
    last = getattr(reader, "line_num", 1)
    for cells in reader:
        yield last + 1, cells
        last = reader.line_num  # type: ignore[attr-defined]
