"""The `backup:` section: where `edge backup` puts its copies of the store and how many it keeps.

A station without it has no backup, and its status says so only through the README: the section
is opt-in, like `fleet:`. With it, at least one target must be named: a local directory (a USB
disk's mount point, which must exist, so an unplugged disk fails loudly instead of filling the SD
card) and/or an SFTP server the company runs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from .base import Strict
from .glance import BACKUP_MAX_AGE_HOURS

HOST_PATTERN = r"^[A-Za-z0-9._:-]{1,253}$"


class SftpTarget(Strict):
    """An SSH server's directory, reached with a key; the server is known by its host key, never
    trusted on first use."""

    host: str = Field(pattern=HOST_PATTERN)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    key_file: Path  # the private key (no passphrase: the timer runs unattended)
    known_hosts: Path  # the server's host key, as `ssh-keyscan -p PORT HOST` prints it
    path: str = Field(min_length=1, max_length=1000)  # the directory on the server; it must exist
    timeout_s: float = Field(default=20.0, gt=0, le=600)


class BackupConfig(Strict):
    local_dir: Path | None = None
    sftp: SftpTarget | None = None
    # Rotation: the newest backup of each of the last keep_daily days that have one, and the newest
    # of each of the last keep_monthly months; the newest backup is always kept.
    keep_daily: int = Field(default=14, ge=1, le=3660)
    keep_monthly: int = Field(default=12, ge=0, le=1200)
    # Older than this, the last good backup is "missing": the status page, metrics and `edge status` say so.
    max_age_hours: float = Field(default=BACKUP_MAX_AGE_HOURS, gt=0, le=24 * 366)
    # Where the copy is made and checked before it is compressed (default: beside the store).
    staging_dir: Path | None = None

    @model_validator(mode="after")
    def _some_target(self) -> BackupConfig:
        if self.local_dir is None and self.sftp is None:
            raise ValueError("a target: local_dir (a USB disk's directory) and/or sftp (an SSH server)")
        return self
