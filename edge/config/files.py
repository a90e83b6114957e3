"""The files a config names, checked as the daemon will meet them: as the service user.

`edge check-config` run by root used to open the city's password file as root, pass, and leave
the unit's own pre-start check (run as station-edge) to fail. Run by root, these checks are made
by a child process holding the service user's ids, so every directory on the way, group
membership and ACLs count exactly as they will for the daemon. Secrets readable by others are
warned about: a manager in the service user's group reads the records, not the city's password.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..store import access

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


def service_user() -> pwd.struct_passwd | None:
    """The user to check as: the service user when root runs the check and that user exists
    (None: check as this process, which is then the daemon's user or someone trying a config)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(access.SERVICE_USER)
    except KeyError:
        return None


def as_user(user: pwd.struct_passwd | None, check: Callable[[], str | None]) -> str | None:
    """check() run with the user's ids (in a child process), or here when user is None."""
    if user is None:
        return check()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: take the user's ids, check, say what was found, and leave at once
        try:
            os.close(read)
            os.setgroups(os.getgrouplist(user.pw_name, user.pw_gid))
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.write(write, (check() or "").encode("utf-8"))
            os._exit(0)
        except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the caller
            os._exit(1)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode("utf-8")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return f"could not be checked as {user.pw_name}"
    return said or None


def _unreadable(path: Path) -> str | None:
    try:
        with path.open("rb"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _mode(path: Path) -> str:
    info = path.stat()
    return (f"owner {access.user_name(info.st_uid)}, group {access.group_name(info.st_gid)},"
            f" mode {stat.S_IMODE(info.st_mode):04o}")


def problems(config: Config) -> list[str]:
    """Each named file the daemon's user cannot read, and a store it could not write."""
    user = service_user()
    who = access.SERVICE_USER if user is not None else access.me()
    found = []
    for key, path, _secret in named_files(config):
        reason = as_user(user, lambda path=path: _unreadable(path))  # type: ignore[misc]
        if reason is None:
            continue
        try:
            how = f" ({_mode(path)})" if path.exists() else ""
        except OSError:
            how = ""
        if not how:  # not there at all (or not even for root to look at): the OS's word suffices
            found.append(f"{key} {path}: {reason}")
        else:
            found.append(f"{key} {path}: {who} cannot read it: {reason}{how}; give it to {access.SERVICE_USER}"
                         f" (chown {access.SERVICE_USER}: {path}; README, Running a station)")
    store = Path(config.store.path)
    if user is not None or access.me() == access.SERVICE_USER:  # not for a manager trying a config
        problem = as_user(user, lambda: access.write_problem(store))
        if problem is not None:
            found.append(f"store.path {problem}")
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
                         f" chmod 0600 and chown {access.SERVICE_USER}: {path}")
            continue
        if mode & 0o040:
            try:
                group = grp.getgrgid(info.st_gid)
            except KeyError:
                continue
            members = sorted(set(group.gr_mem) - {access.SERVICE_USER, access.user_name(info.st_uid)})
            if members:
                found.append(f"{key} {path}: readable by the members of group {group.gr_name} ({', '.join(members)});"
                             f" chmod 0600 and chown {access.SERVICE_USER}: {path}")
    return found
