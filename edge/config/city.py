"""The `city:` section: which profile, where the city is, who we are, and how hard to try."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator

from sync.profile import Profile
from sync.signing import SigningUnavailable, check_available

from .base import PositiveSeconds, Strict


class UploadConfig(Strict):
    enabled: bool = True
    idle_s: PositiveSeconds = 2.0  # how often an empty outbox is looked at again
    backoff_initial_s: PositiveSeconds = 1.0
    backoff_max_s: PositiveSeconds = 300.0
    jitter_s: float = Field(default=1.0, ge=0)
    # Replies that are not the city's envelope (a captive portal's page) are retried; a record
    # is dead-lettered for them only after this many hours of nothing else.
    malformed_window_h: float = Field(default=6.0, gt=0, le=720)
    # The daemon paces a backlog so lanes keep their decision times (bench/latency.py --backlog);
    # `edge sync push` sends as fast as the city answers.
    max_rate_per_s: float | None = Field(default=25.0, gt=0)


class RefreshConfig(Strict):
    enabled: bool = True
    interval_s: PositiveSeconds = 900.0  # incremental pull
    full_every_h: PositiveSeconds = 24.0
    page_size: int = Field(default=500, ge=1, le=5000)


class LookupConfig(Strict):
    """Asking the city for one scanned code the cache cannot fill (the spec's 基础数据查询)."""

    enabled: bool = True
    # The most a scan waits for the city's answer before it is decided from the cache.
    deadline_s: PositiveSeconds = 1.5
    # A cached record refusing a fill is asked about again only when older than this; a code the
    # city did not know either is not asked about again for as long.
    max_record_age_s: float = Field(default=600.0, ge=0)


class CityConfig(Strict):
    profile: Profile  # named in YAML (config/profiles/NAME.yaml); the loader puts the profile here
    base_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+(/\S*)?$")
    # Plain HTTP only when explicitly allowed: the spec requires HTTPS with a verified certificate.
    allow_plain_http: bool = False
    username: str = Field(min_length=1)
    password: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    ca_bundle: Path | None = None  # PEM bundle trusted for the city's certificate (else the system's)
    client_cert: Path | None = None
    client_key: Path | None = None
    connect_timeout_s: PositiveSeconds = 5.0
    read_timeout_s: PositiveSeconds = 15.0
    upload: UploadConfig = UploadConfig()
    refresh: RefreshConfig = RefreshConfig()
    lookup: LookupConfig = LookupConfig()

    @model_validator(mode="after")
    def _consistent(self) -> CityConfig:
        if self.url is None:
            raise ValueError("base_url (the profile does not give one)")
        if self.url.startswith("http://") and not self.allow_plain_http:
            raise ValueError("an https:// base_url (or allow_plain_http: true for a test bench)")
        given = [k for k in ("password", "password_file", "password_env") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of password, password_file, password_env (got {given or 'none'})")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_cert beside client_key")
        if self.profile.signing is not None:
            try:
                check_available(self.profile.signing)
            except SigningUnavailable as exc:
                raise ValueError(str(exc)) from exc
        return self

    @property
    def url(self) -> str | None:
        return self.base_url or self.profile.base_url

    def secret(self) -> str:
        """The password, read when the client is built so a file or variable can change between runs."""
        if self.password is not None:
            return self.password
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        assert self.password_env is not None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ValueError(f"environment variable {self.password_env} (city.password_env) is not set")
        return value
