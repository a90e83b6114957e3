"""The company's tool config (YAML): its broker account, who is sending, where events are kept."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from sync.fleet.settings import SEGMENT, BrokerConfig, Strict


class CompanyConfig(Strict):
    company: str = Field(pattern=SEGMENT)
    broker: BrokerConfig
    # Who the commands say sent them: journalled at every station with the command.
    sender: str = Field(min_length=1, max_length=64)
    # sqlite:///path/to/fleet.db (the default, beside the config) or postgresql://user@host/db
    database: str = "sqlite:///fleet.db"
    command_key_file: Path | None = None  # the HMAC key the stations check commands against
    # The MQTT client id of the collector: its persistent session is where the broker queues
    # events while the collector is away, so it must stay the same from run to run.
    collector_id: str = Field(default="collector", pattern=SEGMENT)
    # Several collectors in one group: a shared subscription, the broker spreads the events over
    # them. Off for a single collector, whose own subscription Mosquitto keeps across a broker
    # restart; Mosquitto 2.0 does not restore a shared one, so a group loses what stations publish
    # between the broker's restart and the collectors' return (`edge fleet collect --share`).
    share: bool = False

    def command_key(self) -> bytes | None:
        if self.command_key_file is None:
            return None
        return self.command_key_file.read_text(encoding="utf-8").strip().encode("utf-8")


class CompanyConfigError(Exception):
    pass


def load_company_config(path: str | Path) -> CompanyConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return CompanyConfig.model_validate(raw)
    except OSError as exc:
        raise CompanyConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise CompanyConfigError(f"{path}: not YAML: {exc}") from None
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()]
        raise CompanyConfigError("\n".join(lines)) from None
