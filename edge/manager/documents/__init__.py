"""Documents for the regulator and the station manager: the filling ledger (充装记录) as a
printable workbook, and the one-page daily report as a PDF."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources


@cache
def media_names() -> dict[str, str]:
    """Filling medium code (G13) -> its Chinese name (液化石油气), from the shipped media.csv."""
    with resources.files(__package__).joinpath("media.csv").open(encoding="utf-8") as stream:
        return {row["code"]: row["name"] for row in csv.DictReader(stream)}


def medium_name(code: str | None) -> str:
    if not code:
        return ""
    return media_names().get(code, code)
