"""Tables for people at any width: names and ids are never broken, cut or padded.

Pure text (no rich): the reporter styles the cells. A table that fits is aligned; one that does not keeps
its leading columns (up to the name) aligned and folds the rest onto indented lines under each row,
breaking only between values and at spaces of descriptive text, never inside a value.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

GAP = "  "
INDENT = "    "


@dataclass(frozen=True)
class Column:
    header: str
    wrap: bool = False  # descriptive text, may wrap at spaces; identifiers never do
    right: bool = False  # amounts: aligned on the right, and named by their header when folded under the row


Cell = tuple[str, str]  # (text, style); text may hold several lines
Line = list[Cell]  # segments of one output line


def table(columns: list[Column], rows: list[list[Cell]], width: int, head: int) -> list[Line]:
    """Lines of the table; `head`: how many leading columns stay on the row's first line when folding."""
    keep = [i for i in range(len(columns)) if any(row[i][0] for row in rows)]  # a column empty for every row: dropped
    columns = [columns[i] for i in keep]
    rows = [[row[i] for i in keep] for row in rows]
    head = len([i for i in keep if i < head])
    widths = [max([len(c.header)] + [_longest(row[i][0]) for row in rows]) for i, c in enumerate(columns)]
    if _total(widths) <= width:
        return _aligned(columns, rows, widths)
    narrowed = _narrow(columns, rows, widths, width)
    if narrowed is not None:  # the descriptive columns wrap at spaces into what the identifiers leave
        wrapped = [[(_wrap(cell[0], w), cell[1]) if c.wrap else cell for cell, c, w in zip(row, columns, narrowed)] for row in rows]
        return _aligned(columns, wrapped, narrowed)
    return _folded(columns, rows, widths, head, width)


def _narrow(columns: list[Column], rows: list[list[Cell]], widths: list[int], width: int) -> list[int] | None:
    """Widths that fit, taken from the descriptive columns only (each kept readable), or None."""
    wraps = [i for i, c in enumerate(columns) if c.wrap]
    room = width - _total(widths) + sum(widths[i] for i in wraps)
    least = {i: max(min(widths[i], 20), max((_longest_word(row[i][0]) for row in rows), default=0)) for i in wraps}
    if not wraps or sum(least.values()) > room:
        return None
    narrowed = list(widths)
    for i in wraps:
        narrowed[i] = least[i]
    spare = room - sum(least.values())
    while spare > 0:  # the rest evenly: one column at a time, the narrowest still short of its natural width
        short = [i for i in wraps if narrowed[i] < widths[i]]
        if not short:
            break
        narrowed[min(short, key=lambda i: narrowed[i])] += 1
        spare -= 1
    return narrowed


def pairs(items: list[tuple[str, str]], width: int) -> list[str]:
    """`key  value` lines, keys aligned; a value that would run past the width goes on its own line."""
    key_width = max((len(k) for k, _ in items), default=0)
    lines = []
    for key, value in items:
        if key_width + len(GAP) + len(value) <= width:
            lines.append(f"{key.ljust(key_width)}{GAP}{value}".rstrip())
        else:
            lines += [key, f"{INDENT}{value}"]
    return lines


def _aligned(columns: list[Column], rows: list[list[Cell]], widths: list[int]) -> list[Line]:
    right = [c.right for c in columns]
    lines = [_join([(c.header, "bold") for c in columns], widths, right)]
    for row in rows:
        split = [cell[0].split("\n") for cell in row]
        for n in range(max(len(s) for s in split)):
            lines.append(_join([(s[n] if n < len(s) else "", cell[1]) for s, cell in zip(split, row)], widths, right))
    return lines


def _folded(columns: list[Column], rows: list[list[Cell]], widths: list[int], head: int, width: int) -> list[Line]:
    head_widths = widths[:head] if _total(widths[:head]) <= width else None
    lines: list[Line] = []
    for row in rows:
        first = row[:head]
        if head_widths is not None:
            lines.append(_join(first, head_widths))
        else:  # even the leading columns do not fit side by side: one value after another
            lines += _flow([cell for cell in first if cell[0]], width, "")
        rest = [(cell, column) for cell, column in zip(row[head:], columns[head:]) if cell[0]]
        last_wraps = columns[-1].wrap and rest and rest[-1][0] is row[-1]
        values = rest[:-1] if last_wraps else rest
        room = width - len(INDENT)
        lines += _flow([
            (f"{column.header} {part}" if column.right else part, style)
            for (text, style), column in values for part in (_wrap(text, room) if column.wrap else text).split("\n")
        ], width, INDENT)
        if last_wraps:
            for text in row[-1][0].split("\n"):
                lines += [[(f"{INDENT}{part}", row[-1][1])] for part in _wrap(text, width - len(INDENT)).split("\n")]
    return lines


def _flow(cells: list[Cell], width: int, indent: str) -> list[Line]:
    """Cells side by side, a new (indented) line whenever the next would run past the width."""
    lines: list[Line] = []
    current: Line = []
    used = 0
    for text, style in cells:
        if current and used + len(GAP) + len(text) > width:
            lines.append(current)
            current, used = [], 0
        if not current:
            current, used = [(indent, "")], len(indent)
        else:
            current.append((GAP, ""))
            used += len(GAP)
        current.append((text, style))
        used += len(text)
    if current:
        lines.append(current)
    return lines


def _join(cells: list[Cell], widths: list[int], right: list[bool] | None = None) -> Line:
    line: Line = []
    for n, ((text, style), w) in enumerate(zip(cells, widths)):
        if n:
            line.append((GAP, ""))
        if right and right[n]:
            line.append((" " * (w - len(text)), ""))
        line.append((text, style))
        if not (right and right[n]):
            line.append((" " * (w - len(text)), ""))
    while line and not line[-1][0].strip():  # no padding at the end of a line
        line.pop()
    return line


def _wrap(text: str, width: int) -> str:
    return "\n".join(
        part for line in text.split("\n")
        for part in (textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""])
    )


def _total(widths: list[int]) -> int:
    return sum(widths) + len(GAP) * max(len(widths) - 1, 0)


def _longest(text: str) -> int:
    return max((len(line) for line in text.split("\n")), default=0)


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)
