"""The glance at a config that `edge status` takes instead of validating the whole file: the same
values as the full load, the validator's own error where the keys cannot be read, no pydantic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.config import ConfigError, load_config
from edge.config.glance import glance, read

from .conftest import write_config


def test_a_glance_sees_what_the_full_load_sees(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    config = load_config(path)
    seen = glance(path)
    assert seen.owner_unit == config.station.owner_unit
    assert seen.tz == config.tz
    assert seen.store_path == config.store.path
    assert seen.lanes == tuple(lane.id for lane in config.lanes) == ("A", "B")


def test_the_default_time_zone_is_the_models(tmp_path: Path) -> None:
    path = write_config(tmp_path, lambda raw: raw["station"].pop("timezone", None))
    assert glance(path).tz == load_config(path).tz
    other = write_config(tmp_path, lambda raw: raw["station"].update(timezone="Asia/Urumqi"))
    assert str(glance(other).tz) == "Asia/Urumqi"


@pytest.mark.parametrize(
    "break_it, where",
    [
        (lambda raw: raw.pop("lanes"), "lanes"),
        (lambda raw: raw["station"].update(timezone="Mars/Olympus"), "station.timezone"),
        (lambda raw: raw["store"].update(path=17), "store.path"),
        (lambda raw: raw["lanes"][1].pop("id"), "lanes.1.id"),
        (lambda raw: raw["station"].update(owner_unit=""), "station.owner_unit"),
    ],
    ids=["no-lanes", "unknown-zone", "path-not-text", "lane-without-id", "empty-name"],
)
def test_keys_it_cannot_read_get_the_validators_error(tmp_path: Path, break_it, where: str) -> None:  # type: ignore[no-untyped-def]
    path = write_config(tmp_path, break_it)
    with pytest.raises(ConfigError) as info:
        glance(path)
    assert where in str(info.value) and str(path) in str(info.value)


def test_not_yaml_and_no_file_are_the_loaders_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("station: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="valid YAML"):
        glance(bad)
    with pytest.raises(ConfigError, match="a readable YAML file"):
        glance(tmp_path / "missing.yaml")


def test_a_glance_reads_only_its_keys(tmp_path: Path) -> None:
    """A problem elsewhere in the file is check-config's to report, not the glance's."""
    path = write_config(tmp_path, lambda raw: raw["lanes"][0]["scale"].update(timeout_s=-1))
    with pytest.raises(ConfigError):
        load_config(path)
    assert read(path).lanes == ("A", "B")


def test_a_glance_loads_no_pydantic(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    code = ("import sys; from edge.config.glance import glance; "
            f"print(glance({str(path)!r}).owner_unit); print('pydantic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [yaml.safe_load(path.read_text(encoding="utf-8"))["station"]["owner_unit"], "False"]
