"""The users a station runs as: the service user (the unit's User=), and the names of uids and gids
for messages. Run by root, a check can be made as the service user (as_user), so what it finds is
what the daemon will meet."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable

SERVICE_USER = "station-edge"  # the unit's User= and Group=, created by systemd/install.sh


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def me() -> str:
    return user_name(os.geteuid())


def service_user() -> pwd.struct_passwd | None:
    """The user to check as: the service user when root runs the check and that user exists
    (None: check as this process, which is then the daemon's user or someone trying a config)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None


def as_user(user: pwd.struct_passwd | None, check: Callable[[], str | None]) -> str | None:
    """check() run with the user's ids (in a child process), or here when user is None. Doing it
    as the user, rather than reading modes, counts every directory on the way, every group and ACLs."""
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
