"""Station configuration: YAML loaded once, validated completely into typed objects."""

from .loader import ConfigError, Problem, load_config, load_register_map
from .model import Config, EligibilityConfig, FillConfig, LaneConfig, SimulatorConfig, StationConfig

__all__ = [
    "Config",
    "ConfigError",
    "EligibilityConfig",
    "FillConfig",
    "LaneConfig",
    "Problem",
    "SimulatorConfig",
    "StationConfig",
    "load_config",
    "load_register_map",
]
