"""The simulation console: place a cylinder of any scenario (named in Chinese) on a lane's scale,
scan its code, press confirm or abort, practise a fault (overfill, leak, no flow, a cylinder lifted
off, scanner garbage, an unknown code, a silent scale), reset a locked lane, and stand in for the
checker's pre-fill check. Localhost only; it drives the simulators (and the lane's own
confirm/abort/reset inputs, as the buttons would); the one thing it writes to the store is the
pre-fill check, through the same scan-point function as the staff app.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from interlock.fill import Abort, Confirm, Reset
from interlock.reasons import TEXT, Reason

from ...daemon.station import Station
from ...lanes.lane import utc_now
from ...scanpoints import Actor, Refused, checks
from ..simulation import Simulation

log = logging.getLogger(__name__)

RESIDUAL_KG = 0.1  # gas left in a returned cylinder
# Faults to practise: (Chinese, English) names, as the console shows them.
FAULTS: dict[str, tuple[str, str]] = {
    "overfill": ("超装：阀门关闭迟缓", "overfill: the valve closes late"),
    "leak": ("关阀后泄漏", "leak after the valve closes"),
    "no_flow": ("气源断流", "no flow: the supply is empty"),
    "lift": ("充装中气瓶离秤", "cylinder lifted off mid-fill"),
    "scale_silent": ("秤通讯中断", "scale stops answering"),
    "scanner_garbage": ("扫码乱码", "scanner sends garbage"),
    "unknown_code": ("未登记的码", "a code not in the records"),
    "clear": ("排除故障", "clear the faults"),
}
# A valve that keeps passing gas this long after its coil drops overfills any cylinder.
LATE_VALVE_S = 1.0
LEAK_KG_PER_S = 0.5
UNKNOWN_CODE = "https://qp.cqsjj.example.cn/trace?code=CQ99999999999999999"


def scenario_name(scenario: str) -> str:
    """A dataset scenario as a trainer reads it: 可充装 / fillable, or the refusal it should get."""
    if scenario == "ok":
        return "可充装 / fillable"
    try:
        zh, en = TEXT[Reason(scenario)]
    except (ValueError, KeyError):
        return scenario
    return f"{zh} / {en}"


class Console:
    def __init__(self, station: Station, sim: Simulation, port: int = 0, status_url: str = "", webapp_url: str = "") -> None:
        self.station, self.sim, self.status_url, self.webapp_url = station, sim, status_url, webapp_url
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._valve_delay_s = sim.config.simulators.valve_delay_s if sim.config.simulators else 0.08
        self.placed: dict[str, dict[str, Any]] = {}  # lane -> the cylinder on its scale
        self._http = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="sim-console", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> Console:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def scenarios(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for cylinder in self.sim.dataset:
            counts[cylinder.scenario] = counts.get(cylinder.scenario, 0) + 1
        return dict(sorted(counts.items()))

    def lanes(self) -> dict[str, dict[str, Any]]:
        """What each lane asks of the trainee, as its config says."""
        return {lane.id: {"confirm": not lane.fill.auto_start, "precheck": lane.require_precheck}
                for lane in self.station.config.lanes}

    def info(self) -> dict[str, Any]:
        return {"lanes": list(self.station.lanes), "scenarios": self.scenarios(),
                "scenario_names": {s: scenario_name(s) for s in self.scenarios()},
                "faults": {k: f"{zh} / {en}" for k, (zh, en) in FAULTS.items()}, "lane_rules": self.lanes(),
                "status_url": self.status_url, "webapp_url": self.webapp_url, "placed": self.placed}

    # Actions: each returns what the console shows -------------------------------------------

    def place(self, lane: str, scenario: str) -> dict[str, Any]:
        with self._lock:
            cylinder = next((c for c in self.sim.dataset if c.scenario == scenario and c.row["id"] not in self._used), None)
            if cylinder is None:
                raise ValueError(f"no unused cylinder of scenario {scenario!r} left")
            self._used.add(cylinder.row["id"])
        tare = float(cylinder.row.get("tare_kg") or 15.0)
        self.sim.station_for(lane).model.place(tare + RESIDUAL_KG)
        self.placed[lane] = {"id": cylinder.row["id"], "scenario": scenario, "code": cylinder.row.get("qr_content")
                             or cylinder.row.get("info_code") or cylinder.row["id"], "model": cylinder.row.get("model")}
        return {"placed": self.placed[lane]}

    def scan(self, lane: str, code: str | None) -> dict[str, Any]:
        code = code or (self.placed.get(lane) or {}).get("code")
        if not code:
            raise ValueError("place a cylinder first, or give a code")
        self.sim.scanners[lane].scan(code)
        return {"scanned": code}

    def remove(self, lane: str) -> dict[str, Any]:
        self.sim.station_for(lane).model.remove()
        self.placed.pop(lane, None)
        return {"removed": True}

    def press(self, lane: str, button: str) -> dict[str, Any]:
        event = {"confirm": Confirm, "abort": Abort, "reset": Reset}[button]()
        self.station.lanes[lane].submit(event)
        return {"pressed": button}

    def fault(self, lane: str, fault: str) -> dict[str, Any]:
        sim = self.sim.station_for(lane)
        model = sim.model
        if fault == "scale_silent":
            sim.silent = True
        elif fault == "overfill":
            model.params.valve_delay_s = LATE_VALVE_S
        elif fault == "leak":
            model.leak_kg_per_s = LEAK_KG_PER_S
        elif fault == "no_flow":
            model.supply_empty = True
        elif fault == "lift":
            self.remove(lane)
        elif fault == "scanner_garbage":
            self.sim.scanners[lane].scan(b"\x1b[2~\x00\xff\xfe]]garbage\x07")
        elif fault == "unknown_code":
            self.sim.scanners[lane].scan(UNKNOWN_CODE)
        elif fault == "clear":
            sim.silent = False
            model.params.valve_delay_s = self._valve_delay_s
            model.leak_kg_per_s = 0.0
            model.supply_empty = False
        else:
            raise ValueError(f"unknown fault {fault!r} ({', '.join(FAULTS)})")
        return {"fault": fault, "name": " / ".join(FAULTS[fault])}

    def precheck(self, lane: str, passed: bool) -> dict[str, Any]:
        """The lane's checker checks the placed cylinder, as they would in the staff app."""
        placed = self.placed.get(lane)
        if placed is None:
            raise ValueError("place a cylinder first")
        config = self.station.config
        lane_config = next(c for c in config.lanes if c.id == lane)
        assert self.station.store is not None
        name = self.station.store.query("SELECT name FROM staff WHERE id = ?", [lane_config.checker])
        actor = Actor(lane_config.checker, name[0]["name"] if name else lane_config.checker, "checker")
        items = checks.prefill_items(config, lane_config.medium)
        ticked = {item.id: passed or index > 0 for index, item in enumerate(items)}  # a failed check fails its first item
        try:
            result = checks.prefill(self.station.store, config, actor, placed["code"], ticked, utc_now())
        except Refused as exc:
            raise ValueError(str(exc)) from None
        return {"precheck": "passed" if result.passed else "failed", "failed": [i.zh for i in result.failed]}

    def act(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        lane = str(body.get("lane", ""))
        if lane not in self.station.lanes:
            raise ValueError(f"no lane {lane!r}")
        actions: dict[str, Callable[[], dict[str, Any]]] = {
            "place": lambda: self.place(lane, str(body.get("scenario", "ok"))),
            "scan": lambda: self.scan(lane, body.get("code")),
            "remove": lambda: self.remove(lane),
            "confirm": lambda: self.press(lane, "confirm"),
            "abort": lambda: self.press(lane, "abort"),
            "reset": lambda: self.press(lane, "reset"),
            "fault": lambda: self.fault(lane, str(body.get("fault", ""))),
            "precheck": lambda: self.precheck(lane, body.get("passed", True) is not False),
        }
        if action not in actions:
            raise KeyError(action)
        log.info("console: %s %s", action, json.dumps(body, ensure_ascii=False))
        return actions[action]()


PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>模拟控制台 / simulation console</title>
<style>body{font-family:"WenQuanYi Micro Hei","Noto Sans CJK SC",sans-serif;margin:1rem;background:#f4f4f4}
fieldset{margin:.5rem 0;background:#fff}button{margin:.2rem;font-size:1rem}#said{white-space:pre-wrap;font-family:monospace}</style>
</head><body><h1>模拟控制台 / simulation console</h1>
<p>状态页 / status page: <a id="status" target="_blank"></a> · 员工应用 / staff app: <a id="webapp" target="_blank"></a></p>
<div id="lanes"></div><pre id="said"></pre>
<script>
"use strict";
async function post(action, body) {
  const r = await fetch("/api/" + action, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  document.getElementById("said").textContent = action + " " + JSON.stringify(body) + " -> " + await r.text();
}
(async () => {
  const info = await (await fetch("/api/info")).json();
  const a = document.getElementById("status"); a.href = a.textContent = info.status_url;
  const w = document.getElementById("webapp"); w.href = w.textContent = info.webapp_url;
  for (const lane of info.lanes) {
    const box = document.createElement("fieldset");
    const rules = info.lane_rules[lane];
    const needs = [rules.precheck ? "需充装前检查 / pre-fill check first" : "", rules.confirm ? "需按确认开始 / press confirm to start" : ""];
    const legend = document.createElement("legend");
    legend.textContent = `工位 / lane ${lane} ` + needs.filter(Boolean).join(" · ");
    box.append(legend);
    const pick = document.createElement("select");
    for (const [s, n] of Object.entries(info.scenarios)) pick.add(new Option(`${info.scenario_names[s]} (${n})`, s));
    box.append(pick);
    const button = (label, action, extra) => { const b = document.createElement("button"); b.textContent = label;
      b.onclick = () => post(action, {lane, ...(extra ? extra() : {})}); box.append(b); };
    button("放上秤 / place", "place", () => ({scenario: pick.value}));
    button("扫码 / scan", "scan"); button("确认 / confirm", "confirm"); button("中止 / abort", "abort");
    button("取下 / remove", "remove");
    if (rules.precheck) {
      button("检查合格 / check passed", "precheck", () => ({passed: true}));
      button("检查不合格 / check failed", "precheck", () => ({passed: false}));
    }
    box.append(document.createElement("br"));
    for (const [f, name] of Object.entries(info.faults)) button(name, "fault", () => ({fault: f}));
    button("复位 / reset", "reset");
    document.getElementById("lanes").append(box);
  }
})();
</script></body></html>"""


def _handler(console: Console) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            if self.path == "/":
                self._send(200, "text/html; charset=utf-8", PAGE.encode())
            elif self.path == "/api/info":
                self._json(200, console.info())
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            action = self.path.removeprefix("/api/")
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                self._json(200, console.act(action, body if isinstance(body, dict) else {}))
            except KeyError:
                self._json(404, {"error": f"no action {action!r}"})
            except (ValueError, json.JSONDecodeError) as exc:
                self._json(400, {"error": str(exc)})

        def _json(self, code: int, data: Any) -> None:
            self._send(code, "application/json; charset=utf-8", json.dumps(data, ensure_ascii=False).encode())

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("console %s", format % args)

    return Handler
