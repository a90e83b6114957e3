import re

import pytest

from interlock.codes import Identifier, Invalid, Kind, Source, UrlPattern, parse, split_traceable

PATTERNS = [UrlPattern(re.compile(r"[?&]code=(?P<code>[^&#]+)"), Kind.INFO_CODE)]


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"123240000001", Identifier(Kind.TRACEABLE, "123240000001")),
        (b"  123240000001\r\n", Identifier(Kind.TRACEABLE, "123240000001")),
        (b"ysp15-2024-0001", Identifier(Kind.PRODUCT, "YSP15-2024-0001")),
        (
            b"https://qp.example.cn/trace?code=CQ5001120000123&v=2",
            Identifier(Kind.INFO_CODE, "CQ5001120000123"),
        ),
        (b"https://maker.example.com/q/AB12", Identifier(Kind.QR_URL, "https://maker.example.com/q/AB12")),
    ],
)
def test_optical_codes(raw: bytes, expected: Identifier) -> None:
    assert parse(raw, Source.OPTICAL, PATTERNS) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"\x00\x01\x02",
        b"\xff\xfe garbage",
        "瓶".encode(),
        b"A" * 1001,
        b"12324000000",  # 11 digits: a misread traceable code
        b"1232400000012",
        b"ab",
        b"abc def",
        b"'; DROP TABLE fills;--",
        b"$(reboot)",
        b"https://x.example/?code=%00%01",
        b"https://x.example/?code=" + b"A" * 60,
    ],
)
def test_garbage_is_invalid_never_an_exception(raw: bytes) -> None:
    assert isinstance(parse(raw, Source.OPTICAL, PATTERNS), Invalid)


@pytest.mark.parametrize("uid", [b"04A1B2C3", b"04a1b2c3d4e5f6", b"E2000017221101441890ABCD"])
def test_rfid_uids_and_epcs(uid: bytes) -> None:
    assert parse(uid, Source.RFID) == Identifier(Kind.RFID, uid.decode().upper())


@pytest.mark.parametrize("raw", [b"04A1B2C", b"XYZ12345", b"04A1B2C3D4"])
def test_rfid_rejects_bad_lengths_and_non_hex(raw: bytes) -> None:
    assert isinstance(parse(raw, Source.RFID), Invalid)


def test_split_traceable() -> None:
    code = split_traceable("123240000001")
    assert code is not None and (code.maker, code.year, code.serial) == ("123", "24", "0000001")
    assert split_traceable("12324000000X") is None
