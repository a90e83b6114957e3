"""The staff's LAN web app and the checks it records: where it listens, how it is secured, and the
check lists per gas medium."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from interlock.checks import Item

from .base import PositiveSeconds, Strict
from .devices import ModbusScaleConfig

# TSG 07-2019 pre-fill items for LPG (G13) cylinders, and the post-fill items.
LPG = "G13"
DEFAULT_PREFILL: dict[str, list[tuple[str, str, str]]] = {
    LPG: [
        ("stamp", "钢印标记、检验标志清晰", "stamp and inspection marks legible"),
        ("colour", "颜色标志、字样正确", "colour and markings correct"),
        ("valve", "瓶阀及螺纹完好", "valve and its thread sound"),
        ("body", "无凹陷、鼓包、腐蚀、烧伤", "no dents, bulges, corrosion or fire damage"),
        ("residual", "余气已检查", "residual gas checked"),
        ("inspection", "未超期未检", "not overdue for inspection"),
    ]
}
DEFAULT_POSTFILL: list[tuple[str, str, str]] = [
    ("leak", "瓶阀无泄漏", "valve leak test passed"),
    ("shape", "瓶体无变形", "no deformation"),
    ("seal", "已加封、戴好瓶帽", "seal and cap on"),
    ("temperature", "瓶体温度正常", "temperature normal"),
]


class ItemConfig(Strict):
    id: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    zh: str = Field(min_length=1, max_length=40)
    en: str = Field(min_length=1, max_length=80)

    def item(self) -> Item:
        return Item(self.id, self.zh, self.en)


def _items(rows: list[tuple[str, str, str]]) -> list[ItemConfig]:
    return [ItemConfig(id=i, zh=zh, en=en) for i, zh, en in rows]


ItemList = Annotated[list[ItemConfig], Field(min_length=1)]


class ChecksConfig(Strict):
    """Check lists per gas medium (G1..G20); a medium without a pre-fill list cannot be checked."""

    prefill: dict[str, ItemList] = Field(default_factory=lambda: {m: _items(r) for m, r in DEFAULT_PREFILL.items()})
    postfill: ItemList = Field(default_factory=lambda: _items(DEFAULT_POSTFILL))
    # How long a passed pre-fill check lets a require_precheck lane fill the cylinder.
    precheck_valid_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 30.0
    photo_dir: Path | None = None  # default: beside the database, in photos/
    photo_retention_days: Annotated[int, Field(ge=1, le=3650)] = 365
    max_photo_bytes: Annotated[int, Field(ge=10_000, le=20_000_000)] = 4_000_000
    # Checked on the header before decoding; bounds the memory one photo's decode takes (a phone's
    # 12-megapixel photo fits, a decompression bomb does not).
    max_photo_pixels: Annotated[int, Field(ge=100_000, le=50_000_000)] = 25_000_000
    # A scale at the check table, read when the post-fill check is recorded (else the filling
    # scale's final reading, or a reading the checker types in).
    check_scale: ModbusScaleConfig | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> ChecksConfig:
        for name, items in [*self.prefill.items(), ("postfill", self.postfill)]:
            ids = [i.id for i in items]
            if len(ids) != len(set(ids)):
                raise ValueError(f"item ids unique within each list ({name} repeats one)")
        return self


class TlsConfig(Strict):
    cert: Path
    key: Path


class WebAppConfig(Strict):
    """The staff's app on the station LAN. HTTPS unless it listens on the loopback only."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    tls: TlsConfig | None = None
    session_idle_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 15.0
    # Wrong PINs before an account, or an address, is locked out for lockout_minutes.
    max_failed_logins: Annotated[int, Field(ge=1, le=100)] = 5
    lockout_minutes: Annotated[float, Field(gt=0)] = 15.0
    request_timeout_s: PositiveSeconds = 20.0

    @field_validator("host")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise ValueError("an IP address of this machine (e.g. 192.168.1.10, or 0.0.0.0 for every one)") from exc
        return value

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> WebAppConfig:
        # PINs and session cookies cross the station's Wi-Fi: never in clear text.
        if self.enabled and self.tls is None and not ipaddress.ip_address(self.host).is_loopback:
            raise ValueError("tls (cert and key) for an address other than the loopback")
        return self
