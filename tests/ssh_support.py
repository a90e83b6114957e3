"""A real SSH/SFTP server for the backup tests: Debian's OpenSSH sshd (openssh-server), run by the
test on a free loopback port with its own host key, authorized_keys and config in a temp dir.

It logs in the user running the tests (sshd can only be that user unless it runs as root). As root
sshd insists on its privilege-separation directory, which Debian's package creates at boot only.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SshServer:
    port: int
    user: str
    key_file: Path  # the client's private key
    known_hosts: Path
    root: Path  # a directory the client may write
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def target(self, **extra: object) -> dict[str, object]:
        """The backup config's sftp: section for this server."""
        return {"host": "127.0.0.1", "port": self.port, "user": self.user, "key_file": str(self.key_file),
                "known_hosts": str(self.known_hosts), "path": str(self.root), "timeout_s": 5, **extra}


def start_sshd(base: Path) -> SshServer:
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.fail("openssh-server is not installed (scripts/system-deps.sh installs it)")
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)], check=True)
    (base / "authorized_keys").write_bytes((base / "client_key.pub").read_bytes())
    port = free_port()
    host_pub = (base / "host_key.pub").read_text().split()
    (base / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    root = base / "remote"
    root.mkdir()
    config = base / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {base / 'host_key'}",
        f"AuthorizedKeysFile {base / 'authorized_keys'}", "PidFile none", "StrictModes no", "UsePAM no",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "Subsystem sftp internal-sftp", "",
    ]))
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                err = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"sshd did not start: {err}")
            time.sleep(0.05)
    return SshServer(port, getpass.getuser(), base / "client_key", base / "known_hosts", root, process)
