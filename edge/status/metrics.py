"""Prometheus metrics: counters the lanes feed through their listeners, gauges read at scrape
time, build and process information, all in one registry of our own (not the library's global
one, so two stations in one test process do not collide).

Every series a dashboard or an alert needs exists from the first scrape, at zero: the per-lane
scans, decisions and fills by outcome, and the cut-off histogram. Label values have one case:
outcomes and decisions lower case, reason and cause codes as the codes are written (upper case).
Other parts of the daemon add their own families with `add_collector`.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..lanes.lane import LaneEvent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CUTOFF_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
OUTCOMES = ("ok", "overfilled", "underfilled", "aborted")
Gauges = Callable[[], dict[str, Any]]

# A `_created` timestamp beside every counter doubles the series and no alert uses it.
disable_created_metrics()


class Metrics:
    def __init__(self, lanes: Iterable[str] = (), gauges: Gauges | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self.scans = Counter("edge_scans", "Scans decided, per lane.", ["lane"], registry=self.registry)
        self.decisions = Counter("edge_decisions", "Scan decisions: accepted or rejected.", ["lane", "decision"],
                                 registry=self.registry)
        self.rejections = Counter("edge_rejections", "Reasons of rejected scans (a scan can have several).", ["lane", "reason"],
                                  registry=self.registry)
        self.fills = Counter("edge_fills", "Fills finished, by outcome (ok, overfilled, underfilled, aborted).",
                             ["lane", "outcome"], registry=self.registry)
        self.trips = Counter("edge_trips", "Fills the interlock tripped, by cause.", ["lane", "cause"], registry=self.registry)
        self.cutoff = Histogram("edge_cutoff_lag_seconds", "Scale reading that ended a fill to valve OFF acknowledged.",
                                ["lane"], buckets=CUTOFF_BUCKETS, registry=self.registry)
        for lane in lanes:
            self.scans.labels(lane)
            self.cutoff.labels(lane)
            for decision in ("accepted", "rejected"):
                self.decisions.labels(lane, decision)
            for outcome in OUTCOMES:
                self.fills.labels(lane, outcome)
        ProcessCollector(registry=self.registry)
        self.registry.register(_BuildInfo())
        if gauges is not None:
            self.registry.register(_ScrapeGauges(gauges))

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def observe(self, event: LaneEvent) -> None:
        """A lane listener: every verdict, finished fill and valve cut-off."""
        if event.kind == "verdict":
            self.scans.labels(event.lane).inc()
            accepted = bool(event.data["accepted"])
            self.decisions.labels(event.lane, "accepted" if accepted else "rejected").inc()
            for reason in [] if accepted else event.data["reasons"]:
                self.rejections.labels(event.lane, reason).inc()
        elif event.kind == "fill_end":
            self.fills.labels(event.lane, str(event.data.get("outcome") or event.data["status"]).lower()).inc()
            if event.data.get("tripped"):
                self.trips.labels(event.lane, str(event.data.get("cause"))).inc()
        elif event.kind == "valve_off":
            self.cutoff.labels(event.lane).observe(float(event.data["lag_s"]))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _BuildInfo(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("edge_build_info", "The running software: always 1.", labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info


class _ScrapeGauges(Collector):
    """What is read when scraped: devices, the upload backlog and its last success, the cache."""

    def __init__(self, read: Gauges) -> None:
        self.read = read

    def describe(self) -> list[Metric]:
        return []  # the registry must not read the station's state before it is running

    def collect(self) -> Iterator[Metric]:
        g = self.read()
        polls = CounterMetricFamily("edge_scale_polls", "Scale polls attempted.", labels=["lane"])
        for lane, n in g["polls"].items():
            polls.add_metric([lane], n)
        scale_up = GaugeMetricFamily("edge_scale_up", "1 while the lane's scale answers its polls.", labels=["lane", "bus", "device"])
        for (lane, bus, device), up in g["scale_up"].items():
            scale_up.add_metric([lane, bus, device], int(up))
        errors = CounterMetricFamily("edge_modbus_errors", "Failed Modbus requests per device.", labels=["bus", "device"])
        for (bus, unit), n in sorted(g["modbus_errors"].items()):
            errors.add_metric([bus, str(unit)], n)
        filling = GaugeMetricFamily("edge_lane_filling", "1 while the lane's valve is energised.", labels=["lane"])
        for lane, on in g["relay_on"].items():
            filling.add_metric([lane], int(on))
        inflight = GaugeMetricFamily("edge_learned_inflight_seconds",
                                     "Learned in-flight time (seconds of flow) per lane and cylinder model.",
                                     labels=["lane", "model"])
        for (lane, model), seconds in sorted(g.get("inflight_s", {}).items()):
            inflight.add_metric([lane, model], round(seconds, 4))
        yield from (polls, scale_up, errors, filling, inflight)
        yield GaugeMetricFamily("edge_upload_backlog", "Records waiting for the city system.", value=g["pending"])
        yield GaugeMetricFamily("edge_upload_dead_letters", "Records the city refused.", value=g["dead"])
        yield GaugeMetricFamily(
            "edge_upload_malformed_seconds",
            "How long the city's replies have not been its envelope (captive portal, proxy page); 0 when they are.",
            value=round(g["malformed_s"], 1))
        last = GaugeMetricFamily("edge_upload_last_success_timestamp_seconds",
                                 "Unix time of the last record the city accepted (absent before the first).")
        if g["last_success_ts"] is not None:
            last.add_metric([], g["last_success_ts"])
        yield last
        store = g.get("store")
        if store is not None:
            yield GaugeMetricFamily("edge_store_writable", "0 while the store cannot take writes (full or read-only disk).",
                                    value=int(store["writable"]))
            yield GaugeMetricFamily("edge_store_low_space", "1 while free space is below store.min_free_mb.",
                                    value=int(store["low_space"]))
            if store["free_bytes"] is not None:
                yield GaugeMetricFamily("edge_store_free_bytes", "Free space on the store's filesystem.", value=store["free_bytes"])
        journal = g.get("journal")
        if journal is not None:
            if journal["verify_ok"] is not None:
                yield GaugeMetricFamily("edge_journal_verify_ok",
                                        "1 when the daemon's last daily verify proved the journal, 0 when it failed or could not run.",
                                        value=int(journal["verify_ok"]))
            checkpoint = GaugeMetricFamily("edge_journal_checkpoint_timestamp_seconds",
                                           "Unix time of the last verify checkpoint journalled (absent before the first).")
            if journal["checkpoint_ts"] is not None:
                checkpoint.add_metric([], journal["checkpoint_ts"])
            yield checkpoint
        backup = g.get("backup")
        if backup is not None:  # a station with a backup: section
            yield GaugeMetricFamily("edge_backup_ok", "1 while the last backup succeeded and is younger than backup.max_age_hours.",
                                    value=int(backup["ok"]))
            good = GaugeMetricFamily("edge_backup_last_success_timestamp_seconds",
                                     "Unix time of the last backup delivered to every target (absent before the first).")
            if backup["last_ok_at"] is not None:
                good.add_metric([], datetime.fromisoformat(backup["last_ok_at"]).timestamp())
            yield good
        age = GaugeMetricFamily("edge_cache_age_seconds", "Age of the cylinder cache (absent before the first refresh).")
        if g["cache_age_s"] is not None:
            age.add_metric([], round(g["cache_age_s"], 1))
        yield age
