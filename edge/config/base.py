"""Shared pieces of the config models."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Every model forbids unknown keys: a typo is an error, not a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveSeconds = Annotated[float, Field(gt=0)]
Kg = Annotated[float, Field(ge=0)]
DeviceId = Annotated[int, Field(ge=0, le=247)]
Coil = Annotated[int, Field(ge=0, le=65535)]
