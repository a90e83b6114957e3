"""One contract, every relay adapter: Modbus coil (TCP, RTU, leased) against the simulated board,
and GPIO through both backends against fakes of their modules (this kernel has no GPIO chip)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from drivers.base import DeviceError, Relay
from drivers.gpio import GpiodBackend, GpioButtons, GpioRelay, GpioSignals, RpiGpioBackend, open_backend
from drivers.modbus import BusDevice, Lease, ModbusBus, ModbusCoilRelay
from simulators.modbus_devices import SimRelayBoard
from simulators.modbus_server import ModbusSimServer, free_port
from simulators.null_modem import NullModem

from .fake_gpio import Pins, chip_dir, fake_gpiod, fake_rpi_gpio

Energised = Callable[[], bool]
ADAPTERS = ["modbus_tcp", "modbus_rtu", "modbus_leased", "gpio_rpi", "gpio_gpiod"]


@pytest.fixture
def pins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Pins:
    pins = Pins()
    package, module = fake_rpi_gpio(pins)
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", module)
    dev, chips = chip_dir(tmp_path, ["pinctrl-bcm2711", "pinctrl-rp1"])
    monkeypatch.setitem(sys.modules, "gpiod", fake_gpiod(pins, chips))
    monkeypatch.setattr(GpiodBackend, "__init__", _with_dev(GpiodBackend.__init__, dev))
    return pins


def _with_dev(init, dev: Path):  # type: ignore[no-untyped-def]
    def patched(self, chip_label: str, dev_dir: Path = dev) -> None:  # type: ignore[no-untyped-def]
        init(self, chip_label, dev_dir)
    return patched


@pytest.fixture(params=ADAPTERS)
def relay(request: pytest.FixtureRequest, pins: Pins) -> Iterator[tuple[Relay, Energised]]:
    kind = request.param
    if kind.startswith("gpio"):
        backend = open_backend("rpi_gpio" if kind == "gpio_rpi" else "gpiod", "pinctrl-rp1")
        yield GpioRelay(backend, 17), lambda: pins.level.get(17, False)
        backend.close()
        return
    board = SimRelayBoard(2, lease_base=0x100)
    modem = None
    if kind == "modbus_rtu":
        modem = NullModem(baudrate=38400).start()
        server = ModbusSimServer([board], serial_port=modem.device.port, baudrate=38400).start()
        bus = ModbusBus.rtu("rtu", modem.host.port, 38400)
    else:
        port = free_port()
        server = ModbusSimServer([board], port=port).start()
        bus = ModbusBus.tcp("tcp", "127.0.0.1", port)
    lease = Lease(0x100, 0.1, 1.0, 0.3) if kind == "modbus_leased" else None
    yield ModbusCoilRelay(BusDevice(bus, 2, 0.2), 0, lease), lambda: board.coil(0)
    bus.close()
    server.stop()
    if modem:
        modem.close()


def test_relay_switches_and_off_is_idempotent(relay: tuple[Relay, Energised]) -> None:
    adapter, energised = relay
    adapter.off()
    assert not energised()
    for _ in range(2):
        adapter.on()
        adapter.keepalive()
        assert energised()
        adapter.off()
        adapter.off()
        assert not energised()


def test_gpio_lines_are_claimed_off_and_active_high_means_high(pins: Pins) -> None:
    for kind in ("rpi_gpio", "gpiod"):
        pins.history.clear()
        backend = open_backend(kind, "pinctrl-rp1")
        relay = GpioRelay(backend, 27)
        assert pins.history == [(27, False)], "claimed driven low: the valve stays closed"
        relay.on()
        assert pins.level[27] is True
        backend.close()


def test_acknowledged_active_low_relay_is_inverted(pins: Pins) -> None:
    backend = open_backend("gpiod", "pinctrl-rp1")
    relay = GpioRelay(backend, 5, active_high=False)
    assert pins.level[5] is True, "an active-low relay is off while the line is high"
    relay.on()
    assert pins.level[5] is False


def test_gpiod_finds_its_chip_by_label_and_names_the_ones_it_saw(pins: Pins) -> None:
    backend = open_backend("gpiod", "pinctrl-rp1")
    assert isinstance(backend, GpiodBackend) and backend.path.endswith("gpiochip1")
    with pytest.raises(DeviceError, match=r"no GPIO chip labelled 'pinctrl-xyz' \(found: gpiochip0=pinctrl-bcm2711, gpiochip1=pinctrl-rp1\)"):
        open_backend("gpiod", "pinctrl-xyz")


def test_a_line_claimed_twice_is_a_device_error(pins: Pins) -> None:
    backend = open_backend("gpiod", "pinctrl-rp1")
    GpioRelay(backend, 17)
    with pytest.raises(DeviceError, match="line 17: claim failed"):
        GpioRelay(open_backend("gpiod", "pinctrl-rp1"), 17)


def test_missing_backend_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "gpiod", None)
    with pytest.raises(DeviceError, match=r"RPi.GPIO cannot be loaded .*rpi extra"):
        RpiGpioBackend()
    with pytest.raises(DeviceError, match=r"gpiod cannot be loaded .*libgpiod v2"):
        open_backend("gpiod", "pinctrl-rp1")


def test_gpio_stack_light_and_buttons(pins: Pins) -> None:
    backend = open_backend("rpi_gpio", "")
    GpioSignals(backend, {"green": 22, "red": 23, "buzzer": 24}).show("green", False)
    assert (pins.level[22], pins.level[23], pins.level[24]) == (True, False, False)
    buttons = GpioButtons(backend, {"confirm": 5, "abort": 6}, pressed_low=True)
    assert pins.pull[5] and buttons.pressed() == set(), "pulled up: released reads high"
    pins.external[6] = False
    assert buttons.pressed() == {"abort"}
