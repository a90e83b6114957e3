"""Who may read and write the store, said plainly before SQLite says it obscurely.

The store belongs to the service user (station-edge), in a directory its group may read: the
daemon writes it, a manager in that group reads it (read-only commands), anyone else is told what
they lack. SQLite's own words for these cases mislead ("attempt to write a readonly database" for a
store root created, "unable to open database file" for a directory a user may not enter).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..users import SERVICE_USER, as_user, group_name, me, service_user, user_name

WAL_SUFFIXES = ("-wal", "-shm")


def _described(path: Path) -> str:
    info = path.stat()
    return f"owner {user_name(info.st_uid)}, group {group_name(info.st_gid)}, mode {stat.S_IMODE(info.st_mode):04o}"


def _blocked_directory(path: Path) -> Path | None:
    """The first directory above `path` this process may not enter (None: it may reach it)."""
    for directory in reversed(path.absolute().parents):
        if directory.is_dir() and not os.access(directory, os.X_OK):
            return directory
    return None


def read_problem(path: Path, what: str = "the store") -> str | None:
    """Why this process cannot read the store (or config) at `path` (None: it can, as far as
    permissions go)."""
    blocked = _blocked_directory(path)
    target = blocked if blocked is not None else path
    if blocked is None and (not path.exists() or os.access(path, os.R_OK)):
        return None
    try:
        how = _described(target)
    except OSError:
        how = "its owner and mode cannot be read either"
    what = f"the directory {blocked}" if blocked is not None else what
    return (f"{path}: permission denied: {me()} may not read {what} ({how}); a manager reads the records as a"
            f" member of group {SERVICE_USER} (as root: usermod -aG {SERVICE_USER} {me()}, then log in again)")


def write_problem(path: Path) -> str | None:
    """Why this process could not write the existing store at `path`, or create one there."""
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        owner = parent.stat().st_uid
        if os.geteuid() == 0 and owner != 0:
            # Root can create it, but the daemon (its owner's user) then cannot write what root made.
            who = user_name(owner)
            return (f"{path}: {parent} belongs to {who}, and a store root creates there is read-only to {who}:"
                    f" run as {who} (runuser -u {who} -- edge ...)")
        return None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return (f"{path}: {me()} may not write in {path.parent} ({_described(path.parent)}), where the store keeps its"
                f" -wal and -shm files: run as {SERVICE_USER}, the owner of the store's directory")
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in WAL_SUFFIXES)):
        if candidate.exists() and not os.access(candidate, os.W_OK):
            owner = user_name(candidate.stat().st_uid)
            fix = "" if owner == SERVICE_USER else f"; to give it back: chown {SERVICE_USER}:{SERVICE_USER} {path}*"
            return f"{candidate} is owned by {owner}: run as {SERVICE_USER} every command that writes the store{fix}"
    return None


def daemon_write_problem(path: Path) -> str | None:
    """write_problem() as the daemon's user meets it: checked as the service user when root asks;
    as this process when it is the service user (the unit's pre-start check); not at all for
    anyone else (a manager trying a config, who never writes the store)."""
    user = service_user()
    if user is None and me() != SERVICE_USER:
        return None
    return as_user(user, lambda: write_problem(path))
