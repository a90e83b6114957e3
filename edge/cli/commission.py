"""The technician's commissioning tools, before a lane's first fill:

- `edge scale read LANE [--watch]`: the scale's raw registers as the configured map reads them,
  the decoded gross and net weight, its status bits and heartbeat;
- `edge relay test LANE --output valve|green|red|buzzer --by STAFF`: one output switched on for a
  moment after a typed confirmation, refused while a daemon holds the device or the lane is busy,
  and journalled;
- `edge scanner echo LANE`: what the scanner sends, byte by byte and as the lane would read it,
  and whether its AIM prefix agrees with the lane's `aim` setting.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import EXIT_FAILED, EXIT_INVALID, CommandError
from .common import utc_now

if TYPE_CHECKING:
    from drivers.modbus import ModbusScale
    from drivers.serial_scanner import SerialScanner

    from ..config import Config, LaneConfig

Loader = Callable[[str], "Config"]
Emit = Callable[[Any, bool, str], None]

EXIT_REFUSED = 1
MAX_PULSE_S = 5.0
# Above this on the platter a valve pulse would put gas into whatever stands there.
PLATTER_EMPTY_KG = 0.5
# The AIM symbology identifiers (ISO/IEC 15424) a filling station meets.
SYMBOLOGIES = {"Q": "QR Code", "d": "Data Matrix", "C": "Code 128", "E": "EAN/UPC", "A": "Code 39", "I": "Interleaved 2 of 5",
               "e": "GS1 DataBar", "z": "Aztec", "L": "PDF417", "X": "other"}


def _lane(config: Config, lane_id: str) -> LaneConfig:
    for lane in config.lanes:
        if lane.id == lane_id:
            return lane
    raise CommandError(f"no lane {lane_id!r} in the config (lanes: {', '.join(lane.id for lane in config.lanes)})", EXIT_INVALID)


def _refuse(message: str) -> CommandError:
    return CommandError(message, EXIT_REFUSED)


def _held(config: Config, keys: dict[str, str]) -> str | None:
    """Why a daemon stands in the way: the store's daemon, or the holder of one of the devices."""
    from ..daemon import instance

    running = instance.held_by(instance.store_lock_path(config))
    if running is not None:
        return f"a station-edge daemon ({running}) is running on this station's store"
    for key, said in keys.items():
        holder = instance.held_by(instance.device_lock_path(key))
        if holder is not None:
            return f"a station-edge daemon ({holder}) holds {said}"
    return None


STOP_IT = "Stop it first (systemctl stop station-edge)"


@contextlib.contextmanager
def _owning(config: Config, keys: dict[str, str], command: str, why_daemon: str) -> Iterator[None]:
    """Hold the devices' locks while the command runs, so a daemon started meanwhile is refused;
    refused itself while a daemon runs on this store or holds one of them."""
    from ..daemon import instance

    if (why := _held(config, keys)) is not None:
        raise _refuse(f"{command}: refused: {why}; {why_daemon}. {STOP_IT}")
    lock = instance.DeviceLock(config, keys)
    try:
        lock.acquire()
    except instance.AlreadyRunning as exc:
        raise _refuse(f"{command}: refused: {exc}") from None
    try:
        yield
    finally:
        lock.release()


# edge scale read ----------------------------------------------------------------------------


