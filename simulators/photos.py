"""Stand-in photos: small, valid PNG files, distinct per seed text, as a phone's camera would
upload a photo of a cylinder's steel stamp (the checks that matter are type, size and hash)."""

from __future__ import annotations

import struct
import zlib


def stamp_photo(text: str, size: int = 8) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    shade = zlib.crc32(text.encode("utf-8")) & 0xFF
    raw = b"".join(b"\x00" + bytes([shade, 128, 128]) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
