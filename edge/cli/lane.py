"""`edge lane reset|ack LANE --by STAFF_ID`: an operator's word to a running daemon, on the record.

The request goes over the daemon's control socket (store.control_socket); the lane journals it
with who asked and why, and answers whether it was done or refused (and why).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..daemon import control

if TYPE_CHECKING:
    from ..config import Config

EXIT_REFUSED = 1
EXIT_NO_DAEMON = 3

Loader = Callable[[str], "Config"]
Emit = Callable[[Any, bool, str], None]


def cmd_lane(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    path = config.store.control_path
    request = {"cmd": args.lane_command, "lane": args.lane, "by": args.by, "why": args.why or ""}
    try:
        reply = control.call(path, request)
    except (OSError, ValueError) as exc:
        emit({"ok": False, "message": f"no running daemon answers at {path}: {exc}"}, args.json,
             f"no running daemon answers at {path} ({exc}); a stopped daemon's lanes start unlocked")
        return EXIT_NO_DAEMON
    emit(reply, args.json, f"lane {args.lane}: {reply.get('message', reply)}")
    return 0 if reply.get("ok") else EXIT_REFUSED


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    group = sub.add_parser("lane", help="reset a tripped lane, or acknowledge a held one, in the running daemon")
    lane_sub = group.add_subparsers(dest="lane_command", required=True)
    for name, help_text in (
        ("reset", "return a locked lane to service once its fault has cleared"),
        ("ack", "acknowledge the alarm holding a lane (an interrupted fill found overfilled at start-up)"),
    ):
        parser = lane_sub.add_parser(name, help=help_text)
        parser.set_defaults(handler=cmd_lane)
        common(parser)
        parser.add_argument("lane")
        parser.add_argument("--by", required=True, help="staff id of the person doing it (edge staff list)")
        parser.add_argument("--why", help="what was found and done, for the journal")
