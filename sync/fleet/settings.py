"""The broker connection, as a station's `fleet:` section and the company's tools both give it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Topic segments: no MQTT wildcards or separators, and no leading underscore (the company's own
# topics, such as <company>/_fleet/command, start with one, so no station can be named like them).
SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=8883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "5"
    # TLS with certificate verification is the only transport: a company broker is reached over
    # networks the company does not own.
    ca_file: Path | None = None  # PEM bundle trusted for the broker (else the system's)
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = Field(default=None, min_length=1)
    password: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    connect_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _credentials(self) -> BrokerConfig:
        given = [k for k in ("password", "password_file", "password_env") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"at most one of password, password_file, password_env (got {given})")
        if given and self.username is None:
            raise ValueError("username beside the password")
        if self.username is None and self.client_cert is None:
            raise ValueError("credentials: username with a password, or client_cert and client_key")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key together")
        return self

    def secret(self) -> str | None:
        """The password, read when connecting so a file or variable can change between runs."""
        if self.password is not None:
            return self.password
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"environment variable {self.password_env} is not set")
            return value
        return None
