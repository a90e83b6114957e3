"""`edge check-config`: what the daemon would refuse at start, found before it is started.

Schema validation happens when the config loads. Here: the files the config names (the city's
password file, CA bundle, client certificate), and the libraries its drivers need. With strict,
each GPIO backend is opened and closed and each scanner's driver module is imported, as `run`
would, and the serial ports must be present.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

from . import Config
from .devices import (
    CameraScannerConfig,
    GpioDevice,
    HidScannerConfig,
    RfidSerialConfig,
    RtuBusConfig,
    SerialScannerConfig,
)

log = logging.getLogger(__name__)

# The libraries each optional driver needs, and the extra that installs them.
_GPIO_MODULES = {"rpi_gpio": ("RPi.GPIO", "station-edge[rpi]"), "gpiod": ("gpiod", "station-edge[gpiod]")}
_SCANNER_MODULES = {
    HidScannerConfig: (("evdev", "station-edge[hid]"),),
    CameraScannerConfig: (("cv2", "station-edge[camera]"),),
}
_SCANNER_DRIVERS = {RfidSerialConfig: "drivers.rfid", HidScannerConfig: "drivers.hid_scanner", CameraScannerConfig: "drivers.camera"}


def preflight(config: Config, strict: bool = False) -> list[str]:
    """Problems the daemon would stop on, one sentence each; empty when none were found."""
    problems = _files(config)
    gpio = sorted({(device.backend, device.chip) for device in _gpio_devices(config)})
    for backend, _chip in gpio:
        module, extra = _GPIO_MODULES[backend]
        if not _importable(module):
            problems.append(f"GPIO backend {backend}: Python module {module} is not installed ({extra})")
    for lane in config.lanes:
        for scanner in lane.scanners:
            for module, extra in _SCANNER_MODULES.get(type(scanner), ()):
                if not _importable(module):
                    problems.append(f"lane {lane.id}: {type(scanner).__name__} needs Python module {module} ({extra})")
    if strict and not problems:
        problems += _load_drivers(config, gpio)
    return problems


def _files(config: Config) -> list[str]:
    from .files import problems as file_problems

    problems = file_problems(config)  # as the service user when root runs this
    store_dir = Path(config.store.path).parent
    while not store_dir.exists() and store_dir != store_dir.parent:
        store_dir = store_dir.parent
    if not store_dir.is_dir():
        problems.append(f"store.path {config.store.path}: {store_dir} is not a directory")
    return problems


def _gpio_devices(config: Config) -> list[GpioDevice]:
    found = []
    for lane in config.lanes:
        for device in (lane.relay, lane.signals, lane.buttons):
            if isinstance(device, GpioDevice):
                found.append(device)
    return found


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package (RPi of RPi.GPIO)
        return False


def _load_drivers(config: Config, gpio: list[tuple[str, str]]) -> list[str]:
    """What `run` does first: open each GPIO backend, import each scanner driver, find each port."""
    from drivers.base import DeviceError
    from drivers.gpio import open_backend

    problems = []
    for backend, chip in gpio:
        try:
            open_backend(backend, chip).close()
        except DeviceError as exc:
            problems.append(f"GPIO {backend} chip {chip}: {exc}")
    for lane in config.lanes:
        for scanner in lane.scanners:
            driver = _SCANNER_DRIVERS.get(type(scanner))
            if driver:
                try:
                    importlib.import_module(driver)
                except Exception as exc:  # noqa: BLE001 - a driver's library can fail in many ways
                    problems.append(f"lane {lane.id}: scanner driver {driver} cannot load ({exc})")
    return problems + missing_ports(config)


def missing_ports(config: Config) -> list[str]:
    """Each configured serial port (RS-485 bus, scanner) that is not there, named by its user.
    `edge run` says these at start as check-config --strict does."""
    ports = {bus.port: f"bus {name}" for name, bus in config.buses.items() if isinstance(bus, RtuBusConfig)}
    for lane in config.lanes:
        for scanner in lane.scanners:
            if isinstance(scanner, (SerialScannerConfig, RfidSerialConfig)):
                ports[scanner.port] = f"lane {lane.id} scanner"
    # A simulated station makes its ports (ptys) when it starts.
    if config.simulators is not None:
        return []
    return [f"{user}: serial port {port} does not exist" for port, user in ports.items()
            if "://" not in port and not Path(port).exists()]
