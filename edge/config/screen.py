"""Config of what a lane screen shows and says: how long a decision stays up, and its voice."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Strict


class VoiceConfig(Strict):
    """语音播报: the lane screen's browser speaks each decision in Mandarin (espeak-ng on the
    station PC makes the sound; nothing goes to a cloud service)."""

    enabled: bool = True
    volume: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    # The same prompt again within this time (a refused cylinder scanned twice) is not re-spoken.
    repeat_quiet_s: Annotated[float, Field(ge=0.0, le=600.0)] = 5.0


# How long a decision or a fill's result stays on a lane screen before it fades to the idle
# screen (the scan prompt and the live weight).
DecisionHold = Annotated[float, Field(ge=2.0, le=3600.0)]
