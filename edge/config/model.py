"""Typed configuration. Every model forbids unknown keys: a typo is an error, not a default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from interlock.codes import Kind

from .backup import BackupConfig
from .base import Kg, PositiveSeconds, Strict
from .city import CityConfig
from .devices import (
    BusConfig,
    ButtonsConfig,
    GpioRelayConfig,
    LogSignalsConfig,
    ModbusScaleConfig,
    RelayConfig,
    ScannerConfig,
    SignalsConfig,
)
from .fleet import FleetConfig
from .reports import ReportsConfig
from .glance import DEFAULT_TIMEZONE
from .screen import DecisionHold, VoiceConfig
from .webapp import ChecksConfig, WebAppConfig

MEDIA = frozenset(f"G{n}" for n in range(1, 21))
# The city spec's 充装人员 field is char(10).
OPERATOR_NAME_MAX = 10
LICENCE_PATTERN = re.compile(r"TS\d{7}(-\d{4})?")
STAFF_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,20}")
# The city fields a staff name goes into: (record kind, field) in the profile's limits.
STAFF_NAME_FIELDS = (("filling", "operator"), ("filling", "checker"), ("trace", "actor"))


class StationConfig(Strict):
    owner_unit: str = Field(min_length=1, max_length=100)
    unit_code: str = Field(min_length=1, max_length=50)
    region: str = Field(pattern=r"^\d{6}$")
    timezone: str = DEFAULT_TIMEZONE
    # 气瓶充装许可证编号, as on the licence (TSG 07-2019): printed on every report the regulator signs.
    filling_licence: str | None = None

    @field_validator("filling_licence")
    @classmethod
    def _licence_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not LICENCE_PATTERN.fullmatch(value):
            raise ValueError("the filling licence number as the licence gives it: TS and 7 digits, then"
                             " -YYYY where it has a validity year (TS4250001-2027)")
        return value

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
    # The daemon's control socket (`edge lane reset|ack`); by default control.sock beside the store.
    control_socket: Path | None = None

    @property
    def control_path(self) -> Path:
        return self.control_socket or self.path.parent / "control.sock"
    # Below this much free space on the store's filesystem the daemon warns (log, status page,
    # metrics) before a full disk stops filling.
    min_free_mb: Annotated[float, Field(ge=0)] = 200.0
    # When the daemon verifies its journal each day (station local time, HH:MM): the checkpoint it
    # journals sends the day's chain head to the company's fleet, as a witness.
    verify_at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "00:15"
    # `edge archive`: where the monthly archive files go (default: archive/ beside the store), and
    # how many months, besides the current one, the live store keeps (None: all; `--retention`).
    archive_dir: Path | None = None
    retention_months: Annotated[int, Field(ge=1, le=120)] | None = None

    @property
    def archive_path(self) -> Path:
        return self.archive_dir or self.path.parent / "archive"


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
    id: str = Field(pattern=f"^{STAFF_ID_PATTERN.pattern}$")
    name: str = Field(min_length=1, max_length=OPERATOR_NAME_MAX)


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
    # Learn the in-flight mass from completed fills (preact_kg is the starting value), within
    # preact_min_kg..preact_max_kg (default: max_inflight_kg), as the median of the last learn_window.
    learn_preact: bool = True
    learn_window: int = Field(default=5, ge=1, le=50)
    preact_min_kg: Kg = 0.0
    preact_max_kg: Annotated[float, Field(gt=0)] | None = None
    # "predicted": cut off between polls at the moment the measured flow reaches the cut-off
    # weight; "sample": at the first (filtered) reading past it.
    cutoff: Literal["predicted", "sample"] = "predicted"
    # Valve on but the net weight not up by no_flow_kg within no_flow_s (empty supply, shut
    # cylinder valve, stopped pump, frozen reading), or frozen_samples identical readings in a
    # row: NO_FLOW, the valve closes.
    no_flow_s: PositiveSeconds = 5.0
    no_flow_kg: Annotated[float, Field(gt=0)] = 0.2
    frozen_samples: int = Field(default=20, ge=3, le=10_000)
    # After cut-off, valve off: a fall of more than leak_kg while settling or during the
    # leak_check_s re-check that follows the first stable reading is a LEAK.
    leak_kg: Annotated[float, Field(gt=0)] = 0.2
    leak_check_s: Kg = 2.0
    # At start-up, how long to wait for a stable reading of a cylinder whose fill a crash left open.
    reweigh_s: PositiveSeconds = 5.0

    @model_validator(mode="after")
    def _some_target(self) -> FillConfig:
        if not self.targets_kg and self.fill_ratio_kg_per_l is None:
            raise ValueError("targets_kg per cylinder model, or fill_ratio_kg_per_l, or both")
        if self.preact_kg >= self.overfill_margin_kg + self.tolerance_kg:
            raise ValueError("preact_kg smaller than overfill_margin_kg + tolerance_kg")
        if self.preact_ceiling_kg <= self.preact_min_kg:
            raise ValueError("preact_max_kg (default max_inflight_kg) above preact_min_kg")
        if self.settle_timeout_s <= self.settle_min_s + self.leak_check_s:
            raise ValueError("settle_timeout_s longer than settle_min_s + leak_check_s, or no fill could complete")
        return self

    @property
    def preact_ceiling_kg(self) -> float:
        return self.max_inflight_kg if self.preact_max_kg is None else self.preact_max_kg


class LaneConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")
    medium: str
    # Every fill records both (TSG 07-2019); `edge staff assign` changes the shift later.
    operator: str
    checker: str
    scanners: list[ScannerConfig] = Field(min_length=1)
    scale: ModbusScaleConfig
    relay: RelayConfig
    signals: SignalsConfig = LogSignalsConfig()
    buttons: ButtonsConfig | None = None
    fill: FillConfig
    # Fill only cylinders with a passed pre-fill check (checks.precheck_valid_minutes).
    require_precheck: bool = False
    voice: VoiceConfig = VoiceConfig()

    @field_validator("medium")
    @classmethod
    def _known_medium(cls, value: str) -> str:
        if value not in MEDIA:
            raise ValueError("a gas medium code G1..G20 (see media.csv)")
        return value

    @model_validator(mode="after")
    def _operator_is_not_checker(self) -> LaneConfig:
        if self.checker == self.operator:
            raise ValueError("a checker other than the operator (TSG 07-2019 D2.2)")
        return self


class StatusPageConfig(Strict):
    """The read-only status page and metrics. Localhost unless a screen elsewhere must see it."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)  # 0: any free port (tests)
    decision_hold_s: DecisionHold = 20.0


