"""The simulation console: place a cylinder of any scenario on a lane's scale, scan its code, press
confirm or abort, inject a device fault, reset a locked lane. Localhost only; it drives the
simulators (and the lane's own confirm/abort/reset inputs, as the buttons would), never the store.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from interlock.fill import Abort, Confirm, Reset

from ...daemon.station import Station
from ..simulation import Simulation

log = logging.getLogger(__name__)

RESIDUAL_KG = 0.1  # gas left in a returned cylinder


class Console:
    def __init__(self, station: Station, sim: Simulation, port: int = 0, status_url: str = "") -> None:
        self.station, self.sim, self.status_url = station, sim, status_url
        self._lock = threading.Lock()
        self._used: set[str] = set()
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
        scale = self.sim.station_for(lane)
        if fault == "scale_silent":
            scale.silent = True
        elif fault == "clear":
            scale.silent = False
        else:
            raise ValueError(f"unknown fault {fault!r} (scale_silent, clear)")
        return {"fault": fault}

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
        }
        if action not in actions:
            raise KeyError(action)
        log.info("console: %s %s", action, json.dumps(body, ensure_ascii=False))
        return actions[action]()


PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>模拟控制台 / simulation console</title>
<style>body{font-family:"WenQuanYi Micro Hei","Noto Sans CJK SC",sans-serif;margin:1rem;background:#f4f4f4}
fieldset{margin:.5rem 0;background:#fff}button{margin:.2rem;font-size:1rem}#said{white-space:pre-wrap;font-family:monospace}</style>
</head><body><h1>模拟控制台 / simulation console</h1>
<p>状态页 / status page: <a id="status" target="_blank"></a></p>
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
  for (const lane of info.lanes) {
    const box = document.createElement("fieldset");
    box.innerHTML = `<legend>工位 / lane ${lane}</legend>`;
    const pick = document.createElement("select");
    for (const [s, n] of Object.entries(info.scenarios)) pick.add(new Option(`${s} (${n})`, s));
    box.append(pick);
    const button = (label, action, extra) => { const b = document.createElement("button"); b.textContent = label;
      b.onclick = () => post(action, {lane, ...(extra ? extra() : {})}); box.append(b); };
    button("放上秤 / place", "place", () => ({scenario: pick.value}));
    button("扫码 / scan", "scan"); button("确认 / confirm", "confirm"); button("中止 / abort", "abort");
    button("取下 / remove", "remove"); button("秤故障 / scale fault", "fault", () => ({fault: "scale_silent"}));
    button("排除故障 / clear fault", "fault", () => ({fault: "clear"})); button("复位 / reset", "reset");
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
                self._json(200, {"lanes": list(console.station.lanes), "scenarios": console.scenarios(),
                                 "status_url": console.status_url, "placed": console.placed})
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
