"""语音播报: the Mandarin prompt for each lane event, and its sound.

The prompt is chosen here from the event (pure); the sound is made on this PC by espeak-ng
(`espeak-ng -v cmn`, Debian's package; no cloud service), once per distinct prompt, and played
by the lane screen's browser. The same prompt again within the lane's quiet time is not given a
new turn, so a refused cylinder scanned three times is said once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interlock.reasons import WARNINGS

from .view import reason_text

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
VOICE = "cmn"
WORDS_PER_MINUTE = 150
SYNTH_TIMEOUT_S = 10.0


def prompt(kind: str, data: Mapping[str, Any]) -> str | None:
    """What the lane says for one of its events, or None for an event that says nothing."""
    if kind == "verdict":
        if data.get("accepted"):
            return "可以充装"
        blocking = [r for r in data.get("reasons", ()) if r not in WARNINGS]
        return "禁止充装，" + reason_text(blocking[0])[0] if blocking else "禁止充装"
    if kind == "fill_end":
        cause = data.get("cause")
        if data.get("tripped"):
            return "工位已锁定，" + (reason_text(str(cause))[0] if cause else "请复位")
        if str(data.get("outcome") or "").lower() == "ok":
            return "充装完成"
        said = reason_text(str(cause))[0] if cause else {"overfilled": "超装", "underfilled": "欠装"}.get(
            str(data.get("outcome") or "").lower(), "中止")
        return "充装结束，" + said
    if kind == "reset":
        if data.get("accepted"):
            return "工位已复位"
        return "复位被拒绝，" + reason_text(str(data.get("refused") or ""))[0]
    return None


def key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def available() -> bool:
    return shutil.which(ESPEAK) is not None


@functools.lru_cache(maxsize=256)
def synthesise(text: str) -> bytes:
    """The prompt as a WAV file. Written to a file rather than stdout, so the RIFF header holds
    the real length (espeak-ng's stream header says "unknown", which some players refuse)."""
    with tempfile.TemporaryDirectory(prefix="edge-voice-") as directory:
        path = Path(directory) / "prompt.wav"
        subprocess.run([ESPEAK, "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(path)], input=text.encode("utf-8"),
                       check=True, capture_output=True, timeout=SYNTH_TIMEOUT_S)
        return path.read_bytes()
