"""`edge cache import`: load cylinder records from the station's ledger (.xlsx), CSV or JSON in the
city-spec field layout.

Headers may be the English column names or the spec's Chinese field names. A malformed row is
reported with its line number and skipped; the rest load. CSV and .xlsx rows stream from the file
into the store in batches, so a 100,000-row ledger imports in bounded memory on a Raspberry Pi.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from interlock.checks import LIQUID_KG_PER_L
from interlock.rules import parse_month

from ..output import Problems
from ..store import Store
from ..store.database import identifier_pairs
from ..store.schema import CITY_FIELDS, STATION_FIELDS

_BY_LABEL = {label: name for name, label in {**CITY_FIELDS, **STATION_FIELDS}.items()}
_KNOWN = set(CITY_FIELDS) | set(STATION_FIELDS)
# Length limits from the spec's char(n) types.
_MAX_LENGTH = {
    "id": 50, "owner_unit": 100, "region": 6, "variety": 4, "product_no": 50, "medium": 3,
    "manufacturer": 100, "unit_no": 50, "status": 10, "tag_kind": 10, "info_code": 50,
    "qr_content": 1000, "registration_no": 50, "registration_authority": 200,
}
_FLOATS = ("working_pressure_mpa", "volume_l", "tare_kg", "fill_mass_kg")


# What each column of the import holds, for `edge cache template` (the rest are free text).
COLUMN_FORMATS = {
    "manufacture_month": "yyyy-mm", "next_inspection": "yyyy-mm", "last_inspection": "yyyy-mm-dd",
    "registration_date": "yyyy-mm-dd", "working_pressure_mpa": "MPa, above 0", "volume_l": "litres, above 0",
    "tare_kg": "kg, above 0", "fill_mass_kg": "kg, above 0, at most 1 kg per litre", "service_life_years": "whole years",
}
REQUIRED = ("id", "owner_unit", "medium", "status")


def template_columns(english: bool = False) -> list[str]:
    """The import's columns, required ones first: Chinese labels (as a ledger heads them) or names."""
    names = [*REQUIRED, *(name for name in {**CITY_FIELDS, **STATION_FIELDS} if name not in REQUIRED)]
    labels = {**CITY_FIELDS, **STATION_FIELDS}
    return names if english else [labels[name] for name in names]


@dataclass
class ImportReport:
    loaded: int = 0
    skipped: int = 0
    problems: Problems = field(default_factory=Problems)


_MONTHS = ("manufacture_month", "next_inspection")


def read_rows(path: Path) -> Iterable[tuple[int, Any]]:
    """(line number, raw row) pairs. JSON: a list of objects, one per line where it can tell."""
    if path.suffix.lower() == ".xlsx":
        yield from _xlsx_rows(path)
        return
    if path.suffix.lower() == ".json":
        text = path.read_text(encoding="utf-8-sig")
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of cylinder objects")
        lines = _json_object_lines(text)
        for index, item in enumerate(data):
            yield (lines[index] if index < len(lines) else 0), item
        return
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        for row in reader:
            yield reader.line_num, row


def _xlsx_rows(path: Path) -> Iterable[tuple[int, Any]]:
    """Rows of the first sheet under its header row (the first row naming a known field; a ledger
    often has a title above it). Excel's own dates and numbers become the spec's text forms."""
    from openpyxl import load_workbook  # only an import of a ledger needs it

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a file that is not a workbook
        raise ValueError(f"{path}: not a readable .xlsx workbook ({exc})") from None
    try:
        header: list[str | None] | None = None
        for number, cells in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1):
            if header is None:
                names = [None if c is None else _BY_LABEL.get(str(c).strip(), str(c).strip()) for c in cells]
                if "id" in names or sum(n in _KNOWN for n in names) >= 3:
                    header = names
                continue
            if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                continue
            yield number, {name: _cell(name, value) for name, value in zip(header, cells) if name is not None}
        if header is None:
            raise ValueError(f"{path}: no header row naming the cylinder fields (ID, 使用单位名称, ...)")
    finally:
        book.close()


