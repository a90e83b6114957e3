"""Stamp photos as they cross from a phone into the record: each upload is decoded as an image,
within limits checked before any pixel is decoded, and what is kept (and hashed, journalled and
sent to the city) is a JPEG re-encoded from those pixels: no file a browser could run, no trailing
payload, no EXIF (a phone's GPS position and serial number stay on the phone).

Decoding is bounded: the header's dimensions are checked against the pixel limit first (a PNG
claiming 100000 x 100000 pixels is refused without allocating them), a JPEG is decoded at a
reduced scale when it is larger than what is stored, and one photo is decoded at a time however
many phones upload at once, so the memory a decode may take is one photo's, never more."""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass

from PIL import Image, ImageOps

log = logging.getLogger(__name__)

FORMATS = ("JPEG", "PNG")  # what a phone's camera gives
STORED_SIDE = 2048  # the stored photo's longer side at most: the stamp stays legible, the upload small
QUALITY = 85
_decoding = threading.Lock()


class PhotoRefused(ValueError):
    """An upload that is not a photo we keep; the message is for the person who sent it."""


@dataclass(frozen=True)
class Photo:
    jpeg: bytes  # what is stored, hashed and sent
    width: int
    height: int


def prepare(data: bytes, max_bytes: int, max_pixels: int) -> Photo:
    """The upload `data` decoded and re-encoded as a JPEG without metadata; PhotoRefused if it is
    too large, not a JPEG or PNG, or does not decode completely."""
    if len(data) > max_bytes:
        raise PhotoRefused(f"照片过大 / a photo of at most {max_bytes // 1000} kB ({len(data) // 1000} kB sent)")
    with _decoding:
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        except Image.DecompressionBombError as exc:
            raise PhotoRefused(_too_many(max_pixels)) from exc
        except Exception as exc:  # a decoder fed hostile bytes may raise anything; none of it is a photo
            log.debug("upload refused: %s", exc)
            raise PhotoRefused("照片不是可识别的图片 / photos as JPEG or PNG images (this file is not one)") from exc
        with image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > max_pixels:
                raise PhotoRefused(_too_many(max_pixels, f" ({width} x {height} sent)"))
            try:
                if image.format in ("JPEG", "MPO"):  # MPO: a phone's JPEG with a second picture in it
                    image.draft("RGB", (STORED_SIDE, STORED_SIDE))  # decode at 1/2..1/8 scale: less memory
                image.load()
                # Shrunk in place first: turning and converting then copy the small image, not the
                # decoded one (three full-size copies of a 25-megapixel PNG would be 300 MB).
                image.thumbnail((STORED_SIDE, STORED_SIDE))
                upright = ImageOps.exif_transpose(image)
                pixels = upright.convert("L" if upright.mode in ("1", "L", "I;16", "I") else "RGB")
            except Exception as exc:
                log.debug("upload refused while decoding: %s", exc)
                raise PhotoRefused("照片已损坏或不完整 / the photo is damaged or incomplete: take it again") from exc
        # The pixels only: Pillow would carry a JPEG's comment (and other info) into the new file.
        pixels.info.clear()
        out = io.BytesIO()
        pixels.save(out, "JPEG", quality=QUALITY, optimize=True)
        return Photo(out.getvalue(), *pixels.size)


def _too_many(max_pixels: int, sent: str = "") -> str:
    return f"照片像素过多 / a photo of at most {max_pixels / 1e6:g} megapixels{sent}"
