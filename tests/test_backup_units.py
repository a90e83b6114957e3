"""The backup's systemd service and timer: they verify as installed, and the service runs the
command the README documents, as the service user, with the store's directory writable."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
VENV = Path(sys.executable).parent.parent


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / name, encoding="utf-8")
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_backup_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    for name in ("station-edge-backup.service", "station-edge-backup.timer"):
        (tmp_path / name).write_text((SYSTEMD / name).read_text(encoding="utf-8").replace("/opt/station-edge/venv", str(VENV)))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "station-edge-backup.timer"),
                             str(tmp_path / "station-edge-backup.service")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_backup_service_runs_edge_backup_as_the_service_user_and_the_timer_catches_up() -> None:
    service = unit("station-edge-backup.service")["Service"]
    assert service["Type"] == "oneshot" and service["User"] == "station-edge"
    assert service["ExecStart"].split()[1:] == ["backup", "--config", "${EDGE_CONFIG}"]
    assert service["StateDirectory"] == "station-edge"  # the store's directory: the copy is staged there
    assert service["ProtectSystem"] == "full"  # strict would make a USB disk's mount point read-only
    timer = unit("station-edge-backup.timer")["Timer"]
    assert timer["Persistent"] == "true" and timer["OnCalendar"]
    result = subprocess.run(["sh", "-n", str(SYSTEMD / "install.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "station-edge-backup.timer" in (SYSTEMD / "install.sh").read_text(encoding="utf-8")
