"""Station configuration: YAML loaded once, validated completely into typed objects."""

from .loader import ConfigError, Problem, load_config
from .model import (
    EligibilityConfig,
    FillConfig,
    LaneConfig,
    ModbusCoilRelayConfig,
    ModbusScaleConfig,
    SerialScannerConfig,
    SimulatorConfig,
    StationConfig,
    Config,
)

__all__ = [
    "Config",
    "ConfigError",
    "EligibilityConfig",
    "FillConfig",
    "LaneConfig",
    "ModbusCoilRelayConfig",
    "ModbusScaleConfig",
    "Problem",
    "SerialScannerConfig",
    "SimulatorConfig",
    "StationConfig",
    "load_config",
]