def _cell(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m" if name in _MONTHS else "%Y-%m-%d")
    if isinstance(value, float) and value.is_integer() and name not in _FLOATS:
        return str(int(value))  # a product number or region typed as a number
    if isinstance(value, int) and name not in _FLOATS and name != "service_life_years":
        return str(value)
    return value


def _json_object_lines(text: str) -> list[int]:
    # Line on which each top-level object of the list starts, for error messages.
    lines, depth, line = [], 0, 1
    in_string = escaped = False
    for char in text:
        if char == "\n":
            line += 1
        if in_string:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if char == "{" and depth == 2:
                lines.append(line)
        elif char in "]}":
            depth -= 1
    return lines


def clean_row(raw: Any) -> dict[str, Any]:
    """Validate one record; raises ValueError naming the field and what was expected."""
    if not isinstance(raw, dict):
        raise ValueError("expected an object of cylinder fields")
    row: dict[str, Any] = {}
    for key, value in raw.items():
        name = _BY_LABEL.get(str(key).strip(), str(key).strip())
        if name not in _KNOWN:
            raise ValueError(f"unknown field {key!r}")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        row[name] = value.strip() if isinstance(value, str) else value
    for name in REQUIRED:
        if name not in row:
            raise ValueError(f"{name} ({CITY_FIELDS[name]}) is required")
    for name, limit in _MAX_LENGTH.items():
        if name in row and len(str(row[name])) > limit:
            raise ValueError(f"{name} is {len(str(row[name]))} characters, limit {limit}")
    for name in _FLOATS:
        if name in row:
            try:
                value = float(row[name])
            except (TypeError, ValueError):
                raise ValueError(f"{name}: got {row[name]!r}, expected a number") from None
            # A typed mass, volume or pressure is a physical quantity: finite and above zero.
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: got {row[name]!r}, expected a number above zero")
            row[name] = value
    if "fill_mass_kg" in row and "volume_l" in row and row["fill_mass_kg"] > row["volume_l"] * LIQUID_KG_PER_L:
        raise ValueError(f"fill_mass_kg: {row['fill_mass_kg']} kg does not fit in {row['volume_l']} L")
    if "service_life_years" in row:
        try:
            row["service_life_years"] = int(row["service_life_years"])
        except (TypeError, ValueError):
            raise ValueError(f"service_life_years: got {row['service_life_years']!r}, expected whole years") from None
    for name in _MONTHS:
        if name in row and parse_month(str(row[name])) is None:
            raise ValueError(f"{name}: got {row[name]!r}, expected yyyy-mm")
    for name in ("last_inspection", "registration_date"):
        if name in row:
            try:
                datetime.strptime(str(row[name]), "%Y-%m-%d")
            except ValueError:
                raise ValueError(f"{name}: got {row[name]!r}, expected yyyy-mm-dd") from None
    return {k: str(v) if k not in _FLOATS and k != "service_life_years" else v for k, v in row.items()}


def import_file(store: Store, path: Path, now: datetime, progress: Callable[[int], None] | None = None,
                batch: int = 2000) -> ImportReport:
    """Clean rows go to the store as they are read, a transaction per batch; bad rows are counted
    and summarised by problem."""
    report = ImportReport()

    def good_rows() -> Iterator[dict[str, Any]]:
        # Rows are held back a batch at a time, so each batch is checked against the cache with one
        # query, after the store committed the one before it.
        chunk: list[tuple[int, dict[str, Any]]] = []
        for count, (line, raw) in enumerate(read_rows(path), start=1):
            try:
                chunk.append((line, clean_row(raw)))
            except ValueError as exc:
                report.skipped += 1
                report.problems.add(str(line), str(exc))
            if len(chunk) >= batch:
                yield from _unclaimed(store, chunk, report)
                chunk = []
            if progress and count % 500 == 0:
                progress(count)
        yield from _unclaimed(store, chunk, report)

    report.loaded = store.upsert_cylinders(good_rows(), now, batch)
    if progress:
        progress(report.loaded + report.skipped)
    if report.loaded:
        store.mark_cache_refreshed(now)
    return report


def _unclaimed(store: Store, chunk: list[tuple[int, dict[str, Any]]], report: ImportReport) -> Iterator[dict[str, Any]]:
    """The rows none of whose identifiers (stamp number, codes, tags) belongs to another cylinder,
    in the cache or in an earlier row: an import adds and corrects records, it never re-points an
    identifier from one cylinder to another."""
    owners = store.identifier_owners(pair for _, row in chunk for pair in identifier_pairs(row))
    for line, row in chunk:
        pairs = identifier_pairs(row)
        taken = next(((kind, owners[(kind, value)]) for kind, value in pairs if owners.get((kind, value), row["id"]) != row["id"]), None)
        if taken is not None:
            report.skipped += 1
            report.problems.add(str(line), f"its {taken[0]} identifier belongs to cylinder {taken[1]}")
            continue
        owners.update({pair: row["id"] for pair in pairs})
        yield row
