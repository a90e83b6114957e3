"""The install as the README gives it, in a throwaway root: `make install`, the city's password
file, the first ledger import as the service user, `check-config` as root and as the service user,
and the read-only commands as the service user, as a manager in its group and as a user outside it.

It runs in a mount namespace of its own: /etc, /opt and /var/lib are overlays whose changes (the
users useradd makes, the venv, the store) vanish with it, and /tmp is a fresh tmpfs; nothing on this
machine changes. The install is the real one: systemd/install.sh makes a venv and pip installs the
package with the skeleton's extras. No systemd runs as PID 1 here, so the unit is installed but not
started (tests/test_systemd.py runs its command lines)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .permissions_support import needs_root

ROOT = Path(__file__).resolve().parent.parent
EDGE = "/opt/station-edge/venv/bin/edge"
CONFIG = "/etc/station-edge/station.yaml"
LEDGER = "id,owner_unit,medium,status,tare_kg,fill_mass_kg,volume_l,qr_content\n" + "".join(
    f"CQ{n:04d},重庆渝能燃气有限公司,G13,在用,15.3,14.5,35.5,https://trace.example.gov.cn/q?code=CQ{n:04d}\n" for n in range(25))


def _readme_block() -> list[str]:
    """The install commands the README gives, one a line (the first shell block of its systemd section)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Running a station: systemd"):]
    block = section[section.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


# Each step writes NAME.rc, NAME.out and NAME.err; the script goes on after a failure, so the
# test can say which steps failed and why.
SCRIPT = r"""
set -u
scratch=$1; src=$2; out=$scratch/out
step() { name=$1; shift; "$@" >"$out/$name.out" 2>"$out/$name.err" </dev/null; echo $? >"$out/$name.rc"; }
for dir in etc opt var/lib; do
  mkdir -p "$scratch/upper/$dir" "$scratch/work/$dir"
  mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$scratch/upper/$dir,workdir=$scratch/work/$dir" "/$dir"
done
mount -t tmpfs -o mode=1777 tmpfs /tmp
getent passwd station-edge >/dev/null && { echo "station-edge exists before the install" >&2; exit 3; }

# The README's commands.
(cd "$src" && step install env PYTHON=/usr/bin/python3 make install)
printf 'city-secret\n' | install -m 0600 -o station-edge -g station-edge /dev/stdin /etc/station-edge/city-password
echo $? >"$out/password.rc"
install -m 0644 "$scratch/ledger.csv" /tmp/ledger.csv
step import_root EDGE cache import /tmp/ledger.csv  # the trap: root first, into the service user's directory
step import runuser -u station-edge -- EDGE cache import /tmp/ledger.csv
step check_root EDGE check-config CONFIG --json
step check_service runuser -u station-edge -- EDGE check-config CONFIG

# Who reads the records: the service user, a manager in its group, a user outside it.
useradd --no-create-home --shell /bin/sh alice
usermod -aG station-edge alice
useradd --no-create-home --shell /bin/sh bob
step status_service runuser -u station-edge -- EDGE status --json
step records_alice runuser -u alice -- EDGE records --json
step status_alice runuser -u alice -- EDGE status --json
step verify_alice runuser -u alice -- EDGE verify
step cache_alice runuser -u alice -- EDGE cache show CQ0007 --json
step status_bob runuser -u bob -- EDGE status
step verify_service runuser -u station-edge -- EDGE verify
ls -l /var/lib/station-edge >"$out/state.ls"

# The traps: a password file only root can read, or one every user can.
chmod 0600 /etc/station-edge/city-password && chown root:root /etc/station-edge/city-password
step check_root_only EDGE check-config CONFIG
chmod 0644 /etc/station-edge/city-password
step check_world EDGE check-config CONFIG
chgrp station-edge /etc/station-edge/city-password && chmod 0640 /etc/station-edge/city-password
step check_group EDGE check-config CONFIG
# A store that root made (an import run as root into a fresh directory, say): named, as root and as
# the unit's pre-start check, and by the service user's next command.
chown root:root /var/lib/station-edge/station.db
step check_root_store EDGE check-config CONFIG
step check_service_store runuser -u station-edge -- EDGE check-config CONFIG
step import_service_store runuser -u station-edge -- EDGE cache import /tmp/ledger.csv
""".replace("EDGE", EDGE).replace("CONFIG", CONFIG)


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    scratch = Path(tempfile.mkdtemp(prefix="edge-install-", dir="/var/tmp"))
    try:
        (scratch / "out").mkdir()
        (scratch / "ledger.csv").write_text(LEDGER, encoding="utf-8")
        src = scratch / "src"  # a copy: pip's build writes build/ and egg-info beside the sources
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode().split("\0")
        for name in filter(None, listed):
            if (ROOT / name).is_file():
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, src / name)
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRIPT, "sh", str(scratch), str(src)],
                                capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stderr
        yield scratch / "out"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _step(out: Path, name: str) -> tuple[int, str, str]:
    return (int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(encoding="utf-8"),
            (out / f"{name}.err").read_text(encoding="utf-8"))