class GuardConfig(Strict):
    """The loop guard closes a lane's valve when its control loop has not come round for
    max(stall_factor x (poll_period_s + timeout_s), floor_s) with the valve on."""

    stall_factor: float = Field(default=3.0, ge=1.5, le=20)
    floor_s: PositiveSeconds = 0.5


class SimulatorConfig(Strict):
    """Present only in simulated stations: `edge run` starts these stand-ins beside the lanes."""

    dataset_seed: int = 2026
    dataset_size: int = Field(default=400, ge=50, le=200_000)
    flow_kg_per_s: Annotated[float, Field(gt=0)] = 4.0
    valve_delay_s: Kg = 0.08
    noise_kg: Kg = 0.01
    # Serve the city system too, at city.base_url, with a fresh CA written to city.ca_bundle.
    city: bool = False


Problems = list[tuple[tuple[str | int, ...], str, str]]


def cross_problems(config: "Config") -> Problems:
    """Problems that span sections: (key path, value, what was expected) for each."""
    problems: Problems = []
    seen_ids: set[str] = set()
    # Each valve output, and each scale, belongs to exactly one lane.
    valves: dict[tuple[object, ...], str] = {}
    scales: dict[tuple[str, int], str] = {}
    known = {op.id for op in config.operators}
    for index, lane in enumerate(config.lanes):
        here = ("lanes", index)
        if lane.id in seen_ids:
            problems.append((here + ("id",), repr(lane.id), "a lane id not used by another lane"))
        seen_ids.add(lane.id)
        for key in ("operator", "checker"):
            who = getattr(lane, key)
            if who not in known:
                problems.append((here + (key,), repr(who), "an id listed under operators"))
        for key, device in (("scale", lane.scale), ("relay", lane.relay), ("signals", lane.signals), ("buttons", lane.buttons)):
            bus = getattr(device, "bus", None)
            if bus is not None and bus not in config.buses:
                problems.append((here + (key, "bus"), repr(bus), f"a bus named under buses ({', '.join(config.buses) or 'none defined'})"))
        scale = (lane.scale.bus, lane.scale.device_id)
        if scale in scales:
            problems.append((here + ("scale", "device_id"), str(lane.scale.device_id), f"a scale not already read by lane {scales[scale]}"))
        scales.setdefault(scale, lane.id)
        valve, key = _valve_output(lane.relay)
        if valve in valves:
            problems.append((here + ("relay", key), str(valve[-1]), f"a valve output not already used by lane {valves[valve]}"))
        valves.setdefault(valve, lane.id)
    check_scale = config.checks.check_scale
    if check_scale is not None:
        here = ("checks", "check_scale")
        if check_scale.bus not in config.buses:
            problems.append((here + ("bus",), repr(check_scale.bus), f"a bus named under buses ({', '.join(config.buses) or 'none defined'})"))
        if (check_scale.bus, check_scale.device_id) in scales:
            lane_id = scales[(check_scale.bus, check_scale.device_id)]
            problems.append((here + ("device_id",), str(check_scale.device_id), f"a scale not already read by lane {lane_id}"))
    for index, lane in enumerate(config.lanes):
        if lane.require_precheck and lane.medium not in config.checks.prefill:
            problems.append((("lanes", index, "require_precheck"), "true", f"a pre-fill check list for {lane.medium} under checks.prefill"))
    limit = city_name_limit(config)
    for index, person in enumerate(config.operators):
        if len(person.name) > limit:
            problems.append((("operators", index, "name"), repr(person.name), f"at most {limit} characters (the city profile's limit)"))
    return problems


