"""Where backups go: a local directory (a USB disk) and an SFTP server.

Each target writes a backup under a temporary name and renames it when it is whole, so a copy cut
off by a pulled disk or a dropped link never passes for a backup. SFTP goes through paramiko (a
well-kept SSH implementation); the server must be in the configured known_hosts file: an unknown
or changed host key is refused, never accepted on first use.
"""

from __future__ import annotations

import os
import shutil
import socket
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from ..config.backup import SftpTarget
from ..store.durable import fsync_dir
from .snapshot import BackupError


class Target(Protocol):
    label: str

    def put(self, source: Path, name: str) -> None: ...
    def names(self) -> list[str]: ...
    def get(self, name: str, dest: Path) -> None: ...
    def delete(self, name: str) -> None: ...
    def close(self) -> None: ...


class LocalTarget:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.label = f"local {directory}"
        if not directory.is_dir():
            # Not created here: an unmounted USB disk would otherwise fill the card it should save.
            raise BackupError(f"{self.label}: no such directory (is the USB disk mounted?)")

    def put(self, source: Path, name: str) -> None:
        partial = self.directory / f".{name}.partial"
        try:
            with source.open("rb") as raw, partial.open("wb") as out:
                shutil.copyfileobj(raw, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(self.directory / name)
            fsync_dir(self.directory)
        except OSError as exc:
            with suppress(OSError):
                partial.unlink()
            raise BackupError(f"{self.label}: writing {name} failed: {exc.strerror or exc}") from None

    def names(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir() if p.is_file())

    def get(self, name: str, dest: Path) -> None:
        shutil.copyfile(self.directory / name, dest)

    def delete(self, name: str) -> None:
        (self.directory / name).unlink()

    def close(self) -> None:
        return None


class SftpDestination:
    def __init__(self, config: SftpTarget) -> None:
        import paramiko  # loaded only by a station that backs up over SSH

        self.config = config
        self.label = sftp_label(config)
        self._client = paramiko.SSHClient()
        try:
            self._client.load_host_keys(str(config.known_hosts))
        except OSError as exc:
            raise BackupError(f"{self.label}: known_hosts {config.known_hosts}: {exc.strerror or exc}") from None
        self._client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self._client.connect(
                config.host, port=config.port, username=config.user, key_filename=str(config.key_file),
                look_for_keys=False, allow_agent=False, timeout=config.timeout_s, banner_timeout=config.timeout_s,
                auth_timeout=config.timeout_s)
            self._sftp = self._client.open_sftp()
            self._sftp.get_channel().settimeout(config.timeout_s)
            self._sftp.stat(config.path)
        except (OSError, socket.timeout, paramiko.SSHException) as exc:
            self._client.close()
            raise BackupError(f"{self.label}: {_reason(exc)}") from None

    def _path(self, name: str) -> str:
        return f"{self.config.path.rstrip('/')}/{name}"

    def put(self, source: Path, name: str) -> None:
        partial = self._path(f".{name}.partial")
        try:
            self._sftp.put(str(source), partial, confirm=True)  # confirm: the size it holds is the size sent
            with suppress(OSError):
                self._sftp.remove(self._path(name))  # a re-run of the same second: the new copy wins
            self._sftp.rename(partial, self._path(name))  # plain SFTP rename: every server has it
        except (OSError, EOFError, socket.timeout) as exc:
            with suppress(Exception):
                self._sftp.remove(partial)
            raise BackupError(f"{self.label}: writing {name} failed: {_reason(exc)}") from None

    def names(self) -> list[str]:
        return sorted(self._sftp.listdir(self.config.path))

    def get(self, name: str, dest: Path) -> None:
        self._sftp.get(self._path(name), str(dest))

    def delete(self, name: str) -> None:
        self._sftp.remove(self._path(name))

    def close(self) -> None:
        self._client.close()


def _reason(exc: BaseException) -> str:
    import paramiko

    if isinstance(exc, paramiko.BadHostKeyException):
        return "the server's host key is not the one in known_hosts: refused (a changed server, or someone in between)"
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return f"{exc}: add the server's key (ssh-keyscan) to the configured known_hosts"
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed ({exc}): is the key in the server's authorized_keys?"
    if isinstance(exc, FileNotFoundError):
        return "no such directory on the server"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "unreachable (timed out)"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return f"unreachable ({', '.join(sorted({e.strerror or str(e) for e in exc.errors.values()}))})"
    if isinstance(exc, OSError):
        return f"unreachable or refused ({exc.strerror or exc})"
    return str(exc) or type(exc).__name__


def open_targets(config: Any) -> tuple[list[Target], list[tuple[str, str]]]:
    """The configured targets that could be opened, and (label, error) for those that could not."""
    targets: list[Target] = []
    failed: list[tuple[str, str]] = []
    backup = config.backup
    if backup.local_dir is not None:
        try:
            targets.append(LocalTarget(backup.local_dir))
        except BackupError as exc:
            failed.append((f"local {backup.local_dir}", str(exc)))
    if backup.sftp is not None:
        try:
            targets.append(SftpDestination(backup.sftp))
        except BackupError as exc:
            failed.append((sftp_label(backup.sftp), str(exc)))
    return targets, failed


def sftp_label(config: SftpTarget) -> str:
    return f"sftp {config.user}@{config.host}:{config.port} {config.path}"
