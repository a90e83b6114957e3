"""The Chafon-protocol UHF reader: frames and CRC checked by hand, then the adapter over a pty."""

from __future__ import annotations

from typing import Iterator

import pytest

from drivers.rfid import CMD_INVENTORY, FrameParser, UhfReader, crc16, frame
from simulators.serial_pty import PtyUhfReader

from .conftest import first_scan

EPC = bytes.fromhex("E2801160600002084C5C1A23")


def test_crc_and_inventory_command_bytes() -> None:
    # CRC-16/MCRF4XX check value for "123456789" is 0x6F91.
    assert crc16(b"123456789") == 0x6F91
    # Inventory to the broadcast address, as the CF-RU5102 manual lists it: 04 FF 01 1B B4.
    assert frame(0xFF, CMD_INVENTORY) == bytes.fromhex("04FF011BB4")


def test_parser_resyncs_after_garbage_and_broken_crc_and_waits_for_partial_frames() -> None:
    answer = frame(0, CMD_INVENTORY, bytes([0x01, 1, len(EPC)]) + EPC)
    parser = FrameParser()
    broken = answer[:-1] + bytes([answer[-1] ^ 1])
    # 0xff reads as the length of a 255-byte frame: nothing can be decided until more arrives.
    assert parser.feed(b"\x00\x03\xff" + broken + answer[:7]) == []
    frames = parser.feed(answer[7:])
    assert [f.epcs() for f in frames] == [[EPC]]
    assert parser.discarded == 3 + len(broken), "the noise and the broken frame, nothing more"
    assert parser.feed(broken) == [] and parser.crc_errors >= 1


def test_a_tag_count_the_bytes_do_not_bear_out_yields_only_whole_epcs() -> None:
    lying = frame(0, CMD_INVENTORY, bytes([0x01, 3, len(EPC)]) + EPC + bytes([12, 1, 2]))
    assert FrameParser().feed(lying)[0].epcs() == [EPC]


@pytest.fixture
def sim() -> Iterator[PtyUhfReader]:
    reader = PtyUhfReader()
    yield reader
    reader.close()


@pytest.mark.parametrize("mode", ["ok", "garbage"])
def test_reader_reports_a_tag_once_per_repeat_window(sim: PtyUhfReader, mode: str) -> None:
    sim.mode = mode
    reader = UhfReader(sim.port, timeout_s=0.1, repeat_s=0.6)
    reader.open()
    assert first_scan(reader, 0.3) is None, "no tag in the field"
    sim.tags = [EPC]
    scan = first_scan(reader)
    assert scan is not None and scan.data == EPC.hex().upper().encode() and scan.source == "rfid"
    assert first_scan(reader, 0.3) is None, "the same tag resting in the field is one scan"
    if mode == "garbage":
        assert reader.parser.crc_errors > 0 and reader.parser.discarded > 0
    reader.close()


def test_partial_and_mute_answers_give_no_scan_and_no_crash(sim: PtyUhfReader) -> None:
    sim.tags = [EPC]
    reader = UhfReader(sim.port, timeout_s=0.1)
    reader.open()
    for mode in ("partial", "mute"):
        sim.mode = mode
        assert first_scan(reader, 0.5) is None
    sim.mode = "ok"
    assert first_scan(reader) is not None, "the reader recovers once the answers are whole again"
    reader.close()


def test_active_mode_frames_carry_one_epc_and_other_answers_none() -> None:
    parser = FrameParser()
    (active,) = parser.feed(frame(0, 0xEE, bytes([0x00]) + EPC))
    assert active.epcs() == [EPC]
    (no_tag,) = parser.feed(frame(0, CMD_INVENTORY, bytes([0xFB])))
    assert no_tag.epcs() == []
