"""`edge sync ...` and `edge cache ...` as a station manager runs them, against the city simulator."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import ConfigError, load_config
from edge.daemon.station import open_store
from simulators.city import CitySim
from sync.profile import load_profile

from .city_support import assert_local_times, finished_fills, registry
from .conftest import write_config

EDGE = [sys.executable, "-m", "edge.cli"]


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args], capture_output=True, text=True, timeout=120)


def station_for(city: CitySim, ca: Path, tmp_path: Path) -> Path:
    def with_city(raw: dict[str, Any]) -> None:
        del raw["simulators"]
        raw["city"] = {"profile": "chongqing", "base_url": city.base_url, "ca_bundle": str(ca), "username": "station",
                       "password": "secret", "upload": {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}}

    return write_config(tmp_path, with_city)


@pytest.mark.slow
def test_push_status_retry_refresh_and_show(city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path) -> None:
    rows = registry(80)
    city = CitySim(load_profile("chongqing"), rows, tls=city_tls[0]).start()
    try:
        config_path = station_for(city, city_tls[1], tmp_path)
        config = str(config_path)
        store = open_store(load_config(config_path))
        finished_fills(store, [rows[0]["id"], "500112999999999", rows[1]["id"]])
        store.close()

        status = json.loads(edge("sync", "status", "--json", "--config", config).stdout)
        assert (status["pending"], status["sent"], status["dead"], status["last_success_at"]) == (6, 0, 0, None)

        push = edge("sync", "push", "--config", config)
        assert push.returncode == 0, push.stderr
        assert "sent 4, dead 2, still pending 0" in push.stdout
        assert "\r" not in push.stderr  # a pipe gets no progress bar redraws
        store = open_store(load_config(config_path))
        assert assert_local_times(city, store) == 4  # two delivered fills: filling date and trace time
        store.close()

        human = edge("sync", "status", "--config", config).stdout
        assert "dead letters     2" in human and "气瓶档案不存在" in human and "last success     20" in human
        dead_id = json.loads(edge("sync", "status", "--json", "--config", config).stdout)["dead_letters"][0]["id"]

        retry_one = json.loads(edge("sync", "retry", str(dead_id), "--json", "--config", config).stdout)
        assert retry_one == {"requeued": 1}
        assert edge("sync", "retry", "--config", config).returncode == 2  # neither an ID nor --all-dead
        missing = edge("sync", "retry", "99999", "--config", config)
        assert missing.returncode == 2 and "no outbox row 99999" in missing.stderr
        sent = edge("sync", "retry", "1", "--config", config)
        assert sent.returncode == 2 and "is sent, not a dead letter" in sent.stderr
        assert json.loads(edge("sync", "retry", "--all-dead", "--json", "--config", config).stdout) == {"requeued": 1}
        assert json.loads(edge("sync", "status", "--json", "--config", config).stdout)["pending"] == 2

        refresh = edge("cache", "refresh", "--full", "--json", "--config", config)
        assert refresh.returncode == 0, refresh.stderr
        assert json.loads(refresh.stdout)["cylinders"] == 80
        show = edge("cache", "show", rows[3]["qr_content"], "--config", config)
        assert show.returncode == 0 and rows[3]["id"] in show.stdout and "信息化编码" in show.stdout
        shown = json.loads(edge("cache", "show", rows[3]["info_code"], "--json", "--config", config).stdout)
        assert shown["found"] and shown["cylinder"]["status"] == rows[3]["status"] and shown["cache_age_s"] < 60
        assert edge("cache", "show", "999240000001", "--config", config).returncode == 1
        assert edge("cache", "show", "\x1b[2J", "--config", config).returncode == 2
    finally:
        city.stop()


def test_push_with_the_city_down_gives_up_at_its_timeout_and_keeps_everything(
    city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path
) -> None:
    rows = registry(20)
    city = CitySim(load_profile("chongqing"), rows, tls=city_tls[0]).start()
    config_path = station_for(city, city_tls[1], tmp_path)
    city.stop()
    store = open_store(load_config(config_path))
    finished_fills(store, [rows[0]["id"]])
    store.close()
    push = edge("sync", "push", "--json", "--timeout", "1", "--config", str(config_path))
    assert push.returncode == 1
    result = json.loads(push.stdout)
    assert result["sent"] == 0 and result["pending"] == 2 and "cannot reach" in result["last_error"]
    refresh = edge("cache", "refresh", "--config", str(config_path))
    assert refresh.returncode == 1 and "cache age is unchanged" in refresh.stderr


@pytest.mark.parametrize(
    "change, where, expected",
    [
        (lambda c: c.update(base_url="http://city.example.cn"), "city", "an https:// base_url"),
        (lambda c: c.update(password_env="X"), "city", "exactly one of password, password_file, password_env"),
        (lambda c: c.update(profile="atlantis"), "city.profile", "a profile file"),
        (lambda c: c.update(retries=3), "city.retries", "unknown key"),
    ],
)
def test_city_config_problems_name_their_key(tmp_path: Path, change: Any, where: str, expected: str) -> None:
    def with_city(raw: dict[str, Any]) -> None:
        raw["city"] = {"profile": "chongqing", "base_url": "https://city.example.cn", "username": "s", "password": "p"}
        change(raw["city"])

    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, with_city))
    assert where in str(caught.value) and expected in str(caught.value)


def test_a_broken_profile_is_reported_against_its_own_file_and_line(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    bad = yaml.safe_load((Path(__file__).parent / "profiles" / "other-city.yaml").read_text(encoding="utf-8"))
    bad["fields"]["filling"]["operater"] = "czry"
    (profiles / "mycity.yaml").write_text(yaml.safe_dump(bad, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def with_city(raw: dict[str, Any]) -> None:
        raw["city"] = {"profile": "mycity", "base_url": "https://city.example.cn", "username": "s", "password": "p"}

    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, with_city))
    message = str(caught.value)
    assert "mycity.yaml:" in message and "fields" in message and "operater" in message


def test_requeued_dead_letters_the_city_already_holds_deliver_as_duplicates_and_a_captive_portal_shows(
    city_tls: tuple[ssl.SSLContext, Path], tmp_path: Path
) -> None:
    rows = registry(20)
    city = CitySim(load_profile("signed-gateway"), rows, tls=city_tls[0]).start()
    city.ignore_keys(strict_fields=True)

    def with_city(raw: dict[str, Any]) -> None:
        del raw["simulators"]
        raw["city"] = {"profile": "signed-gateway", "base_url": city.base_url, "ca_bundle": str(city_tls[1]),
                       "username": "station", "password": "secret",
                       "upload": {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}}

    try:
        config_path = write_config(tmp_path, with_city)
        config = str(config_path)
        store = open_store(load_config(config_path))
        finished_fills(store, [rows[0]["id"], rows[1]["id"]])
        store.close()
        assert "sent 4, dead 0" in edge("sync", "push", "--config", config).stdout
        # Dead letters from before the profile listed the city's "already exists" code.
        store = open_store(load_config(config_path))
        with store.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'dead', last_error = 'city code 4009: 记录已存在'")
        store.close()
        assert json.loads(edge("sync", "retry", "--all-dead", "--json", "--config", config).stdout) == {"requeued": 4}
        push = edge("sync", "push", "--json", "--config", config)
        assert json.loads(push.stdout) == {"sent": 4, "dead": 0, "pending": 0, "last_error": None}, push.stderr
        assert len(city.records("filling")) == 2 and city.duplicates == 4

        store = open_store(load_config(config_path))
        finished_fills(store, [rows[2]["id"]], first=2)
        store.close()
        city.captive(60)
        push = edge("sync", "push", "--timeout", "2", "--config", config)
        assert push.returncode == 1 and "still pending 2" in push.stdout
        human = edge("sync", "status", "--config", config).stdout
        assert "dead letters     0" in human and "condition        the city's replies are not its envelope" in human
        assert "captive portal" in human
    finally:
        city.stop()
    store = open_store(load_config(config_path))
    try:
        assert store.query("SELECT count(*) AS n FROM journal WHERE kind = 'upload_duplicate'")[0]["n"] == 4
    finally:
        store.close()
