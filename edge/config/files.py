"""The files a config names, checked as the daemon will meet them: as the service user.

`edge check-config` run by root used to open the city's password file as root, pass, and leave
the unit's own pre-start check (run as station-edge) to fail. Run by root, these checks are made
by a child process holding the service user's ids, so every directory on the way, group
membership and ACLs count exactly as they will for the daemon. Secrets readable by others are
warned about: a manager in the service user's group reads the records, not the city's password.
"""

from __future__ import annotations

import grp
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from .. import users

if TYPE_CHECKING:
    from . import Config


def named_files(config: Config) -> list[tuple[str, Path, bool]]:
    """(config key, path, is a secret) of every file the daemon reads at start."""
    found: list[tuple[str, Path, bool]] = []
    simulated = config.simulators is not None  # a simulated city and broker make their certificates
    city = config.city
    if city is not None:
        found += [("city.password_file", city.password_file, True)]
        if not simulated:
            found += [("city.ca_bundle", city.ca_bundle, False), ("city.client_cert", city.client_cert, False),
                      ("city.client_key", city.client_key, True)]
    fleet = config.fleet
    if fleet is not None and not simulated:
        broker = fleet.broker
        found += [("fleet.broker.password_file", broker.password_file, True), ("fleet.broker.ca_file", broker.ca_file, False),
                  ("fleet.broker.client_cert", broker.client_cert, False), ("fleet.broker.client_key", broker.client_key, True),
                  ("fleet.command_key_file", fleet.command_key_file, True)]
    webapp = config.webapp
    if webapp is not None and webapp.enabled and webapp.tls is not None and not simulated:
        found += [("webapp.tls.cert", webapp.tls.cert, False), ("webapp.tls.key", webapp.tls.key, True)]
    return [(key, path, secret) for key, path, secret in found if path is not None]


def _unreadable(path: Path) -> str | None:
    try:
        with path.open("rb"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _mode(path: Path) -> str:
    info = path.stat()
    return (f"owner {users.user_name(info.st_uid)}, group {users.group_name(info.st_gid)},"
            f" mode {stat.S_IMODE(info.st_mode):04o}")


def problems(config: Config) -> list[str]:
    """Each named file the daemon's user cannot read."""
    user = users.service_user()
    who = users.SERVICE_USER if user is not None else users.me()
    found = []
    for key, path, _secret in named_files(config):
        reason = users.as_user(user, lambda path=path: _unreadable(path))  # type: ignore[misc]
        if reason is None:
            continue
        try:
            how = f" ({_mode(path)})" if path.exists() else ""
        except OSError:
            how = ""
        if not how:  # not there at all (or not even for root to look at): the OS's word suffices
            found.append(f"{key} {path}: {reason}")
        else:
            found.append(f"{key} {path}: {who} cannot read it: {reason}{how}; give it to {users.SERVICE_USER}"
                         f" (chown {users.SERVICE_USER}: {path}; README, Running a station)")
    return found


def warnings(config: Config) -> list[str]:
    """Secrets that users other than the service user can read."""
    found = []
    for key, path, secret in named_files(config):
        try:
            info = path.stat()
        except OSError:
            continue  # a problem already, if the daemon cannot read it
        mode = stat.S_IMODE(info.st_mode)
        if not secret:
            continue
        if mode & 0o004:
            found.append(f"{key} {path}: readable by every user of this machine ({_mode(path)});"
                         f" chmod 0600 and chown {users.SERVICE_USER}: {path}")
            continue
        if mode & 0o040:
            try:
                group = grp.getgrgid(info.st_gid)
            except KeyError:
                continue
            members = sorted(set(group.gr_mem) - {users.SERVICE_USER, users.user_name(info.st_uid)})
            if members:
                found.append(f"{key} {path}: readable by the members of group {group.gr_name} ({', '.join(members)});"
                             f" chmod 0600 and chown {users.SERVICE_USER}: {path}")
    return found
