"""Commands for the staff's web app: `edge staff passwd ID` and `edge webapp cert`."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..scanpoints.common import ROLES
from ..store.staff import StaffError, register_config

EXIT_INVALID = 2


def _read_secret(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new PIN or password: ")
    if getpass.getpass("again: ") != first:
        raise StaffError("the two entries differ")
    return first


def cmd_staff_passwd(args: argparse.Namespace, load: Callable[[str], Any], emit: Callable[..., None]) -> int:
    from .common import utc_now
    from ..store.opening import open_store
    from ..webapp.accounts import set_secret

    config = load(args.config)
    try:
        secret = _read_secret(args.stdin)
        store = open_store(config, existing=True)
        try:
            now = utc_now()
            register_config(store, config, now)
            role = set_secret(store, args.id, secret, args.role, now)
        finally:
            store.close()
    except StaffError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    emit({"ok": True, "id": args.id, "role": role}, args.json, f"{args.id}: PIN set, role {role}")
    return 0


def cmd_webapp_cert(args: argparse.Namespace, load: Callable[[str], Any], emit: Callable[..., None]) -> int:
    from ..webapp.server import fingerprint, make_certificate

    config = load(args.config)
    tls = config.webapp.tls
    if tls is None:
        print("webapp.tls (cert and key paths) is not set in the config", file=sys.stderr)
        return EXIT_INVALID
    cert, key = Path(tls.cert), Path(tls.key)
    if cert.exists() and not args.force:
        made = False
    else:
        names = args.name or [config.webapp.host]
        make_certificate(cert, key, names)
        made = True
    print_fp = fingerprint(cert)
    human = f"{'created' if made else 'kept'} {cert}\nSHA-256 fingerprint {print_fp}\n(compare it on each phone when it first warns about the certificate)"
    emit({"cert": str(cert), "created": made, "sha256": print_fp}, args.json, human)
    return 0


def add_staff_passwd(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id")
    parser.add_argument("--role", choices=ROLES, help="required the first time; kept otherwise")
    parser.add_argument("--stdin", action="store_true", help="read the PIN from one line of stdin (scripts)")


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    group = sub.add_parser("webapp", help="the staff's LAN web app").add_subparsers(dest="webapp_command", required=True)
    cert = group.add_parser("cert", help="create the self-signed HTTPS certificate (webapp.tls) and print its fingerprint")
    cert.set_defaults(handler=cmd_webapp_cert)
    common(cert)
    cert.add_argument("--name", action="append", help="an IP address or host name phones use (repeatable; default webapp.host)")
    cert.add_argument("--force", action="store_true", help="replace an existing certificate")
