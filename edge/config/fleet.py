"""The `fleet:` section: the company's broker and this station's name in the company's topic tree.
A station without it never loads the MQTT client and behaves as it always has."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sync.fleet.settings import SEGMENT, BrokerConfig

from .base import PositiveSeconds, Strict


class FleetConfig(Strict):
    company: str = Field(pattern=SEGMENT)
    station_id: str = Field(pattern=SEGMENT)
    broker: BrokerConfig
    # A command older than this (by its own timestamp) is refused: a captured command replayed
    # later does nothing. Commands queued by the broker while the station was away arrive late too.
    max_command_age_s: PositiveSeconds = 600.0
    max_clock_skew_s: PositiveSeconds = 60.0
    # When set, every command must carry an HMAC-SHA256 signature made with this key (one line of
    # text): the broker's ACL decides who may publish commands, the key proves who wrote them.
    command_key_file: Path | None = None
    health_interval_s: PositiveSeconds = 30.0

    def command_key(self) -> bytes | None:
        if self.command_key_file is None:
            return None
        return self.command_key_file.read_text(encoding="utf-8").strip().encode("utf-8")