def cmd_scale_read(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..config.devices import RtuBusConfig
    from ..daemon import instance
    from ..daemon.assembly import Hardware, scale_from

    config = load(args.config)
    lane = _lane(config, args.lane)
    keys = dict([instance.bus_key(config, lane.scale)])
    # Two masters on one RS-485 line garble each other's frames; a TCP indicator answers both.
    rtu = isinstance(config.buses[lane.scale.bus], RtuBusConfig)
    owning = _owning(config, keys, "edge scale read", "its status page shows the live weight") if rtu else contextlib.nullcontext()
    with owning:
        hw = Hardware(config)
        try:
            scale = scale_from(lane.scale, hw)
            count = args.count if args.count is not None else (None if args.watch else 1)
            previous: Any = None
            failures = 0
            for index in _ticks(count, args.interval):
                reading = _read_scale(scale, lane, previous)
                previous = reading.get("heartbeat", previous)
                failures += "error" in reading
                emit(reading, args.json, _scale_lines(reading, first=index == 0))
                sys.stdout.flush()
        finally:
            hw.close()
    return EXIT_FAILED if failures else 0


def _ticks(count: int | None, interval_s: float) -> Iterator[int]:
    index = 0
    while count is None or index < count:
        if index:
            time.sleep(interval_s)
        yield index
        index += 1


def _read_scale(scale: ModbusScale, lane: LaneConfig, heartbeat_before: Any) -> dict[str, Any]:
    """One read of every span the map covers, decoded as the lane decodes it."""
    from drivers.base import DeviceError
    from drivers.registers import BIT_KINDS

    registers = scale.registers
    where = f"unit {lane.scale.device_id} on bus {lane.scale.bus}"
    out: dict[str, Any] = {"lane": lane.id, "scale": where, "map": lane.scale.register_map or "inline", "indicator": registers.name or None, "at": utc_now().isoformat(timespec="seconds")}
    values: dict[Any, int] = {}
    spans = []
    try:
        for kind in registers.kinds():
            for address, count in registers.spans(kind):
                if kind in BIT_KINDS:
                    words = [int(bit) for bit in scale.device.read_bits(kind, address, count)]
                else:
                    words = scale.device.read_registers(kind, address, count)
                spans.append({"kind": kind, "address": address, "values": words})
                values.update(((kind, a), w) for a, w in zip(range(address, address + count), words))
    except DeviceError as exc:
        return {**out, "raw": spans, "error": str(exc)}
    out["raw"] = spans
    try:
        decoded = registers.decode(values)
        net = dataclasses.replace(registers, tare=None).decode(values).gross_kg if registers.tare else decoded.gross_kg
    except ValueError as exc:
        return {**out, "error": f"the map cannot decode these registers: {exc}"}
    out.update(
        gross_kg=round(decoded.gross_kg, 4), net_kg=round(net, 4), indicator_tare=registers.tare is not None,
        stable=decoded.stable, motion=None if decoded.stable is None else not decoded.stable,
        overload=decoded.overload, error_bit=decoded.error, heartbeat=decoded.heartbeat,
        heartbeat_changed=None if heartbeat_before is None or decoded.heartbeat is None else decoded.heartbeat != heartbeat_before,
    )
    return out


def _scale_lines(r: dict[str, Any], first: bool) -> str:
    lines = [f"lane {r['lane']} scale, {r['scale']}, map {r['map']} ({r['indicator'] or 'inline'}), at {r['at']}"] if first \
        else [f"at {r['at']}"]
    for span in r.get("raw", []):
        words = " ".join(f"{span['address'] + i}={v:#06x}" for i, v in enumerate(span["values"]))
        lines.append(f"  {span['kind']:<8} {words}")
    if "error" in r:
        lines.append(f"  ERROR: {r['error']}")
        return "\n".join(lines)
    yes = {True: "yes", False: "no"}
    net = "" if r["indicator_tare"] else " (the indicator holds no tare: net is the gross)"
    beat = "no heartbeat register" if r["heartbeat"] is None else (
        f"{r['heartbeat']}" + {None: "", True: " (changed)", False: " (UNCHANGED since the last read)"}[r["heartbeat_changed"]])
    motion = ("stable/motion not reported by this map (the lane judges stability from the weight)" if r["stable"] is None
              else f"stable {yes[r['stable']]}   motion {yes[r['motion']]}")
    lines += [f"  gross {r['gross_kg']:.3f} kg   net {r['net_kg']:.3f} kg{net}",
              f"  {motion}   overload {yes[r['overload']]}   error {yes[r['error_bit']]}",
              f"  heartbeat {beat}"]
    return "\n".join(lines)


# edge relay test ----------------------------------------------------------------------------


def cmd_relay_test(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    config = load(args.config)
    lane = _lane(config, args.lane)
    if not 0 < args.pulse_s <= MAX_PULSE_S:
        raise CommandError(f"--pulse-s: more than 0 and at most {MAX_PULSE_S:g} s", EXIT_INVALID)
    target, keys = _output(config, lane, args.output)
    with _owning(config, keys, "edge relay test", "the daemon owns the lane's outputs"):
        return _relay_test(args, config, lane, target, emit)


def _output(config: Config, lane: LaneConfig, output: str) -> tuple[str, dict[str, str]]:
    """What the output is wired to, and the device locks that cover it."""
    from ..config.devices import GpioRelayConfig, LogSignalsConfig, ModbusDevice
    from ..daemon import instance

    if output == "valve":
        relay = lane.relay
        if isinstance(relay, GpioRelayConfig):
            return f"GPIO {relay.chip} line {relay.line}", {f"gpio:{relay.chip}:{relay.line}": f"lane {lane.id} valve GPIO"}
        key, said = instance.bus_key(config, relay)
        return f"coil {relay.coil} of {said}", {key: said}
    signals = lane.signals
    if isinstance(signals, LogSignalsConfig):
        raise CommandError(f"lane {lane.id} has no stack light (signals: log): nothing to test for {output}", EXIT_INVALID)
    wired = signals.outputs()
    if output not in wired:
        raise CommandError(f"lane {lane.id}'s stack light has no {output} output configured (it has {', '.join(wired)})", EXIT_INVALID)
    if isinstance(signals, ModbusDevice):
        key, said = instance.bus_key(config, signals)
        return f"coil {wired[output]} of {said}", {key: said}
    return f"GPIO {signals.chip} line {wired[output]}", {}


def _relay_test(args: argparse.Namespace, config: Config, lane: LaneConfig, target: str, emit: Emit) -> int:
    from drivers.base import DeviceError

    from ..daemon.assembly import Hardware, build_relay, build_signals, scale_from
    from ..store import staff
    from ..store.opening import open_store

    store = open_store(config, existing=Path(config.store.path).exists())
    hw = Hardware(config)
    try:
        staff.register_config(store, config, utc_now())
        if not store.query("SELECT 1 FROM staff WHERE id = ? AND active = 1", [args.by]):
            raise CommandError(f"{args.by!r} is not a registered member of staff (edge staff list)", EXIT_INVALID)
        open_fill = store.query("SELECT id FROM fills WHERE lane = ? AND finished_at IS NULL LIMIT 1", [lane.id])
        if open_fill:
            raise _refuse(f"edge relay test: refused: lane {lane.id} is busy: fill {open_fill[0]['id']} is still open"
                          " (the daemon recovers it at its next start)")
        note = ""
        if args.output == "valve":
            try:
                gross = scale_from(lane.scale, hw).read().gross_kg
            except DeviceError as exc:
                note = f"the scale could not be read ({exc}): make sure nothing is connected to the filling gun"
            else:
                if gross > PLATTER_EMPTY_KG:
                    raise _refuse(f"edge relay test: refused: lane {lane.id} is busy: {gross:.2f} kg on the scale; a valve"
                                  " pulse would put gas into it. Clear the platter first")
        word = f"{lane.id} {args.output}"
        print(f"lane {lane.id} {args.output} ({target}) goes ON for {args.pulse_s:g} s, then OFF."
              + (f"\nnote: {note}" if note else "") + f"\nType '{word}' to go on: ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip()
        if answer != word:
            raise _refuse(f"edge relay test: not confirmed (typed {answer!r}, not {word!r}); nothing was switched")
        if args.output == "valve":
            relay = build_relay(lane, hw)
            switch_on, switch_off = relay.on, relay.off
        else:
            signals = build_signals(lane, hw)
            buzzer = args.output == "buzzer"

            def switch_on() -> None:
                signals.show("off" if buzzer else args.output, buzzer)

            def switch_off() -> None:
                signals.show("off", False)

        result = _pulse(switch_on, switch_off, args.pulse_s)
        data = {"by": args.by, "output": args.output, "target": target, "pulse_s": args.pulse_s,
                "source": f"command uid={os.getuid()}", **result}
        seq = store.journal(utc_now(), "relay_test", data, lane=lane.id)
    finally:
        hw.close()
        store.close()
    human = (f"lane {lane.id} {args.output}: ON for {result['on_s']:.2f} s, then OFF (journal entry {seq})" if result["ok"]
             else f"lane {lane.id} {args.output}: FAILED: {result['error']} (journal entry {seq})")
    emit({**data, "lane": lane.id, "journal_seq": seq}, args.json, human)
    return 0 if result["ok"] else EXIT_FAILED


def _pulse(on: Callable[[], None], off: Callable[[], None], seconds: float) -> dict[str, Any]:
    """Switch on, wait, switch off; off is attempted whatever happened to on."""
    from drivers.base import DeviceError

    started = time.monotonic()
    error = None
    try:
        on()
        time.sleep(seconds)
    except DeviceError as exc:
        error = f"switching on: {exc}"
    finally:
        on_s = time.monotonic() - started
        try:
            off()
        except DeviceError as exc:
            error = (error + "; " if error else "") + f"switching OFF failed: {exc}"
    return {"ok": error is None, "on_s": round(on_s, 3), "error": error}


# edge scanner echo --------------------------------------------------------------------------


def cmd_scanner_echo(args: argparse.Namespace, load: Loader, emit: Emit) -> int:
    from ..config.devices import SerialScannerConfig
    from ..daemon import instance

    config = load(args.config)
    lane = _lane(config, args.lane)
    if not 0 <= args.index < len(lane.scanners):
        raise CommandError(f"lane {lane.id} has {len(lane.scanners)} scanner(s); --index from 0", EXIT_INVALID)
    spec = lane.scanners[args.index]
    if not isinstance(spec, SerialScannerConfig):
        raise CommandError(f"lane {lane.id} scanner {args.index} is a {spec.driver} reader: echo reads serial scanners", EXIT_INVALID)
    found = instance.scanner_key(lane.id, spec)
    with _owning(config, dict([found]) if found else {}, "edge scanner echo", "the daemon reads the scanner"):
        return _echo(args, config, lane, spec, emit)


def _echo(args: argparse.Namespace, config: Config, lane: LaneConfig, spec: Any, emit: Emit) -> int:
    from drivers.serial_scanner import SerialScanner

    from ..daemon.assembly import build_reader

    # The raw reader splits lines only; the configured one unwraps them as the lane does.
    configured = build_reader(spec)
    assert isinstance(configured, SerialScanner)
    raw = SerialScanner(spec.port, spec.baudrate, terminator=configured.terminator, max_length=spec.max_length,
                        timeout_s=spec.timeout_s, source=spec.source)
    try:
        raw.open()
    except OSError as exc:
        raise CommandError(f"lane {lane.id} scanner port {spec.port}: {exc}", EXIT_FAILED) from None
    if not args.json:
        print(f"lane {lane.id} scanner {spec.port}: scan codes now"
              + (f" (stops after {args.count})" if args.count else "") + "; Ctrl-C to stop", file=sys.stderr, flush=True)
    seen = 0
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    mismatched = False
    try:
        while (args.count is None or seen < args.count) and (deadline is None or time.monotonic() < deadline):
            scan = raw.read()
            if scan is None:
                continue
            seen += 1
            report = _echo_report(config, lane, configured, scan.data + configured.terminator, seen)
            mismatched = mismatched or bool(report["aim_mismatch"])
            emit(report, args.json, _echo_lines(report))
            sys.stdout.flush()
    finally:
        raw.close()
    if seen == 0:
        emit({"lane": lane.id, "codes": 0}, args.json, f"lane {lane.id}: nothing came from the scanner")
        return EXIT_FAILED
    return EXIT_FAILED if mismatched else 0


def _echo_report(config: Config, lane: LaneConfig, configured: SerialScanner, line: bytes, number: int) -> dict[str, Any]:
    from interlock import codes

    body = line[: -len(configured.terminator)] if configured.terminator and line.endswith(configured.terminator) else line
    inner = body[len(configured.prefix):] if configured.prefix and body.startswith(configured.prefix) else body
    sent = _aim_of(inner)
    wanted = [a.decode("ascii") for a in configured.aim]
    mismatch = None
    if wanted and sent is None:
        mismatch = (f"the scanner sends no AIM prefix, but the lane's aim setting requires one of {', '.join(wanted)}: every"
                    " scan would be refused as 无法识别的码. Turn on 'AIM ID' (symbology identifier) in the scanner's"
                    " setup, or set aim: [] for this scanner")
    elif sent is not None and not wanted:
        mismatch = (f"the scanner sends the AIM prefix {sent} but the lane's aim setting is empty: every code would be read"
                    f" with '{sent}' in front. Set aim: ['{sent[:2]}'] for this scanner, or turn AIM IDs off in the scanner")
    elif sent is not None and not any(sent.startswith(a) for a in wanted):
        mismatch = f"the scanner sent {sent} ({_symbology(sent)}), which the lane's aim setting ({', '.join(wanted)}) refuses"
    scan = configured.unwrap(body, time.monotonic())
    if scan.problem:
        reads = {"ok": False, "detail": scan.problem}
    else:
        patterns = [codes.UrlPattern(re.compile(p.regex), p.kind) for p in config.codes.url_patterns]
        parsed = codes.parse(scan.data, codes.Source(scan.source), patterns)
        reads = ({"ok": False, "detail": parsed.detail} if isinstance(parsed, codes.Invalid)
                 else {"ok": True, "kind": str(parsed.kind), "value": parsed.value})
    return {"lane": lane.id, "number": number, "bytes": len(line), "hex": line.hex(" "),
            "text": line.decode("utf-8", "backslashreplace"), "aim_sent": sent,
            "symbology": None if sent is None else _symbology(sent), "aim_configured": wanted, "aim_mismatch": mismatch,
            "lane_reads": reads}


def _aim_of(data: bytes) -> str | None:
    """The AIM identifier at the start ("]Q1": "]", the symbology letter, a modifier digit)."""
    if len(data) >= 3 and data[:1] == b"]" and chr(data[1]).isalpha() and chr(data[2]).isalnum():
        return data[:3].decode("ascii")
    return None


def _symbology(aim: str) -> str:
    return SYMBOLOGIES.get(aim[1], "unknown symbology")


def _echo_lines(r: dict[str, Any]) -> str:
    reads = r["lane_reads"]
    lines = [f"#{r['number']}  {r['bytes']} bytes: {r['hex']}",
             f"    text   {r['text']!r}",
             f"    AIM    {r['aim_sent'] + ' (' + r['symbology'] + ')' if r['aim_sent'] else 'none'};"
             f" lane's aim setting: {', '.join(r['aim_configured']) or 'none'}",
             "    lane reads " + (f"{reads['kind']} {reads['value']}" if reads["ok"] else f"nothing usable: {reads['detail']}")]
    if r["aim_mismatch"]:
        lines.append(f"    MISMATCH: {r['aim_mismatch']}")
    return "\n".join(lines)


# The parser ---------------------------------------------------------------------------------


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    def command(group: str, group_help: str, name: str, help_text: str, handler: Callable[..., int]) -> argparse.ArgumentParser:
        parent = sub.add_parser(group, help=group_help)
        parser = parent.add_subparsers(dest=f"{group}_command", required=True).add_parser(name, help=help_text)
        parser.set_defaults(handler=handler)
        common(parser)
        parser.add_argument("lane")
        return parser

    read = command("scale", "commissioning: read a lane's scale as its register map reads it",
                   "read", "raw registers, gross/net weight, status bits and heartbeat", cmd_scale_read)
    read.add_argument("--watch", action="store_true", help="read again every --interval until Ctrl-C")
    read.add_argument("--interval", type=float, default=0.5, help="seconds between reads with --watch (default 0.5)")
    read.add_argument("--count", type=int, help="stop after this many reads")

    test = command("relay", "commissioning: switch one of a lane's outputs on for a moment",
                   "test", "pulse the valve or a stack-light output after a typed confirmation; journalled", cmd_relay_test)
    test.add_argument("--output", required=True, choices=("valve", "green", "red", "buzzer"))
    test.add_argument("--by", required=True, help="staff id of the technician (edge staff list)")
    test.add_argument("--pulse-s", type=float, default=1.0, help=f"seconds on (default 1, at most {MAX_PULSE_S:g})")

    echo = command("scanner", "commissioning: see what a lane's scanner sends",
                   "echo", "each code as bytes and as the lane reads it; checks the AIM prefix", cmd_scanner_echo)
    echo.add_argument("--index", type=int, default=0, help="which of the lane's scanners (default 0, the first)")
    echo.add_argument("--count", type=int, help="stop after this many codes")
    echo.add_argument("--seconds", type=float, help="stop after this long")