def city_name_limit(config: "Config") -> int:
    """The longest staff name that every city field carrying it accepts."""
    if config.city is None:
        return OPERATOR_NAME_MAX
    limits = config.city.profile.limits
    return min([OPERATOR_NAME_MAX] + [limits.get(k, {}).get(f, OPERATOR_NAME_MAX) for k, f in STAFF_NAME_FIELDS])


def _valve_output(relay: RelayConfig) -> tuple[tuple[object, ...], str]:
    if isinstance(relay, GpioRelayConfig):
        return ("gpio", relay.backend, relay.chip, relay.line), "line"
    return ("modbus", relay.bus, relay.device_id, relay.coil), "coil"


class Config(Strict):
    station: StationConfig
    store: StoreConfig
    codes: CodesConfig = CodesConfig()
    eligibility: EligibilityConfig = EligibilityConfig()
    operators: list[OperatorConfig] = Field(min_length=1)
    buses: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")], BusConfig] = Field(default_factory=dict)
    lanes: list[LaneConfig] = Field(min_length=1)
    city: CityConfig | None = None
    fleet: FleetConfig | None = None
    backup: BackupConfig | None = None
    status_page: StatusPageConfig = StatusPageConfig()
    reports: ReportsConfig = ReportsConfig()
    webapp: WebAppConfig = WebAppConfig()
    checks: ChecksConfig = ChecksConfig()
    guard: GuardConfig = GuardConfig()
    simulators: SimulatorConfig | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.station.timezone)
