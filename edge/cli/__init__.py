"""`edge`: the daemon and the station manager's commands. Human tables by default, --json for programs.

--config and --json work before or after the subcommand. Errors are one line (one JSON document
with --json) and an exit code: 0 done, 1 failed or found a problem, 2 the command was wrong
(bad option, bad filter, bad config), 130 interrupted, 141 the reader of our output went away.
Heavy modules (drivers, sync, the web server) load only in the commands that use them, so
`edge status` starts quickly.

Here: the parser and main(). Each command group has a module: station.py (run, demo, check-config,
status, verify, valves-off), city.py (sync, cache), manager.py (records, report daily, export, staff,
inflight-reset), reports.py (report shift, report monthly, reports due), fleet.py, webapp.py, lane.py and commission.py (scale read, relay test, scanner echo); common.py holds what they share. Tables, emit and
exit codes are edge.output, which the manager's documents use too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, NoReturn

from .. import __version__
from ..output import EXIT_FAILED, EXIT_INVALID, CommandError, emit, emit_error
from ..store import StoreUnavailable
from . import city as cli_city, fleet as cli_fleet, lane as cli_lane, manager as cli_manager, station as cli_station
from . import archive as cli_archive, backup as cli_backup, commission as cli_commission, reports as cli_reports
from . import webapp as cli_webapp
from .common import DEFAULT_CONFIG, EXIT_STORE, load

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE


# The parser ----------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as JSON when --json was asked for."""

    json_errors = False  # set by main() from the command line

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            raise CommandError(f"{self.prog}: {message}", EXIT_INVALID)
        super().error(message)


def _add_shared(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """--config and --json, before the subcommand (with the defaults) and after it (SUPPRESS, so an
    option absent after the subcommand does not overwrite one given before it)."""
    default = argparse.SUPPRESS if after_command else None
    parser.add_argument("--config", default=default or DEFAULT_CONFIG,
                        help=f"station YAML (default {DEFAULT_CONFIG}, or $EDGE_CONFIG)")
    parser.add_argument("--json", action="store_true", default=default or False, help="machine-readable output (errors too)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="edge", description="Station edge controller for cylinder filling")
    _add_shared(parser, after_command=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        _add_shared(p, after_command=True)
        return p

    cli_station.add_commands(command)

    def common(p: argparse.ArgumentParser) -> None:
        p.set_defaults(func=lambda args: args.handler(args, load, emit))
        _add_shared(p, after_command=True)

    cli_city.add_commands(sub, common)
    cli_reports.add_commands(cli_manager.add_commands(sub, common), common)
    cli_reports.add_top_commands(sub, common)
    cli_fleet.add_commands(sub, common)
    cli_webapp.add_commands(sub, common)
    cli_lane.add_commands(sub, common)
    cli_commission.add_commands(sub, common)
    cli_backup.add_commands(sub, common)
    cli_archive.add_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    as_json = "--json" in argv
    verbose = "-v" in argv or "--verbose" in argv
    try:
        Parser.json_errors = as_json
        args = build_parser().parse_args(argv)
        from .. import logs

        logs.setup(args.verbose)
        if args.command == "demo" and not args.verbose:
            # The demo prints its own progress; daemon INFO lines would drown it.
            logging.getLogger().setLevel(logging.WARNING)
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except CommandError as exc:
        emit_error(str(exc), exc.code, as_json)
        return exc.code
    except StoreUnavailable as exc:  # a full or read-only disk, a path that is no database
        emit_error(f"edge {args.command}: {exc}", EXIT_STORE, as_json)
        return EXIT_STORE
    except BrokenPipeError:
        # `edge records | head -1`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        emit_error("interrupted", EXIT_INTERRUPTED, as_json)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a full disk, a missing directory, a store that is not one: one line, not a traceback
        if verbose:
            log.exception("unexpected error")
        emit_error(_describe(exc), EXIT_FAILED, as_json)
        return EXIT_FAILED


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror}"
    name = type(exc).__name__
    return f"{exc}" if name.endswith("StoreError") else f"{name}: {exc}"
