"""The status page's footer in chromium says when the backup is missing or failed, and stops
saying it once a backup has been delivered: derived from the last outcome and the clock at each
refresh, never left over."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from edge.backup.run import backup

from .conftest import SimStation
from .screen_support import base_url, browser, text_of, wait_text

__all__ = ["browser"]  # the fixture, used by name


def test_footer_says_missing_then_failed_then_nothing(make_station: Callable[..., SimStation], browser: Any,
                                                      tmp_path: Path) -> None:
    usb = tmp_path / "usb"

    def with_backup(raw: dict[str, Any]) -> None:
        raw["backup"] = {"local_dir": str(usb)}

    station = make_station(with_backup)
    browser.get(base_url(station) + "/")
    wait_text(browser, "#backup", "备份缺失 / backup missing: no backup has been made yet")
    outcome = backup(station.config)  # the USB disk is not there
    assert not outcome.ok
    wait_text(browser, "#backup", "备份失败 / backup failed: the last backup failed")
    assert "is the USB disk mounted?" in text_of(browser, "#backup")
    usb.mkdir()
    assert backup(station.config).ok
    wait_text(browser, "#backup", "", absent="备份")
    assert text_of(browser, "#backup") == ""
