"""Counters the lanes feed through their listeners, and the Prometheus text exposition.

Written by hand: a dozen families in the text format (version 0.0.4) are simpler than a client
library's global registry, and the daemon stays free of another dependency.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .lane import LaneEvent

CUTOFF_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.scans: dict[str, int] = defaultdict(int)
        self.decisions: dict[tuple[str, str, str], int] = defaultdict(int)  # lane, decision, reason
        self.fills: dict[tuple[str, str], int] = defaultdict(int)  # lane, outcome
        self.trips: dict[tuple[str, str], int] = defaultdict(int)  # lane, cause
        self.cutoff: dict[str, list[float]] = {}  # lane -> bucket counts..., +Inf count, sum

    def observe(self, event: LaneEvent) -> None:
        """A lane listener: every verdict, finished fill and valve cut-off."""
        with self._lock:
            if event.kind == "verdict":
                self.scans[event.lane] += 1
                decision = "accepted" if event.data["accepted"] else "rejected"
                for reason in event.data["reasons"] or ["NONE"]:
                    self.decisions[(event.lane, decision, reason)] += 1
            elif event.kind == "fill_end":
                self.fills[(event.lane, str(event.data.get("outcome") or event.data["status"]))] += 1
                if event.data.get("tripped"):
                    self.trips[(event.lane, str(event.data.get("cause")))] += 1
            elif event.kind == "valve_off":
                lag = float(event.data["lag_s"])
                counts = self.cutoff.setdefault(event.lane, [0.0] * (len(CUTOFF_BUCKETS) + 2))
                for index, bound in enumerate(CUTOFF_BUCKETS):
                    if lag <= bound:
                        counts[index] += 1
                counts[-2] += 1
                counts[-1] += lag

    def exposition(self, gauges: dict[str, Any]) -> str:
        """The text format. `gauges` carries what is read at scrape time (backlog, cache, devices)."""
        with self._lock:
            out: list[str] = []
            _family(out, "edge_scans_total", "counter", "Scans decided, per lane.",
                    (({"lane": lane}, n) for lane, n in sorted(self.scans.items())))
            _family(out, "edge_decisions_total", "counter", "Scan decisions by outcome and reason code.",
                    (({"lane": l, "decision": d, "reason": r}, n) for (l, d, r), n in sorted(self.decisions.items())))
            _family(out, "edge_fills_total", "counter", "Fills finished, by outcome (ok, OVERFILLED, UNDERFILLED, aborted).",
                    (({"lane": l, "outcome": o}, n) for (l, o), n in sorted(self.fills.items())))
            _family(out, "edge_trips_total", "counter", "Fills the interlock tripped, by cause.",
                    (({"lane": l, "cause": c}, n) for (l, c), n in sorted(self.trips.items())))
            out += ["# HELP edge_cutoff_lag_seconds Scale reading that ended a fill to valve OFF acknowledged.",
                    "# TYPE edge_cutoff_lag_seconds histogram"]
            for lane, counts in sorted(self.cutoff.items()):
                for bound, count in zip(CUTOFF_BUCKETS, counts):
                    out.append(f'edge_cutoff_lag_seconds_bucket{{lane="{lane}",le="{bound}"}} {count:g}')
                out.append(f'edge_cutoff_lag_seconds_bucket{{lane="{lane}",le="+Inf"}} {counts[-2]:g}')
                out.append(f'edge_cutoff_lag_seconds_sum{{lane="{lane}"}} {counts[-1]:.6f}')
                out.append(f'edge_cutoff_lag_seconds_count{{lane="{lane}"}} {counts[-2]:g}')
        _family(out, "edge_scale_polls_total", "counter", "Scale polls attempted.",
                (({"lane": lane}, n) for lane, n in gauges["polls"].items()))
        _family(out, "edge_modbus_errors_total", "counter", "Failed Modbus requests per device.",
                (({"bus": bus, "device": str(unit)}, n) for (bus, unit), n in sorted(gauges["modbus_errors"].items())))
        _family(out, "edge_lane_filling", "gauge", "1 while the lane's valve is energised.",
                (({"lane": lane}, int(on)) for lane, on in gauges["relay_on"].items()))
        _family(out, "edge_learned_inflight_seconds", "gauge", "Learned in-flight time (seconds of flow) per lane and cylinder model.",
                (({"lane": lane, "model": model}, round(s, 4)) for (lane, model), s in sorted(gauges.get("inflight_s", {}).items())))
        _family(out, "edge_upload_backlog", "gauge", "Records waiting for the city system.", [({}, gauges["pending"])])
        _family(out, "edge_upload_dead_letters", "gauge", "Records the city refused.", [({}, gauges["dead"])])
        _family(out, "edge_upload_malformed_seconds", "gauge",
                "How long the city's replies have not been its envelope (captive portal, proxy page); 0 when they are.",
                [({}, round(gauges.get("malformed_s", 0.0), 1))])
        store = gauges.get("store")
        if store is not None:
            _family(out, "edge_store_writable", "gauge", "0 while the store cannot take writes (full or read-only disk).",
                    [({}, int(store["writable"]))])
            _family(out, "edge_store_low_space", "gauge", "1 while free space is below store.min_free_mb.",
                    [({}, int(store["low_space"]))])
            if store["free_bytes"] is not None:
                _family(out, "edge_store_free_bytes", "gauge", "Free space on the store's filesystem.", [({}, store["free_bytes"])])
        if gauges["cache_age_s"] is not None:
            _family(out, "edge_cache_age_seconds", "gauge", "Age of the cylinder cache.", [({}, round(gauges["cache_age_s"], 1))])
        return "\n".join(out) + "\n"


def _family(out: list[str], name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
    out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{shown}}} {value:g}" if shown else f"{name} {value:g}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
