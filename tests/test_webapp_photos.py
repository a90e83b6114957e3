"""Stamp photos through the running staff app: an upload that is not an image (a PNG header followed
by HTML, a PNG claiming 100000 x 100000 pixels, a 16000 x 16000 decompression bomb, a cut-off
JPEG) is refused with nothing stored or queued; a real photo is kept as a re-encoded JPEG without
metadata, and the hash in the journal is of the bytes stored and queued for the city."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from edge.store import journal
from simulators.photos import stamp_photo

from .conftest import SimStation
from .webapp_support import Client, enrol, webapp_override


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def bomb(side: int = 16000) -> bytes:
    """A valid grayscale PNG of side x side black pixels: a few hundred kB that decode to side² bytes."""
    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return png(side, side, idat)


def phone_photo(size: tuple[int, int] = (1200, 900)) -> bytes:
    """A JPEG as a phone sends it: EXIF with a GPS position and the camera's serial number, a comment."""
    image = Image.new("RGB", size, (90, 120, 150))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0xA431] = "SERIAL-0042"  # BodySerialNumber
    exif[0x8825] = {1: "N", 2: (29.0, 33.0, 0.0)}  # GPS
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"taken at the station")
    return out.getvalue()


HOSTILE = {
    "a PNG header followed by HTML": b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>",
    "a PNG claiming 100000 x 100000 pixels": png(100_000, 100_000, zlib.compress(b"\x00" * 1000)),
    "a JPEG cut off after its header": phone_photo()[:700],
    "a GIF": b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00"
             b"\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
    "an SVG": b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
}


@pytest.fixture
def web(make_station: Callable[..., SimStation], tmp_path: Path) -> SimStation:
    s = make_station(webapp_override(tmp_path))
    enrol(s)
    return s


def written(s: SimStation) -> dict[str, Any]:
    assert s.station.store is not None and s.config.checks.photo_dir is not None
    store, folder = s.station.store, Path(s.config.checks.photo_dir)
    return {
        **{t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in ("journal", "tag_bindings", "outbox")},
        "identifiers": store.query("SELECT kind, value, cylinder_id FROM identifiers ORDER BY kind, value"),
        "files": sorted(str(p) for p in folder.rglob("*")) if folder.exists() else [],
    }


def bind(c: Client, s: SimStation, skip: int, files: list[tuple[str, bytes]]) -> Any:
    target = s.cylinder(skip=skip).row
    return c.form("/bind", {"stamp": target["product_no"], "tag": f"https://sim.example/q?code=CQPHOTO{skip:04d}", "tag_kind": "qr"},
                  files=[("photos", (name, data)) for name, data in files])


@pytest.mark.parametrize("what", [*HOSTILE, "a 16000 x 16000 decompression bomb", "one good photo and one bad"])
def test_an_upload_that_is_not_a_photo_is_refused_and_nothing_is_kept(web: SimStation, what: str) -> None:
    c = Client(web)
    assert c.login("chk-wang").status_code == 303
    before = written(web)
    if what in HOSTILE:
        files = [("stamp.png", HOSTILE[what])]
    elif what.startswith("a 16000"):
        files = [("stamp.png", bomb())]
    else:
        files = [("good.jpg", phone_photo()), ("bad.png", HOSTILE["a PNG header followed by HTML"])]
    reply = bind(c, web, 4, files)
    assert reply.status_code == 422, (what, reply.status_code)
    problem = reply.text
    assert ("megapixels" in problem) if "100000" in what or "bomb" in what else ("JPEG or PNG" in problem or "damaged" in problem), problem
    assert written(web) == before, what
    assert web.station.store is not None and web.station.store.audit_problem() is None


def test_a_photo_is_kept_as_a_jpeg_without_metadata_and_its_hash_is_of_what_is_sent(web: SimStation) -> None:
    c = Client(web)
    assert c.login("chk-wang").status_code == 303
    sent = phone_photo((4000, 3000)) + b"<html>trailing</html>"
    png_photo = stamp_photo("stamp")
    reply = bind(c, web, 5, [("IMG_0001.jpg", sent), ("stamp.png", png_photo)])
    assert reply.status_code == 200 and "已绑定 BOUND" in reply.text, reply.text
    assert web.station.store is not None
    entry = journal.load(web.station.store.query("SELECT data FROM journal WHERE kind = 'tag_bound'")[0]["data"])
    folder = Path(web.config.checks.photo_dir)  # type: ignore[arg-type]
    kept = [(folder / p["file"]).read_bytes() for p in entry["photos"]]
    for photo, data in zip(entry["photos"], kept):
        assert photo["file"].endswith(".jpg") and photo["sha256"] == hashlib.sha256(data).hexdigest()
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and len(image.getexif()) == 0 and not {"comment", "exif", "icc_profile", "xmp"} & set(image.info)
    assert b"SERIAL-0042" not in kept[0] and b"<html>" not in kept[0] and kept[0] != sent
    assert Image.open(io.BytesIO(kept[0])).size == (2048, 1536)  # at most 2048 px on its longer side
    assert Image.open(io.BytesIO(kept[1])).size == (8, 8)  # a small PNG keeps its size
    queued = json.loads(web.station.store.query("SELECT payload FROM outbox WHERE kind = 'tag_binding'")[0]["payload"])
    assert base64.b64decode(queued["photo"]) == kept[0] and queued["photo_name"] == Path(entry["photos"][0]["file"]).name
    assert web.station.store.audit_problem() is None


def test_the_pixel_limit_is_a_validated_config_key(web: SimStation) -> None:
    from edge.config.webapp import ChecksConfig

    assert ChecksConfig().max_photo_pixels == 25_000_000
    with pytest.raises(ValueError):
        ChecksConfig(max_photo_pixels=10**9)
    assert ChecksConfig(max_photo_pixels=1_000_000).max_photo_pixels == 1_000_000
