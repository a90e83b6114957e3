"""The staff web app's cost: the daemon's resident memory (`edge run` in its own process, two
simulated lanes) without the app, with it loaded, and with one logged-in session that has opened
the check page; and how long the pre-fill check page (a cylinder looked up, its check list) takes
to load from the daemon over HTTPS, a fresh TLS connection per page as a phone makes it.

    .venv/bin/python bench/webapp.py [--pages 50]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import load_config  # noqa: E402
from edge.daemon.station import open_store  # noqa: E402
from edge.demo.run import BUNDLED_CONFIG, effective_config  # noqa: E402
from edge.demo.simulation import Simulation  # noqa: E402
from edge.lanes.lane import utc_now  # noqa: E402
from edge.webapp.accounts import set_secret  # noqa: E402
from edge.webapp.server import make_certificate  # noqa: E402
from simulators.modbus_server import free_port  # noqa: E402
from tests.systemd_support import NotifySocket  # noqa: E402
from tests.webapp_support import Client  # noqa: E402

PIN = "246810"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Daemon:
    def __init__(self, config: Path) -> None:
        self.notify = NotifySocket()
        self.process = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                                        env={**os.environ, "NOTIFY_SOCKET": self.notify.path}, stderr=subprocess.DEVNULL)
        self.notify.wait_for("READY=1", timeout=60)
        time.sleep(3)  # past start-up

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(20)
        self.notify.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=50)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="edge-bench-web-"))
    config_path = effective_config(BUNDLED_CONFIG, state)
    config = load_config(config_path)
    sim = Simulation(config).start()
    sim.seed_store()
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    del raw["simulators"], raw["city"]  # the daemon alone: simulators here, no city traffic
    port = free_port()
    cert, key = state / "web.pem", state / "web.key"
    make_certificate(cert, key, ["127.0.0.1"])
    variants = {
        "without the app": {**raw, "webapp": {"enabled": False}},
        "with the app": {**raw, "webapp": {"enabled": True, "host": "127.0.0.1", "port": port,
                                           "tls": {"cert": str(cert), "key": str(key)}}},
    }
    code = next(g for g in sim.dataset if g.scenario == "ok").row["qr_content"]
    try:
        rss: dict[str, float] = {}
        for name, variant in variants.items():
            path = state / f"{name.replace(' ', '-')}.yaml"
            path.write_text(yaml.safe_dump(variant, allow_unicode=True, sort_keys=False), encoding="utf-8")
            daemon = Daemon(path)
            try:
                rss[name] = rss_mb(daemon.process.pid)
                if variant["webapp"]["enabled"]:
                    store = open_store(load_config(path))
                    set_secret(store, "chk-wang", PIN, "checker", utc_now())
                    store.close()
                    client = Client(url=f"https://127.0.0.1:{port}", cert=str(cert))
                    assert client.login("chk-wang", PIN).status_code == 303
                    times = []
                    for _ in range(args.pages):
                        started = time.perf_counter()
                        page = client.get("/check/pre", params={"code": code}, headers={"Connection": "close"})
                        times.append(time.perf_counter() - started)
                        assert page.status_code == 200 and "checklist" in page.text
                    rss["with one session, after the pages"] = rss_mb(daemon.process.pid)
                    times.sort()
                    print(f"check page load (login session, cylinder looked up, check list; new TLS connection each):"
                          f" median {statistics.median(times) * 1000:.1f} ms, p90 {times[int(len(times) * 0.9)] * 1000:.1f} ms"
                          f" over {args.pages} pages")
            finally:
                daemon.stop()
        base = rss["without the app"]
        for name, value in rss.items():
            print(f"daemon RSS {name:<36} {value:6.1f} MB ({value - base:+.1f} MB)")
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
