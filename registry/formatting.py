"""Plain-text rendering shared by the registry's commands (tables, times, numbers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime


def format_time(moment: datetime | None) -> str:
    """Render a UTC time to the second, or "-" when absent."""
    if moment is None:
        return "-"
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def format_number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_text(value: object | None) -> str:
    return "-" if value is None or value == "" else str(value)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Return aligned lines: a header, then one line per row; columns are two spaces apart."""
    text_rows = [[format_text(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in text_rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row)]
    lines = []
    for row in [list(headers), *text_rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return lines

