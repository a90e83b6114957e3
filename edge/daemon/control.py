"""The daemon's local control socket: `edge lane reset|ack` reach the running lanes through it.

A Unix domain socket (mode 0660: the daemon's user and group only) beside the store. One request
per connection, one JSON object per line each way:

    -> {"cmd": "reset", "lane": "A", "by": "op-zhang", "why": "scale cable reseated"}
    <- {"ok": true, "lane": "A", "phase": "idle", "message": "..."}

The caller's uid (SO_PEERCRED) is recorded beside the staff id it names. Nothing here opens a
valve: a reset only returns a locked lane to idle, where a new accepted scan is still required.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
SOCKET_MODE = 0o660
CLIENT_TIMEOUT_S = 10.0

Handler = Callable[[dict[str, Any], int | None], dict[str, Any]]


def peer_uid(conn: socket.socket) -> int | None:
    try:
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except OSError:
        return None
    return uid


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path, self.handler = path, handler
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A socket file left by a killed daemon refuses connections; it is ours to replace.
        if path.is_socket():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._sock.bind(str(path))
            os.chmod(path, SOCKET_MODE)
            self._sock.listen(8)
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("control socket at %s", self.path)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self._sock.close()
        try:
            self.path.unlink()
        except OSError:
            pass

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    log.exception("control socket failed")
                return
            # One thread per request: a lane that takes its time never blocks another lane's reset.
            threading.Thread(target=self._one, args=(conn,), name="control-request", daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(CLIENT_TIMEOUT_S)
            try:
                line = conn.makefile("rb").readline(MAX_REQUEST_BYTES)
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a JSON object")
                reply = self.handler(request, peer_uid(conn))
            except (ValueError, UnicodeDecodeError) as exc:
                reply = {"ok": False, "message": f"bad request: {exc}"}
            except OSError:
                return
            except Exception as exc:  # the socket serves operators; a bug must answer, not hang
                log.exception("control request failed")
                reply = {"ok": False, "message": f"internal error: {exc}"}
            try:
                conn.sendall(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
            except OSError:
                pass


def call(path: Path, request: dict[str, Any], timeout_s: float = CLIENT_TIMEOUT_S) -> dict[str, Any]:
    """Send one request to the running daemon; raises OSError when none listens at path."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        line = sock.makefile("rb").readline(1 << 20)
    if not line:
        raise OSError(f"{path}: the daemon closed the connection without an answer")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise OSError(f"{path}: not an answer: {line[:100]!r}")
    return reply
