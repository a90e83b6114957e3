"""Text from outside (scanned codes, city fields) made safe where people see it.

Scanner input is untrusted bytes. Shown raw it can drive a terminal (ESC[2J clears the screen,
other sequences retitle windows or fake lines), and a NUL byte cuts a code short in C strings.
Written into a spreadsheet, a value starting with '=', '+', '-', '@', tab or CR becomes a formula
when a manager opens the file. Every output point passes such text through these helpers; the
raw bytes stay in the journal as hex for evidence.
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Control, format (bidi overrides), line/paragraph separators, surrogates and private use.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
# OWASP "CSV injection": a leading one of these makes Excel, LibreOffice and WPS evaluate a cell.
FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    """`text` with every control or invisible formatting character written as \\xNN or \\uNNNN."""
    if text.isprintable():  # the common case, and cheap
        return text
    out = []
    for ch in text:
        if ch == " " or unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def scanned_text(data: bytes, limit: int = 200) -> str:
    """Scanned bytes as one safe line: non-ASCII bytes as \\xNN, controls escaped, NUL kept visible."""
    return printable(data[:limit].decode("ascii", "backslashreplace"))


def safe_value(value: Any) -> Any:
    """A value for a terminal, a log or JSON: strings (also inside lists) escaped, the rest as is."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [safe_value(v) for v in value]
    return value


def safe_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: safe_value(v) for k, v in row.items()}


def is_formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_LEADERS)


def sheet_text(value: Any) -> Any:
    """A value for a CSV cell: escaped, and a would-be formula prefixed with ' (OWASP) so it is text."""
    if not isinstance(value, str):
        return value
    shown = printable(value)
    return "'" + shown if is_formula_like(value) else shown
