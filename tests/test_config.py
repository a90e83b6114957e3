import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
EDGE = [sys.executable, "-m", "edge.cli"]


@pytest.mark.parametrize("name", ["simulated.yaml", "station.example.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    result = subprocess.run([*EDGE, "check-config", str(ROOT / "config" / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


BAD = """\
station:
  owner_unit: 重庆渝能燃气有限公司
  unit_code: "1"
  region: "50011"
  timezone: Mars/Olympus
store: {path: x.db}
operators:
  - {id: op1, name: 一个名字特别特别长的充装人员}
lanes:
  - id: A
    medium: G99
    operator: op1
    scanners: [{driver: serial, port: /dev/ttyACM0}]
    scale:
      driver: modbus_tcp
      host: 10.0.0.5
      weight: {address: 0, type: int64}
      colour: red
    relay: {driver: modbus_coil, host: 10.0.0.5, coil: 0}
    fill: {targets_kg: {YSP15: 14.5}, tolerance_kg: -1}
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
        (11, "lanes.0.medium", "'G99'"),
        (17, "lanes.0.scale.weight.type", "'int64'"),
        (18, "lanes.0.scale.colour", "an unknown key"),
        (20, "lanes.0.fill.tolerance_kg", "-1"),
    ]
    assert len(lines) == len(expected)
    for line, (number, key, got) in zip(lines, expected):
        assert line.startswith(f"{path}:{number}: {key}: got {got}, expected "), line


def test_missing_keys_and_cross_checks(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        BAD.replace('  region: "50011"\n', "").replace("G99", "G13").replace("int64", "int32")
        .replace("      colour: red\n", "").replace("-1", "0.5").replace("一个名字特别特别长的充装人员", "张伟")
        .replace("operator: op1", "operator: op1\n    checker: op1"),
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
    assert config.operator_name("op-zhang") == "张伟"


def test_cross_section_problems_name_their_key(tmp_path: Path) -> None:
    source = (ROOT / "config" / "simulated.yaml").read_text(encoding="utf-8")
    broken = source.replace("  - id: B\n", "  - id: A\n").replace("operator: op-li", "operator: op-nobody")
    broken = broken.replace("port: 15021, device_id: 2, coil: 0}", "port: 15020, device_id: 2, coil: 0}", 1)
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
