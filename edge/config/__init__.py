"""Station configuration: YAML loaded once, validated completely into typed objects.

The names below load on first use (PEP 562): validating takes pydantic and every model here, a
third of a second, and a command that only glances at the file (`edge status`, through
`edge.config.glance`) should not pay for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import ConfigError, Problem
    from .loader import load_config, load_register_map
    from .model import Config, EligibilityConfig, FillConfig, LaneConfig, SimulatorConfig, StationConfig

_HOMES = {
    "ConfigError": "errors", "Problem": "errors", "load_config": "loader", "load_register_map": "loader",
    "Config": "model", "EligibilityConfig": "model", "FillConfig": "model", "LaneConfig": "model",
    "SimulatorConfig": "model", "StationConfig": "model",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value  # once loaded, an attribute like any other
    return value
