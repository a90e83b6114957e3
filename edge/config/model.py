"""Typed configuration. Every model forbids unknown keys: a typo is an error, not a default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from interlock.codes import Kind

MEDIA = frozenset({"G13", "G9", "G10", "G14"})
MEDIA = frozenset(f"G{n}" for n in range(1, 21))
# The city spec's 充装人员 field is char(10).
OPERATOR_NAME_MAX = 10


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveSeconds = Annotated[float, Field(gt=0)]
Kg = Annotated[float, Field(ge=0)]


class StationConfig(Strict):
    owner_unit: str = Field(min_length=1, max_length=100)
    unit_code: str = Field(min_length=1, max_length=50)
    region: str = Field(pattern=r"^\d{6}$")
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("an IANA time zone such as Asia/Shanghai") from exc
        return value


class StoreConfig(Strict):
    path: Path


class UrlPatternConfig(Strict):
    regex: str
    kind: Kind = Kind.INFO_CODE

    @field_validator("regex")
    @classmethod
    def _compiles_with_code_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"a valid regular expression ({exc})") from exc
        if "code" not in compiled.groupindex:
            raise ValueError("a regular expression with a named group (?P<code>...)")
        return value


class CodesConfig(Strict):
    url_patterns: list[UrlPatternConfig] = Field(
        default_factory=lambda: [UrlPatternConfig(regex=r"[?&](?:code|id)=(?P<code>[^&#]+)")]
    )


class EligibilityConfig(Strict):
    require_registration: bool = True
    inspection_warning_days: int = Field(default=30, ge=0, le=365)
    service_life_years: int | None = Field(default=None, ge=1, le=60)
    max_cache_age_hours: float | None = Field(default=72.0, gt=0)
    on_stale_cache: Literal["reject", "warn"] = "reject"


class OperatorConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,20}$")
    name: str = Field(min_length=1, max_length=OPERATOR_NAME_MAX)


class SerialScannerConfig(Strict):
    driver: Literal["serial"]
    port: str
    baudrate: int = 9600
    source: Literal["optical", "rfid"] = "optical"
    terminator: str = "\r"
    max_length: int = Field(default=1000, ge=16, le=4096)
    timeout_s: PositiveSeconds = 0.2


class RegisterValue(Strict):
    address: int = Field(ge=0, le=65535)
    type: Literal["int16", "uint16", "int32", "uint32", "float32"] = "int32"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0


class StatusBits(Strict):
    address: int = Field(ge=0, le=65535)
    stable_bit: int = Field(ge=0, le=15)


class ModbusScaleConfig(Strict):
    driver: Literal["modbus_tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    device_id: int = Field(default=1, ge=0, le=247)
    timeout_s: PositiveSeconds = 0.3
    poll_period_s: PositiveSeconds = 0.1
    capacity_kg: Kg = 150.0
    weight: RegisterValue
    status: StatusBits | None = None


class ModbusCoilRelayConfig(Strict):
    driver: Literal["modbus_coil"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    device_id: int = Field(default=1, ge=0, le=247)
    coil: int = Field(ge=0, le=65535)
    timeout_s: PositiveSeconds = 0.3


class SignalsConfig(Strict):
    """Stack-light coils on a Modbus relay board. Absent: signals go to the log only."""

    driver: Literal["modbus_coil", "log"] = "log"
    host: str | None = None
    port: int = Field(default=502, ge=1, le=65535)
    device_id: int = Field(default=1, ge=0, le=247)
    green: int | None = None
    amber: int | None = None
    red: int | None = None
    buzzer: int | None = None
    timeout_s: PositiveSeconds = 0.3

    @model_validator(mode="after")
    def _modbus_needs_host(self) -> SignalsConfig:
        if self.driver == "modbus_coil" and not self.host:
            raise ValueError("a host for modbus_coil signals")
        return self


class FillConfig(Strict):
    # Target net mass per cylinder model (e.g. YSP15: 14.5); otherwise volume x fill_ratio.
    targets_kg: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    fill_ratio_kg_per_l: float | None = Field(default=None, gt=0, le=1.5)
    tolerance_kg: Annotated[float, Field(gt=0)] = 0.5
    preact_kg: Kg = 0.3
    overfill_margin_kg: Annotated[float, Field(gt=0)] = 1.0
    tare_tolerance_kg: Annotated[float, Field(gt=0)] = 0.3
    max_fill_s: PositiveSeconds = 600.0
    auth_timeout_s: PositiveSeconds = 120.0
    settle_min_s: Kg = 0.5
    settle_timeout_s: PositiveSeconds = 10.0
    max_inflight_kg: Annotated[float, Field(gt=0)] = 1.0
    max_step_kg: Annotated[float, Field(gt=0)] = 5.0
    auto_start: bool = True

    @model_validator(mode="after")
    def _some_target(self) -> FillConfig:
        if not self.targets_kg and self.fill_ratio_kg_per_l is None:
            raise ValueError("targets_kg per cylinder model, or fill_ratio_kg_per_l, or both")
        if self.preact_kg >= self.overfill_margin_kg + self.tolerance_kg:
            raise ValueError("preact_kg smaller than overfill_margin_kg + tolerance_kg")
        return self


class LaneConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")
    medium: str
    operator: str
    checker: str | None = None
    scanners: list[SerialScannerConfig] = Field(min_length=1)
    scale: ModbusScaleConfig
    relay: ModbusCoilRelayConfig
    signals: SignalsConfig = SignalsConfig()
    fill: FillConfig

    @field_validator("medium")
    @classmethod
    def _known_medium(cls, value: str) -> str:
        if value not in MEDIA:
            raise ValueError("a gas medium code G1..G20 (see media.csv)")
        return value

    @model_validator(mode="after")
    def _operator_is_not_checker(self) -> LaneConfig:
        if self.checker is not None and self.checker == self.operator:
            raise ValueError("a checker other than the operator (TSG 07-2019 D2.2)")
        return self


class SimulatorConfig(Strict):
    """Present only in simulated stations: `edge run` starts these stand-ins beside the lanes."""

    dataset_seed: int = 2026
    dataset_size: int = Field(default=400, ge=50, le=200_000)
    flow_kg_per_s: Annotated[float, Field(gt=0)] = 4.0
    valve_delay_s: Kg = 0.08
    noise_kg: Kg = 0.01


def cross_problems(config: "Config") -> list[tuple[tuple[str | int, ...], str, str]]:
    """Problems that span sections: (key path, value, what was expected) for each."""
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    seen_ids: set[str] = set()
    seen_coils: dict[tuple[str, int, int, int], str] = {}
    known = {op.id for op in config.operators}
    for index, lane in enumerate(config.lanes):
        if lane.id in seen_ids:
            problems.append((("lanes", index, "id"), repr(lane.id), "a lane id not used by another lane"))
        seen_ids.add(lane.id)
        for key in ("operator", "checker"):
            who = getattr(lane, key)
            if who is not None and who not in known:
                problems.append((("lanes", index, key), repr(who), "an id listed under operators"))
        coil = (lane.relay.host, lane.relay.port, lane.relay.device_id, lane.relay.coil)
        if coil in seen_coils:
            problems.append(
                (("lanes", index, "relay", "coil"), str(lane.relay.coil), f"a valve coil not already used by lane {seen_coils[coil]}")
            )
        seen_coils.setdefault(coil, lane.id)
    return problems


class Config(Strict):
    station: StationConfig
    store: StoreConfig
    codes: CodesConfig = CodesConfig()
    eligibility: EligibilityConfig = EligibilityConfig()
    operators: list[OperatorConfig] = Field(min_length=1)
    lanes: list[LaneConfig] = Field(min_length=1)
    simulators: SimulatorConfig | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.station.timezone)

    def operator_name(self, operator_id: str | None) -> str | None:
        return next((op.name for op in self.operators if op.id == operator_id), None)
