"""Running a command as another user (the service user, a manager in its group, an outsider): the
real kernel permission checks, not a mocked os.access. Needs root, for setpriv and unshare."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CAN_SWITCH_USERS = os.geteuid() == 0 and all(shutil.which(tool) for tool in ("setpriv", "unshare", "mount"))
needs_root = pytest.mark.skipif(not CAN_SWITCH_USERS,
                                reason="running commands as other users needs root (setpriv, unshare, mount)")


@contextmanager
def shared_dir() -> Iterator[Path]:
    """A temporary directory other users can reach (pytest's own is under a root-only directory)."""
    path = Path(tempfile.mkdtemp(prefix="edge-users-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _hidden(path: Path) -> Path | None:
    """The first directory on the way to `path` that other users may not enter (a root-only home
    holding this interpreter, say)."""
    for directory in reversed(path.parents):
        if not stat.S_IMODE(directory.stat().st_mode) & 0o001:
            return directory
    return None


@contextmanager
def spawned_as(uid: int, gid: int, groups: tuple[int, ...], argv: list[str],
               env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """argv started with these ids (real and effective) and supplementary groups, pipes on its
    stdin, stdout and stderr; killed if still running when the block ends."""
    ids = [f"--reuid={uid}", f"--regid={gid}", f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"]
    command = ["setpriv", *ids, "--", *argv]
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": "/", **(env or {})}
    with tempfile.TemporaryDirectory(prefix="edge-overlay-") as layer:
        hidden = _hidden(Path(sys.executable).resolve())
        if hidden is not None:
            # This interpreter lives where the other user may not look: in a mount namespace of
            # this one command, that directory is overlaid with an empty upper layer of mode 0755
            # (its own files keep their modes), and nothing outside the namespace changes.
            (Path(layer) / "upper").mkdir(mode=0o755)
            (Path(layer) / "work").mkdir()
            script = 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$1" && shift 2 && exec "$@"'
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(hidden), layer, *command]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=environment)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()


def run_as(uid: int, gid: int, groups: tuple[int, ...], argv: list[str], timeout: float = 120,
           env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """argv run to its end with these ids and supplementary groups."""
    with spawned_as(uid, gid, groups, argv, env) as process:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def chown_tree(path: Path, uid: int, gid: int, dir_mode: int = 0o750, file_mode: int = 0o640) -> None:
    """As the unit leaves the state directory: the service user's, group-readable (UMask=0027)."""
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        os.chmod(root, dir_mode)
        for name in files:
            os.chown(os.path.join(root, name), uid, gid)
            os.chmod(os.path.join(root, name), file_mode)
