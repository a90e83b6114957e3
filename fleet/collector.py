"""`edge fleet collect`: every station's events into one database.

The collector keeps a persistent session at the broker (a fixed client id, no clean start), so the
broker queues events for it while it is away; it acknowledges each event only after the database
has committed it, so a crash between the two means a redelivery, which the database drops. A
message that cannot be stored is acknowledged once it is in the quarantine table: one bad event
never holds up the ones behind it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timezone
from typing import Any

from sync.fleet import mqtt

from .config import CompanyConfig
from .database import EventDatabase

log = logging.getLogger(__name__)

BATCH = 500


class Collector:
    def __init__(self, config: CompanyConfig, database: EventDatabase) -> None:
        self.config, self.db = config, database
        self.client: Any = None
        self.connected = threading.Event()
        self.stored = 0
        self.duplicates = 0
        self.quarantined = 0
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._leaving = False
        self._busy = False  # the writer holds a batch not yet acknowledged
        self._last_message = time.monotonic()
        self._thread = threading.Thread(target=self._writer, name="collector-writer", daemon=True)

    @property
    def topics(self) -> list[str]:
        company = self.config.company
        return [f"{company}/+/event/+", f"{company}/+/health"]

    @property
    def subscriptions(self) -> list[str]:
        """What this collector subscribes to: the topics, or its group's share of them."""
        if not self.config.share:
            return self.topics
        return [f"$share/{self.config.company}-collectors/{topic}" for topic in self.topics]

    @property
    def other_subscriptions(self) -> list[str]:
        """The other mode's filters: a session that ran in it would get every event twice over."""
        shared = [f"$share/{self.config.company}-collectors/{topic}" for topic in self.topics]
        return self.topics if self.config.share else shared

    def start(self) -> None:
        client = mqtt.make_client(self.config.broker, client_id=f"{self.config.company}-{self.config.collector_id}", persistent=True)
        # Acknowledge by hand, after the commit: a PUBACK is the broker's licence to forget.
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *args: self.connected.clear()
        client.on_message = self._on_message
        self.client = client
        self._thread.start()
        mqtt.connect_async(client, self.config.broker, persistent=True)

    def leave(self, quiet_s: float = 1.0, timeout_s: float = 60.0) -> bool:
        """Retire this collector for good: drop its subscription (its share of a group's), store
        what its session still holds, then stop. Without this a retired collector's session would
        go on collecting events, for nobody, until it expires. False if it never got quiet within
        timeout_s (it stops anyway; what is left is redelivered if it runs again)."""
        self._leaving = True
        self.client.unsubscribe(self.subscriptions)
        deadline = time.monotonic() + timeout_s
        quiet = False
        while time.monotonic() < deadline and not quiet:
            time.sleep(0.1)
            quiet = self._inbox.empty() and not self._busy and time.monotonic() - self._last_message >= quiet_s
        self.stop()
        return quiet

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if mqtt.failed(reason_code):
            log.error("broker refused the collector: %s", reason_code)
            return
        if self._leaving:
            return
        # In a group, a shared subscription (MQTT 5, and Mosquitto for 3.1.1 too): the broker hands
        # each message to one collector of the group, so several collectors split the events.
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        client.unsubscribe(self.other_subscriptions)
        log.info("collector connected to %s:%d", self.config.broker.host, self.config.broker.port)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._last_message = time.monotonic()
        self._inbox.put(message)

    def _writer(self) -> None:
        """Store what has arrived in one transaction, then acknowledge it: one disk sync per batch,
        not per event (the broker keeps several messages in flight to us)."""
        while not self._stop.is_set():
            try:
                batch = [self._inbox.get(timeout=0.2)]
            except queue.Empty:
                continue
            self._busy = True
            while len(batch) < BATCH:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            try:
                counts = self.db.add_batch([(m.topic, bytes(m.payload)) for m in batch], _now())
            except Exception:
                # Not acknowledged: reconnect, and the broker delivers the batch again.
                log.exception("could not store %d messages; reconnecting for a redelivery", len(batch))
                self._drop_connection()
                self._busy = False
                continue
            self.stored += counts["stored"]
            self.duplicates += counts["duplicates"]
            self.quarantined += counts["quarantined"]
            for message in batch:
                if message.qos > 0:
                    self.client.ack(message.mid, message.qos)
            self._busy = False

    def _drop_connection(self) -> None:
        while True:  # what is queued came over the connection we drop: it will all come again
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        try:
            self.client.reconnect()
        except OSError:
            pass  # paho's loop keeps trying


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
