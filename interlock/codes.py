"""Turn raw scanner bytes into an identifier, or say why not.

Scanner input is untrusted: it may be line noise, an overlong burst, a 1D barcode or something
hostile. Parsing never raises; anything that is not clearly one of the known identifier shapes
becomes an Invalid with a reason an operator can read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Sequence
from urllib.parse import unquote

# The spec's QR content field is char(1000); anything longer is not a cylinder code.
MAX_CODE_LENGTH = 1000
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_TRACEABLE = re.compile(r"\d{12}")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_PRODUCT = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-/.]{2,49}")
_URL = re.compile(r"https?://[^\s]+", re.IGNORECASE)
# RFID UIDs are 4, 7 or 10 bytes; UHF EPCs are 96 to 496 bits in 16-bit words.
_RFID_HEX_LENGTHS = frozenset({8, 14, 20} | {n for n in range(24, 125, 4)})


class Kind(StrEnum):
    QR_URL = "qr_url"
    INFO_CODE = "info_code"
    TRACEABLE = "traceable"
    RFID = "rfid"
    PRODUCT = "product"


class Source(StrEnum):
    """What kind of reader produced the bytes: decides how ambiguous strings are read."""

    OPTICAL = "optical"
    RFID = "rfid"


@dataclass(frozen=True)
class Identifier:
    kind: Kind
    value: str

    @property
    def lookup_kinds(self) -> tuple[Kind, ...]:
        # A bare code may be the maker's product number or the city's informatization code.
        if self.kind is Kind.PRODUCT:
            return (Kind.PRODUCT, Kind.INFO_CODE)
        return (self.kind,)


@dataclass(frozen=True)
class Invalid:
    detail: str


@dataclass(frozen=True)
class UrlPattern:
    """A regular expression with a named group `code`, and the kind of code it captures."""

    regex: re.Pattern[str]
    kind: Kind = Kind.INFO_CODE


@dataclass(frozen=True)
class Traceable:
    """The national 12-digit traceable number: maker (3) + year (2) + serial (7)."""

    maker: str
    year: str
    serial: str


def split_traceable(value: str) -> Traceable | None:
    if not _TRACEABLE.fullmatch(value):
        return None
    return Traceable(maker=value[:3], year=value[3:5], serial=value[5:])


def parse(
    raw: bytes, source: Source = Source.OPTICAL, url_patterns: Sequence[UrlPattern] = ()
) -> Identifier | Invalid:
    if len(raw) == 0:
        return Invalid("empty scan")
    if len(raw) > MAX_CODE_LENGTH:
        return Invalid(f"{len(raw)} bytes is longer than any cylinder code ({MAX_CODE_LENGTH})")
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return Invalid("contains non-ASCII bytes")
    if not text:
        return Invalid("blank scan")
    if not _PRINTABLE.fullmatch(text):
        return Invalid("contains control characters or spaces")
    if source is Source.RFID:
        return _parse_rfid(text)
    if _URL.fullmatch(text):
        return _parse_url(text, url_patterns)
    if _TRACEABLE.fullmatch(text):
        return Identifier(Kind.TRACEABLE, text)
    if text.isdigit() and 10 <= len(text) <= 14:
        # A near-miss of the 12-digit traceable number is a misread, not a product number.
        return Invalid(f"{len(text)} digits: a traceable code has 12")
    if _PRODUCT.fullmatch(text):
        return Identifier(Kind.PRODUCT, text.upper())
    return Invalid("not a URL, traceable number or product number")


def _parse_rfid(text: str) -> Identifier | Invalid:
    if not _HEX.fullmatch(text):
        return Invalid("RFID data is not hexadecimal")
    if len(text) not in _RFID_HEX_LENGTHS:
        return Invalid(f"{len(text)} hex digits is not a UID or EPC length")
    return Identifier(Kind.RFID, text.upper())


def _parse_url(text: str, url_patterns: Sequence[UrlPattern]) -> Identifier | Invalid:
    for pattern in url_patterns:
        match = pattern.regex.search(text)
        if match:
            code = unquote(match.group("code"))
            if not code or not _PRINTABLE.fullmatch(code) or len(code) > 50:
                return Invalid("URL carries a malformed code")
            return Identifier(pattern.kind, code.upper() if pattern.kind is Kind.INFO_CODE else code)
    # No pattern matched: the city stores the whole QR URL as basic data, so look it up as is.
    return Identifier(Kind.QR_URL, text)