def test_install_help_lists_every_extra_a_station_can_need() -> None:
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"])
    helped = subprocess.run(["sh", str(ROOT / "systemd" / "install.sh"), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0
    listed = set(re.findall(r"^\s{20}(\S+)\s", helped.stdout, re.MULTILINE))
    assert listed == extras - {"sim", "test"}, listed  # the simulators' and the test suite's are not a station's


def test_the_readme_install_commands_are_the_ones_tested() -> None:
    """The test below runs these; if the README changes, so must the test."""
    assert _readme_block() == [
        "make install",
        "$EDITOR /etc/station-edge/station.yaml",
        "install -m 0600 -o station-edge -g station-edge /dev/stdin /etc/station-edge/city-password",
        "install -m 0644 ledger.xlsx /tmp/ledger.xlsx",
        "runuser -u station-edge -- /opt/station-edge/venv/bin/edge cache import /tmp/ledger.xlsx",
        "/opt/station-edge/venv/bin/edge check-config /etc/station-edge/station.yaml",
        "systemctl start station-edge && journalctl -u station-edge -f",
    ]


@needs_root
@pytest.mark.slow
def test_install_per_the_readme_then_read_as_service_user_manager_and_outsider(installed: Path) -> None:
    out = installed
    rc, stdout, stderr = _step(out, "install")
    assert rc == 0, stdout[-2000:] + stderr[-2000:]
    assert (out / "password.rc").read_text().strip() == "0"
    rc, stdout, stderr = _step(out, "import")
    assert rc == 0 and "loaded 25 cylinders" in stdout, stderr
    # The skeleton as shipped, with the password file as the README makes it: clean, as root and
    # as the unit's pre-start check (station-edge) alike, and no warning.
    rc, stdout, stderr = _step(out, "check_root")
    assert rc == 0 and json.loads(stdout)["ok"] and json.loads(stdout)["warnings"] == [], stdout + stderr
    rc, stdout, stderr = _step(out, "check_service")
    assert rc == 0 and "OK" in stdout and "warning" not in stderr, stderr
    rc, stdout, stderr = _step(out, "status_service")
    assert rc == 0 and json.loads(stdout)["cylinders_cached"] == 25, stderr
    # A manager in the group: the records, with the daemon stopped, writing nothing.
    rc, stdout, stderr = _step(out, "records_alice")
    assert rc == 0 and json.loads(stdout) == [], stderr
    rc, stdout, stderr = _step(out, "status_alice")
    assert rc == 0 and json.loads(stdout)["cylinders_cached"] == 25, stderr
    rc, stdout, stderr = _step(out, "verify_alice")
    assert rc == 0 and "journal OK" in stdout and "checkpoint not recorded" in stdout, stdout + stderr
    rc, stdout, stderr = _step(out, "cache_alice")
    assert rc == 0 and json.loads(stdout)["found"], stderr
    rc, stdout, stderr = _step(out, "verify_service")
    assert rc == 0 and "checkpoint not recorded" not in stdout, stdout + stderr
    # Outside the group: one plain line, no traceback.
    rc, stdout, stderr = _step(out, "status_bob")
    assert rc != 0 and "ermission denied" in stderr, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    state = (out / "state.ls").read_text()
    assert all(line.split()[2:4] == ["station-edge", "station-edge"] for line in state.splitlines()[1:]), state


@needs_root
@pytest.mark.slow
def test_the_install_traps_are_named(installed: Path) -> None:
    rc, _, stderr = _step(installed, "check_root_only")
    assert rc == 2 and "city.password_file /etc/station-edge/city-password: station-edge cannot read it" in stderr, stderr
    rc, _, stderr = _step(installed, "import_root")
    assert rc == 4 and "run as station-edge" in stderr, stderr
    rc, stdout, stderr = _step(installed, "check_world")
    assert rc == 0 and "warning: city.password_file" in stderr and "readable by every user" in stderr, stderr
    # Group-readable: the group holds the managers too, so the secret is theirs to read.
    rc, stdout, stderr = _step(installed, "check_group")
    assert rc == 0 and "readable by the members of group station-edge (alice)" in stderr, stderr
    for name in ("check_root_store", "check_service_store"):
        rc, _, stderr = _step(installed, name)
        assert rc == 2 and "store.path /var/lib/station-edge/station.db is owned by root: run as station-edge" in stderr, stderr
    rc, _, stderr = _step(installed, "import_service_store")
    assert rc == 4 and "station.db is owned by root: run as station-edge" in stderr, stderr
    assert "chown station-edge:station-edge /var/lib/station-edge/station.db*" in stderr and "readonly database" not in stderr


def test_the_ledger_template_names_every_column_the_import_reads_and_round_trips(tmp_path: Path) -> None:
    """`edge cache template`: the header a technician fills in, one cylinder a row, for the first import."""
    import csv
    import sys

    from edge.manager.cache_import import clean_row
    from edge.store.schema import CITY_FIELDS, STATION_FIELDS

    from .conftest import write_config

    edge = [sys.executable, "-m", "edge.cli"]
    out = tmp_path / "ledger.csv"
    made = subprocess.run([*edge, "cache", "template", "-o", str(out)], capture_output=True, text=True)
    assert made.returncode == 0 and "required: id (ID), owner_unit (使用单位名称)" in made.stdout, made.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM: Excel and WPS read the Chinese labels
    header = next(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert set(header) == set({**CITY_FIELDS, **STATION_FIELDS}.values()) and header[:4] == ["ID", "使用单位名称", "充装介质", "使用状态"]
    again = subprocess.run([*edge, "cache", "template", "-o", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "never overwrites" in again.stderr
    # Filled in as a technician would (required columns and a few more), it imports.
    values = {"ID": "CQ9001", "使用单位名称": "重庆渝能燃气有限公司", "充装介质": "G13", "使用状态": "在用", "皮重": "15.3",
              "充装量": "14.5", "容积": "35.5", "制造年月": "2020-05", "下次检验日期": "2027-05"}
    with out.open("a", encoding="utf-8", newline="") as stream:
        csv.writer(stream).writerow([values.get(column, "") for column in header])
    assert clean_row(dict(zip(header, [values.get(column, "") for column in header])))["id"] == "CQ9001"
    config = write_config(tmp_path)
    loaded = subprocess.run([*edge, "cache", "import", str(out), "--config", str(config), "--json"], capture_output=True, text=True)
    assert loaded.returncode == 0 and json.loads(loaded.stdout)["loaded"] == 1, loaded.stderr
    english = subprocess.run([*edge, "cache", "template", "--english"], capture_output=True, text=True)
    assert english.stdout.lstrip("\ufeff").startswith("id,owner_unit,medium,status,")
