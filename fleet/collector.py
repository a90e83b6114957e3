"""`edge fleet collect`: every station's events into one database.

The collector keeps a persistent session at the broker (a fixed client id, no clean start), so the
broker queues events for it while it is away; it acknowledges each event only after the database
has committed it, so a crash between the two means a redelivery, which the database drops.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any

from sync.fleet import mqtt
from sync.fleet.protocol import VERSION

from .config import CompanyConfig
from .database import EventDatabase

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, config: CompanyConfig, database: EventDatabase) -> None:
        self.config, self.db = config, database
        self.client: Any = None
        self.connected = threading.Event()
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0

    def start(self) -> None:
        client = mqtt.make_client(self.config.broker, client_id=f"{self.config.company}-{self.config.collector_id}", persistent=True)
        # Acknowledge by hand, after the commit: a PUBACK is the broker's licence to forget.
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *args: self.connected.clear()
        client.on_message = self._on_message
        self.client = client
        mqtt.connect_async(client, self.config.broker, persistent=True)

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if mqtt.failed(reason_code):
            log.error("broker refused the collector: %s", reason_code)
            return
        company = self.config.company
        client.subscribe([(f"{company}/+/event/+", 1), (f"{company}/+/health", 1)])
        log.info("collector connected to %s:%d", self.config.broker.host, self.config.broker.port)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self._store(message.topic, bytes(message.payload))
        except Exception:
            # Not acknowledged: drop the connection so the broker delivers it again.
            log.exception("could not store the message on %s; reconnecting for a redelivery", message.topic)
            try:
                client.reconnect()
            except OSError:
                pass  # paho's loop keeps trying
            return
        if message.qos > 0:
            client.ack(message.mid, message.qos)

    def _store(self, topic: str, raw: bytes) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        try:
            payload = json.loads(raw)
            station = topic.split("/")[1]
            if not isinstance(payload, dict) or payload.get("v") != VERSION or payload.get("station") != station:
                raise ValueError("not a version-1 payload from the station its topic names")
        except (ValueError, IndexError) as exc:
            self.rejected += 1
            log.warning("dropped a message on %s: %s", topic, exc)
            return
        if payload["type"] == "health":
            self.db.set_station(station, bool(payload.get("online")), payload, now)
        elif payload["type"] in ("fill", "scan"):
            if self.db.add_event(payload, now):
                self.stored += 1
            else:
                self.duplicates += 1
