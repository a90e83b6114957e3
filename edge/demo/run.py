"""`edge demo`: a whole simulated two-lane station, scripted operators, and a summary from the records."""

from __future__ import annotations

import json
import logging
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from interlock.fill import Abort, Reset
from interlock.reasons import Reason, text
from simulators.dataset import Generated
from simulators.modbus_server import free_port
from sync.profile import bundled_config

from .. import logs
from ..config import Config, load_config
from ..daemon.station import Station, open_store
from ..lanes.lane import LaneEvent, utc_now
from ..store import journal
from ..store.delivered import DELIVERED
from ..store.outbox import Outbox
from . import checks as demo_checks
from .simulation import Simulation

log = logging.getLogger(__name__)

BUNDLED_CONFIG = bundled_config() / "simulated.yaml"
WAIT_S = 20.0


def effective_config(source: Path, state_dir: Path) -> Path:
    """Copy the simulated config into the state dir with its paths there and free Modbus ports."""
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    raw["store"]["path"] = str(state_dir / "station.db")
    for lane in raw["lanes"]:
        for scanner in lane["scanners"]:
            scanner["port"] = str(state_dir / Path(scanner["port"]).name)
    city = raw.get("city")
    if city and raw.get("simulators", {}).get("city"):
        city["base_url"] = f"https://127.0.0.1:{free_port()}"
        city["ca_bundle"] = str(state_dir / Path(city["ca_bundle"]).name)
    raw["status_page"] = {**raw.get("status_page", {}), "port": free_port()}
    for bus in raw.get("buses", {}).values():
        if bus["transport"] == "tcp":
            bus["port"] = free_port()
        else:
            bus["port"] = str(state_dir / Path(bus["port"]).name)
    target = state_dir / "station.yaml"
    target.write_text(
        "# Effective config of an `edge demo` run: inspect it with edge status/records/verify --config\n"
        + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return target


@dataclass
class Operator:
    """A scripted operator at one lane: scans, places cylinders, waits for the lane's answer."""

    lane_id: str
    station: Station
    sim: Simulation
    say: Callable[[str], None]
    rng: random.Random
    # The checker's pre-fill check, on a lane that requires one.
    before_fill: Callable[[Generated], None] | None = None

    def __post_init__(self) -> None:
        self.events: queue.Queue[LaneEvent] = queue.Queue()
        self.station.lanes[self.lane_id].listeners.append(self.events.put)
        self.scale = self.sim.station_for(self.lane_id)
        self.scanner = self.sim.scanners[self.lane_id]

    def wait(self, kind: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if event.kind == kind:
                return event.data
        raise TimeoutError(f"lane {self.lane_id}: no {kind} within {WAIT_S} s")

    def scan(self, code: str | bytes, label: str) -> dict[str, Any]:
        self.scanner.scan(code)
        verdict = self.wait("verdict")
        if verdict["accepted"]:
            said = "ACCEPT" + "".join(f" [{text(Reason(r))}]" for r in verdict["reasons"])
        else:
            said = "REJECT " + text(Reason(verdict["reasons"][0]))
        self.say(f"lane {self.lane_id}  {label:<28} {said}")
        return verdict

    def fill(self, cylinder: Generated, code: str, label: str, interrupt: str | None = None, busy_code: str | None = None) -> None:
        if self.before_fill is not None:
            self.before_fill(cylinder)
        if not self.scan(code, label)["accepted"]:
            return
        residual = round(self.rng.uniform(0.0, 0.3), 2)
        self.scale.model.place(cylinder.row["tare_kg"] + residual)
        self._wait_valve()
        if busy_code:
            self.scan(busy_code, "scan during fill")
        if interrupt == "abort":
            time.sleep(0.4)
            self.station.lanes[self.lane_id].submit(Abort())
        elif interrupt == "scale_lost":
            time.sleep(0.4)
            self.scale.silent = True
        end = self.wait("fill_end")
        self.scale.silent = False
        if end["status"] == "complete":
            self.say(f"lane {self.lane_id}  fill done: net {end['net_kg']:.2f} kg, outcome {end['outcome']}")
        else:
            self.say(f"lane {self.lane_id}  fill ABORTED: {text(Reason(end['cause']))}; valve off")
        if interrupt == "scale_lost":
            time.sleep(0.3)  # the scale answers again; the operator resets the locked lane
            self.station.lanes[self.lane_id].submit(Reset(why="the scale answers again", source="demo operator"))
        time.sleep(0.2)
        self.scale.model.remove()
        time.sleep(0.2)

    def _wait_valve(self) -> None:
        deadline = time.monotonic() + WAIT_S
        while not self.scale.valve_on():
            if time.monotonic() > deadline:
                raise TimeoutError(f"lane {self.lane_id}: valve never opened")
            time.sleep(0.02)


def _pick(dataset: list[Generated], scenario: str, skip: set[str]) -> Generated:
    for item in dataset:
        if item.scenario == scenario and item.row["id"] not in skip and item.row["model"] != "YSP50":
            skip.add(item.row["id"])
            return item
    raise LookupError(f"dataset has no {scenario} cylinder")


def _script_a(op: Operator, data: list[Generated], used: set[str]) -> None:
    good = [_pick(data, "ok", used) for _ in range(4)]
    op.fill(good[0], good[0].row["qr_content"], "QR of own cylinder", busy_code=good[1].row["traceable_code"])
    for scenario, field in [
        (Reason.NOT_SELF_OWNED, "qr_content"),
        (Reason.SCRAPPED, "traceable_code"),
        (Reason.INSPECTION_OVERDUE, "qr_content"),
        (Reason.MEDIUM_MISMATCH, "product_no"),
    ]:
        op.scan(_pick(data, scenario, used).row[field], f"{scenario.lower()} cylinder")
    op.scan(b"\x1b[2J\xff\xfe;rm -rf /", "scanner garbage")
    op.fill(good[1], good[1].row["traceable_code"], "traceable no. of own cylinder")
    op.fill(good[2], good[2].row["product_no"], "product no., operator aborts", interrupt="abort")
    op.fill(good[3], good[3].row["info_code"], "info code of own cylinder")


def _script_b(op: Operator, data: list[Generated], used: set[str]) -> None:
    good = [_pick(data, "ok", used) for _ in range(3)]
    due_soon = _pick(data, Reason.INSPECTION_DUE_SOON, used)
    op.fill(good[0], good[0].row["product_no"], "product no. of own cylinder")
    for scenario, field in [
        (Reason.SUSPENDED, "qr_content"),
        (Reason.SERVICE_LIFE_EXCEEDED, "qr_content"),
        (Reason.NOT_REGISTERED, "traceable_code"),
        (Reason.BLOCKED_LOCALLY, "qr_content"),
    ]:
        op.scan(_pick(data, scenario, used).row[field], f"{scenario.lower()} cylinder")
    op.scan("999240000001", "unknown traceable no.")
    op.fill(due_soon, due_soon.row["qr_content"], "own cylinder, due soon")
    op.fill(good[1], good[1].row["qr_content"], "scale stops answering", interrupt="scale_lost")
    op.fill(good[2], good[2].row["traceable_code"], "traceable no. after reset")


def _stale_cache_scan(op: Operator, station: Station, data: list[Generated], used: set[str]) -> None:
    """Age the cache past its limit, show the lane refusing, then restore it."""
    assert station.store is not None
    refreshed = station.store.cache_refreshed_at()
    assert refreshed is not None
    station.store.mark_cache_refreshed(refreshed - timedelta(days=5))
    op.scan(_pick(data, "ok", used).row["qr_content"], "own cylinder, cache 5 days old")
    station.store.mark_cache_refreshed(refreshed)


def _await_uploads(station: Station, say: Callable[[str], None]) -> None:
    """Give the uploader a moment to deliver the last fills, as a station left running would."""
    assert station.store is not None
    deadline = time.monotonic() + WAIT_S
    while Outbox(station.store).pending_count() and time.monotonic() < deadline:
        time.sleep(0.1)
    status = Outbox(station.store).status(utc_now())
    say(f"city sync: {status['sent']} records delivered, {status['pending']} pending, {status['dead']} dead letters")


def run_marks(store: Any) -> tuple[int, int]:
    """Where this run starts in a store that may hold earlier runs: (last journal seq, last outbox id)."""
    journal_seq = store.query("SELECT coalesce(max(seq), 0) AS n FROM journal")[0]["n"]
    outbox_id = store.query("SELECT coalesce(max(id), 0) AS n FROM outbox")[0]["n"]
    return journal_seq, outbox_id


def summarise(config: Config, marks: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """This run's figures (after `marks`), read back from the durable records rather than counted
    on the side. The hash chain is checked whole."""
    after_seq, after_outbox = marks
    store = open_store(config)
    try:
        scans = store.query("SELECT data FROM journal WHERE kind = 'scan' AND seq > ?", [after_seq])
        rejected: dict[str, int] = {}
        accepted = 0
        for row in scans:
            verdict = journal.load(row["data"])
            if verdict["accepted"]:
                accepted += 1
            else:
                first = verdict["reasons"][0]
                rejected[first] = rejected.get(first, 0) + 1
        fills = store.query(
            "SELECT status, count(*) AS n FROM fills WHERE id IN"
            " (SELECT fill_id FROM journal WHERE seq > ? AND fill_id IS NOT NULL) GROUP BY status", [after_seq])
        by_status = {row["status"]: row["n"] for row in fills}
        outbox = {row["status"]: row["n"] for row in store.query(
            "SELECT status, count(*) AS n FROM outbox WHERE id > ? GROUP BY status", [after_outbox])}
        # Delivered rows leave the outbox a hundred at a time: this run's are in those entries.
        left = sum(1 for row in store.query("SELECT data FROM journal WHERE kind = ? AND fill_id IS NULL AND seq > ?",
                                            [DELIVERED, after_seq])
                   for delivered in journal.load(row["data"])["rows"] if delivered[0] > after_outbox)
        chain = store.verify()
        return {
            **demo_checks.counts(store),
            "scans": len(scans),
            "accepted": accepted,
            "rejected": dict(sorted(rejected.items())),
            "fills_completed": by_status.get("complete", 0),
            "fills_aborted": by_status.get("aborted", 0),
            "uploads_sent": outbox.get("sent", 0) + left,
            "uploads_pending": outbox.get("pending", 0),
            "uploads_dead": outbox.get("dead", 0),
            "chain_ok": chain.ok,
            "journal_entries": chain.entries,
        }
    finally:
        store.close()


def run_demo(state_dir: Path, as_json: bool, out: TextIO = sys.stdout, source: Path = BUNDLED_CONFIG) -> dict[str, Any]:
    progress = sys.stderr if as_json else out
    started = time.monotonic()
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(f"{time.monotonic() - started:6.1f}s  {line}", file=progress, flush=True)

    state_dir.mkdir(parents=True, exist_ok=True)
    config_path = effective_config(source, state_dir)
    fingerprint = demo_checks.prepare(config_path, state_dir)
    config = load_config(config_path)
    logs.set_timezone(config.tz)  # the daemon's warnings at the terminal, in the station's time
    assert config.simulators is not None
    say(f"simulated station in {state_dir} (filling flow accelerated to {config.simulators.flow_kg_per_s} kg/s)")
    sim = Simulation(config).start()
    station = Station(config)
    try:
        store = open_store(config)
        marks = run_marks(store)
        loaded = sim.seed_cache(store, utc_now())
        store.close()
        say(f"cylinder cache: {loaded} seeded cylinders")
        station.start()
        if station.status is not None:
            say(f"status page http://{station.status.host}:{station.status.port}/ (one lane full-screen: /lane/A)")
        if station.webapp is not None:
            say(f"staff app {station.webapp.url} (certificate SHA-256 {fingerprint[:23]}...)")
        rng = random.Random(config.simulators.dataset_seed)
        used: set[str] = set()
        operators = {lane: Operator(lane, station, sim, say, rng) for lane in ("A", "B")}
        assert station.store is not None
        checker = demo_checks.Checker(config, station.store, say)
        checker.refusals(operators[demo_checks.PRECHECK_LANE].scan, _pick(sim.dataset, "ok", used))
        operators[demo_checks.PRECHECK_LANE].before_fill = checker.precheck
        scripts = [
            threading.Thread(target=_script_a, args=(operators["A"], sim.dataset, used)),
            threading.Thread(target=_script_b, args=(operators["B"], sim.dataset, used)),
        ]
        for thread in scripts:
            thread.start()
        for thread in scripts:
            thread.join()
        _stale_cache_scan(operators["A"], station, sim.dataset, used)
        checker.after_fills(_pick(sim.dataset, "ok", used), _pick(sim.dataset, "ok", used))
        if sim.city is not None:
            _await_uploads(station, say)
    finally:
        station.stop()
        sim.stop()
    summary = summarise(config, marks)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    summary["accelerated_flow_kg_per_s"] = config.simulators.flow_kg_per_s
    summary["state_dir"] = str(state_dir)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False), file=out)
    else:
        _print_summary(summary, out)
    return summary


def _print_summary(summary: dict[str, Any], out: TextIO) -> None:
    print("\nSummary", file=out)
    print(f"  scans            {summary['scans']}  (accepted {summary['accepted']})", file=out)
    for reason, count in summary["rejected"].items():
        print(f"  rejected         {count}  {text(Reason(reason))}", file=out)
    print(f"  fills completed  {summary['fills_completed']}", file=out)
    print(f"  fills aborted    {summary['fills_aborted']}", file=out)
    print(f"  city uploads     {summary['uploads_sent']} delivered, {summary['uploads_pending']} pending,"
          f" {summary['uploads_dead']} dead letters (filling records and trace nodes)", file=out)
    print(f"  checks           {summary['prefill_checks']} pre-fill ({summary['prefill_refused']} refused),"
          f" {summary['postfill_checks']} post-fill; {summary['scans_refused_no_precheck']} scans refused for no check", file=out)
    print(f"  tag bindings     {summary['tag_bindings']}; dispatches {summary['dispatches']}", file=out)
    print(f"  journal          {summary['journal_entries']} entries, hash chain {'OK' if summary['chain_ok'] else 'BROKEN'}", file=out)
    print(f"  took             {summary['elapsed_s']} s (simulated flow accelerated)", file=out)
