"""Terminal tables that never cut a name.

Rich fits a table that is wider than the terminal by cutting cells (``xquad-r-…``, ``colbert-…``), and a
reader can then no longer tell rows or columns apart. Here every cell keeps its full text: a table of
numbers too wide for the terminal is split into several, each repeating the first column
(:func:`print_columns`), and a table of records is stacked, one block per record (:func:`print_records`).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def table_width(widths: Sequence[int]) -> int:
    """Characters a rich table with these column widths takes (one space of padding, one border)."""
    return sum(w + 3 for w in widths) + 1


def column_groups(key_width: int, widths: Sequence[int], total: int) -> list[list[int]]:
    """Split columns (by position) into runs that fit ``total`` next to the key column, in order.

    >>> column_groups(10, [11, 11, 11, 11], 60)
    [[0, 1, 2], [3]]
    """
    groups: list[list[int]] = [[]]
    for i, width in enumerate(widths):
        trial = [key_width] + [widths[j] for j in groups[-1]] + [width]
        if groups[-1] and table_width(trial) > total:
            groups.append([])
        groups[-1].append(i)
    return groups


def print_columns(
    console: Console,
    title: str,
    key_header: str,
    rows: Sequence[tuple[str, Sequence[str]]],
    headers: Sequence[str],
    bold_last: bool = False,
) -> None:
    """A table of ``(key, cells)`` rows under ``headers``; too wide: several tables, the key repeated."""
    key_width = max([len(key_header), *(len(key) for key, _ in rows)])
    widths = [max([len(h), *(len(cells[i]) for _, cells in rows)]) for i, h in enumerate(headers)]
    groups = column_groups(key_width, widths, console.width)
    for n, group in enumerate(groups):
        suffix = f" ({n + 1}/{len(groups)})" if len(groups) > 1 else ""
        table = Table(title=title + suffix)
        table.add_column(key_header, no_wrap=True, min_width=key_width)
        for i in group:
            table.add_column(headers[i], justify="right", no_wrap=True, min_width=widths[i])
        for r, (key, cells) in enumerate(rows):
            style = "bold" if bold_last and r == len(rows) - 1 else None
            table.add_row(key, *(cells[i] for i in group), style=style)
        console.print(table)


def print_records(
    console: Console, title: str, headers: Sequence[str], records: Sequence[Sequence[str]]
) -> None:
    """One row per record when the whole table fits; otherwise one block per record, name first."""
    widths = [max([len(h), *(len(r[i]) for r in records)]) for i, h in enumerate(headers)]
    if table_width(widths) <= console.width:
        table = Table(title=title)
        for header, width in zip(headers, widths, strict=True):
            table.add_column(header, no_wrap=True, min_width=width)
        for record in records:
            table.add_row(*record)
        console.print(table)
        return
    console.print(f"[bold]{title}[/]")
    label = max(len(h) for h in headers[1:])
    for record in records:
        console.print()
        console.print(record[0], style="bold", soft_wrap=True)
        for header, value in zip(headers[1:], record[1:], strict=True):
            console.print(f"  {header:<{label}}  {value}", soft_wrap=True, highlight=False)
