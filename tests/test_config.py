import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.config import ConfigError, load_config

from .conftest import write_config

ROOT = Path(__file__).resolve().parent.parent
EDGE = [sys.executable, "-m", "edge.cli"]


def test_shipped_configs_are_valid() -> None:
    result = subprocess.run([*EDGE, "check-config", str(ROOT / "config" / "simulated.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    # The example is a valid schema for a real station; here it names what this machine lacks and
    # `run` would refuse: a password file in /etc, and the libraries of its GPIO and HID drivers.
    example = subprocess.run([*EDGE, "--json", "check-config", str(ROOT / "config" / "station.example.yaml")],
                             capture_output=True, text=True)
    report = json.loads(example.stdout)
    assert example.returncode == 2 and report["lanes"] == ["1", "2"]
    assert any("city.password_file /etc/station-edge/city-password" in p for p in report["problems"])


def test_check_config_strict_loads_drivers(tmp_path: Path) -> None:
    """Offline checks find what is missing on disk; --strict also does what `run` does first."""
    def real_scanner(raw: dict[str, Any]) -> None:
        del raw["simulators"]
        (tmp_path / "city-ca.pem").write_text("", encoding="utf-8")
        raw["lanes"][0]["scanners"] = [{"driver": "serial", "port": str(tmp_path / "no-such-tty")}]

    config = write_config(tmp_path, real_scanner)
    plain = subprocess.run([*EDGE, "check-config", "--config", str(config)], capture_output=True, text=True)
    assert plain.returncode == 0 and "--strict loads them" in plain.stdout
    strict = subprocess.run([*EDGE, "check-config", "--strict", "--config", str(config)], capture_output=True, text=True)
    assert strict.returncode == 2 and f"lane A scanner: serial port {tmp_path / 'no-such-tty'} does not exist" in strict.stderr
    gpio = write_config(tmp_path, lambda raw: raw["lanes"][0].update(relay={"driver": "gpio", "backend": "rpi_gpio", "line": 17}))
    refused = subprocess.run([*EDGE, "check-config", str(gpio)], capture_output=True, text=True)
    assert refused.returncode == 2 and "GPIO backend rpi_gpio: Python module RPi.GPIO is not installed" in refused.stderr
    password = write_config(tmp_path, lambda raw: raw["city"].update(password=None, password_file=str(tmp_path / "pw")))
    missing = subprocess.run([*EDGE, "check-config", "--config", str(password)], capture_output=True, text=True)
    assert missing.returncode == 2 and f"city.password_file {tmp_path / 'pw'}: No such file or directory" in missing.stderr


BAD = """\
station:
  owner_unit: 重庆渝能燃气有限公司
  unit_code: "1"
  region: "50011"
  timezone: Mars/Olympus
store: {path: x.db}
operators:
  - {id: op1, name: 一个名字特别特别长的充装人员}
  - {id: op2, name: 王芳}
lanes:
  - id: A
    medium: G99
    operator: op1
    checker: op2
    scanners: [{driver: serial, port: /dev/ttyACM0}]
    scale:
      driver: modbus
      bus: gw
      registers: {weight: {address: 0, type: int64}}
      colour: red
    relay: {driver: modbus_coil, bus: gw, coil: 0}
    fill: {targets_kg: {YSP15: 14.5}, tolerance_kg: -1}
buses:
  gw: {transport: tcp, host: 10.0.0.5}
"""


def test_every_problem_is_reported_with_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    result = subprocess.run([*EDGE, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    expected = [
        (4, "station.region", "'50011'"),
        (5, "station.timezone", "'Mars/Olympus'"),
        (8, "operators.0.name", "'一个名字特别特别长的充装人员'"),
        (12, "lanes.0.medium", "'G99'"),
        (19, "lanes.0.scale.registers.weight.type", "'int64'"),
        (20, "lanes.0.scale.colour", "an unknown key"),
        (22, "lanes.0.fill.tolerance_kg", "-1"),
    ]
    assert len(lines) == len(expected)
    for line, (number, key, got) in zip(lines, expected):
        assert line.startswith(f"{path}:{number}: {key}: got {got}, expected "), line


def test_missing_keys_and_cross_checks(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        BAD.replace('  region: "50011"\n', "").replace("G99", "G13").replace("int64", "int32")
        .replace("      colour: red\n", "").replace("-1", "0.5").replace("一个名字特别特别长的充装人员", "张伟")
        .replace("checker: op2", "checker: op1"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}:1: station.region: got nothing, expected this required key" in text
    assert "station.timezone" in text
    assert "a checker other than the operator" in text


def test_unknown_top_level_section_and_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("station: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"d.yaml:\d+: \(file\): got .*, expected valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="expected a readable YAML file"):
        load_config(tmp_path / "missing.yaml")


def test_typed_values() -> None:
    config = load_config(ROOT / "config" / "simulated.yaml")
    lane = config.lanes[0]
    assert lane.scale.poll_period_s == 0.05 and lane.fill.targets_kg["YSP15"] == 14.5
    assert str(config.tz) == "Asia/Shanghai"
    assert {op.id: op.name for op in config.operators}["op-zhang"] == "张伟"
    assert (lane.operator, lane.checker) == ("op-zhang", "chk-wang")


def test_cross_section_problems_name_their_key(tmp_path: Path) -> None:
    source = (ROOT / "config" / "simulated.yaml").read_text(encoding="utf-8")
    broken = source.replace("  - id: B\n", "  - id: A\n").replace("operator: op-li", "operator: op-nobody")
    broken = broken.replace("      bus: rs485-B\n      device_id: 2\n      coil: 0", "      bus: tcp-A\n      device_id: 2\n      coil: 0", 1)
    path = tmp_path / "cross.yaml"
    path.write_text(broken, encoding="utf-8")
    lines = broken.splitlines()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = {p.path: p for p in info.value.problems}
    assert set(found) == {"lanes.1.id", "lanes.1.operator", "lanes.1.relay.coil"}
    for problem in found.values():
        assert problem.path.rsplit(".", 1)[-1].split(".")[-1] in lines[problem.line - 1] or "relay" in lines[problem.line - 1]
    assert "not already used by lane A" in found["lanes.1.relay.coil"].expected


def _lane_yaml(relay: str, extra: str = "") -> str:
    return BAD.replace('  region: "50011"\n', '  region: "500112"\n').replace("Mars/Olympus", "Asia/Shanghai").replace(
        "一个名字特别特别长的充装人员", "张伟").replace("G99", "G13").replace("int64", "int32").replace(
        "      colour: red\n", extra).replace("-1", "0.5").replace("    relay: {driver: modbus_coil, bus: gw, coil: 0}", relay)


def test_active_low_valve_relay_is_refused_unless_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "gpio.yaml"
    path.write_text(_lane_yaml("    relay: {driver: gpio, backend: gpiod, line: 17, active_high: false}"), encoding="utf-8")
    with pytest.raises(ConfigError, match="active_high: true for a valve relay") as info:
        load_config(path)
    assert info.value.problems[0].path == "lanes.0.relay"
    path.write_text(
        _lane_yaml("    relay: {driver: gpio, backend: gpiod, line: 17, active_high: false, active_low_acknowledged: true}"),
        encoding="utf-8",
    )
    assert load_config(path).lanes[0].relay.active_high is False


def test_unknown_driver_and_unknown_bus_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "drv.yaml"
    path.write_text(_lane_yaml("    relay: {driver: modbus_coil, bus: nowhere, coil: 0}"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lanes.0.relay.bus: got 'nowhere', expected a bus named under buses \(gw\)"):
        load_config(path)
    path.write_text(_lane_yaml("    relay: {driver: telepathy, coil: 0}"), encoding="utf-8")
    with pytest.raises(ConfigError, match="lanes.0.relay.driver: got 'telepathy'"):
        load_config(path)


def test_shipped_register_maps_load_by_name_and_a_missing_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(_lane_yaml("    relay: {driver: modbus_coil, bus: gw, coil: 0}").replace(
        "      registers: {weight: {address: 0, type: int32}}\n", "      register_map: flintec-ft112\n"), encoding="utf-8")
    registers = load_config(path).lanes[0].scale.registers
    assert registers is not None and registers.name == "Flintec FT-112"
    assert registers.build().weight.address == 4  # "40005"
    path.write_text(path.read_text(encoding="utf-8").replace("flintec-ft112", "acme-9000"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"map.yaml:\d+: lanes.0.scale.register_map: got 'acme-9000', expected a register map file"):
        load_config(path)


def test_a_broken_register_map_file_is_reported_against_that_file(tmp_path: Path) -> None:
    (tmp_path / "scales").mkdir()
    (tmp_path / "scales" / "mine.yaml").write_text("weight: {address: '40001', type: float16}\n", encoding="utf-8")
    path = tmp_path / "local.yaml"
    path.write_text(_lane_yaml("    relay: {driver: modbus_coil, bus: gw, coil: 0}").replace(
        "      registers: {weight: {address: 0, type: int32}}\n", "      register_map: mine\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{tmp_path / 'scales' / 'mine.yaml'}:1: weight.type: got 'float16'")


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        ("{address: 1, type: uint16, stable_bit: 16}", "stable_bit 16 to be a bit of the 16-bit uint16 register (0..15)"),
        ("{address: 1, type: uint16, error_bits: [-1]}", "error_bits -1 to be a bit of the 16-bit uint16 register"),
        ("{address: 1, type: uint32, ok_bits: [32]}", "ok_bits 32 to be a bit of the 32-bit uint32 register (0..31)"),
        ("{address: 1, type: float32, motion_bit: 2}", "a status word of an integer type, not float32"),
        ("{address: 1, type: uint16, fields: [{bits: [12, 17], stable: [0]}]}", "fields.0.bits 17 to be a bit of the 16-bit"),
        ("{address: 1, type: uint16, fields: [{bits: [0, 1], error: [4]}]}", "error value 4 to fit bits 0..1 (0..3)"),
    ],
)
def test_status_bits_outside_their_register_are_refused_with_their_line(tmp_path: Path, status: str, problem: str) -> None:
    path = tmp_path / "s.yaml"
    good = (ROOT / "config" / "simulated.yaml").read_text(encoding="utf-8")
    inline = f"      registers: {{weight: {{address: 0, type: int32}}, status: [{status}]}}\n"
    path.write_text(good.replace("      register_map: flintec-ft112\n", inline, 1), encoding="utf-8")
    number = path.read_text(encoding="utf-8").splitlines().index(inline.rstrip("\n")) + 1
    result = subprocess.run([*EDGE, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{path}:{number}: lanes.0.scale.registers.status.0" in result.stderr
    assert problem in result.stderr


def test_register_map_and_inline_registers_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "both.yaml"
    good = (ROOT / "config" / "simulated.yaml").read_text(encoding="utf-8")
    both = "      register_map: flintec-ft112\n      registers: {weight: {address: 0, type: int32}}\n"
    path.write_text(good.replace("      register_map: flintec-ft112\n", both, 1), encoding="utf-8")
    number = path.read_text(encoding="utf-8").splitlines().index("      register_map: flintec-ft112") + 1
    result = subprocess.run([*EDGE, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{path}:{number}: lanes.0.scale.register_map: got 'flintec-ft112', expected register_map or registers, not both" in result.stderr


@pytest.mark.parametrize(
    "old, new, key, expected",
    [
        ("      leak_check_s: 0.5 ", "      leak_check_s: 5 ", "lanes.0.fill", "settle_timeout_s longer than settle_min_s + leak_check_s"),
        ("      frozen_samples: 20 ", "      frozen_samples: 2 ", "lanes.0.fill.frozen_samples", "greater than or equal to 3"),
        ("      no_flow_kg: 0.2", "      no_flow_kg: 0", "lanes.0.fill.no_flow_kg", "greater than 0"),
        ("  stall_factor: 3\n", "  stall_factor: 1\n", "guard.stall_factor", "greater than or equal to 1.5"),
        ("store:\n  path: var/station.db\n", "store:\n  path: var/station.db\n  control_sock: x\n", "store.control_sock", "an unknown key"),
    ],
)
def test_flow_guard_and_control_keys_are_validated(tmp_path: Path, old: str, new: str, key: str, expected: str) -> None:
    source = (ROOT / "config" / "simulated.yaml").read_text(encoding="utf-8")
    assert old in source
    path = tmp_path / "s.yaml"
    path.write_text(source.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f": {key}: " in str(info.value) and expected in str(info.value), str(info.value)


def test_reset_hold_must_outlast_the_debounce(tmp_path: Path) -> None:
    source = (ROOT / "config" / "simulated.yaml").read_text(encoding="utf-8")
    buttons = "    signals: {driver: modbus_coil, bus: tcp-A, device_id: 2, green: 1, amber: 2, red: 3, buzzer: 4}\n"
    assert buttons in source
    extra = "    buttons: {driver: modbus_input, bus: tcp-A, device_id: 2, abort: 1, reset: 2, reset_hold_s: 0.04}\n"
    path = tmp_path / "b.yaml"
    path.write_text(source.replace(buttons, buttons + extra, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match="lanes.0.buttons.*reset_hold_s longer than debounce_s"):
        load_config(path)
    config = load_config(ROOT / "config" / "simulated.yaml")
    assert config.store.control_path == Path("var/control.sock") and config.guard.floor_s == 0.8


def test_the_filling_licence_number_is_checked_against_the_licences_form(tmp_path: Path) -> None:
    """气瓶充装许可证编号 goes on every signed report: a typo is refused with the form it must take."""
    good = write_config(tmp_path, lambda raw: raw["station"].update(filling_licence="TS4250001-2027"))
    assert load_config(good).station.filling_licence == "TS4250001-2027"
    absent = write_config(tmp_path, lambda raw: raw["station"].pop("filling_licence", None))
    assert load_config(absent).station.filling_licence is None  # a station upgraded in place still starts
    for bad in ("TS425001-2027", "4250001", "TS4250001-27", "TS4250001\n", "TS4250001-2027 <b>"):
        path = write_config(tmp_path, lambda raw, bad=bad: raw["station"].update(filling_licence=bad))
        with pytest.raises(ConfigError, match=r"station.filling_licence: .*expected the filling licence number"):
            load_config(path)
