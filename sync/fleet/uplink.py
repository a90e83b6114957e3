"""The station's uplink: events from the durable outbox at QoS 1 (marked delivered only on the
broker's PUBACK), retained lane state and health, a last will, and the company's commands.

Delivery is at least once: after a lost connection or a restart every event not yet acknowledged is
published again, and the consumer de-duplicates on the event's key.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Protocol

from . import mqtt
from .protocol import command_topic, encode, envelope, station_topic
from .settings import BrokerConfig

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often the outbox is looked at when nothing wakes the uplink


@dataclass(frozen=True)
class PendingEvent:
    id: int
    kind: str  # "fill" or "scan": the topic's last segment
    payload: bytes


class EventSource(Protocol):
    def pending(self, after_id: int, limit: int) -> list[PendingEvent]: ...

    def delivered(self, ids: list[int]) -> None: ...


# A command's raw bytes -> the reply to publish (or None: not for this station).
CommandHandler = Callable[[bytes], dict[str, Any] | None]
Clock = Callable[[], datetime]


class Uplink:
    def __init__(
        self,
        broker: BrokerConfig,
        company: str,
        station: str,
        source: EventSource,
        on_command: CommandHandler,
        clock: Clock,
        window: int = 100,
    ) -> None:
        self.broker, self.company, self.station = broker, company, station
        self.source, self.on_command, self.clock = source, on_command, clock
        self.window = window
        self.health_topic = station_topic(company, station, "health")
        self._client: Any = None
        self._connected = threading.Event()
        self._generation = 0  # bumped by every (re)connect: what was in flight is published again
        self._acks: queue.Queue[tuple[int, bool]] = queue.Queue()
        self._commands: queue.Queue[bytes] = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._retained: dict[str, bytes] = {}  # topic -> last payload, republished on reconnect
        self._retained_lock = threading.Lock()
        self.delivered_count = 0

    # Life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        # The client id is the station id, which is also its broker username: the company's broker
        # ties the two together (use_username_as_clientid), so no account can take another's session.
        client = mqtt.make_client(self.broker, client_id=self.station, persistent=True)
        # The broker publishes this, retained, when the station vanishes without saying goodbye.
        client.will_set(self.health_topic, encode(self._offline("connection lost")), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        mqtt.connect_async(client, self.broker, persistent=True)
        self._threads = [
            threading.Thread(target=self._publisher, name="fleet-publisher", daemon=True),
            threading.Thread(target=self._command_worker, name="fleet-commands", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Say goodbye (retained offline health) and disconnect; undelivered events stay queued."""
        self._stop.set()
        self._wake.set()
        self._commands.put(b"")
        for thread in self._threads:
            thread.join(timeout=timeout)
        if self._client is None:
            return
        if self._connected.is_set():
            info = self._client.publish(self.health_topic, encode(self._offline("stopped")), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass  # the connection went while saying goodbye: the last will says it instead
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wake(self) -> None:
        """New events were committed: publish them now rather than at the next poll."""
        self._wake.set()

    # Retained state --------------------------------------------------------------------------

    def publish_state(self, suffix: tuple[str, ...], kind: str, fields: dict[str, Any]) -> None:
        """Retained state under <company>/<station>/<suffix>; kept and sent again after a reconnect."""
        topic = station_topic(self.company, self.station, *suffix)
        payload = encode(envelope(kind, self.company, self.station, self.clock(), **fields))
        with self._retained_lock:
            self._retained[topic] = payload
        if self._connected.is_set():
            self._client.publish(topic, payload, qos=1, retain=True)

    def _offline(self, why: str) -> dict[str, Any]:
        return envelope("health", self.company, self.station, self.clock(), online=False, detail=why)

    # paho callbacks (its network thread: hand work over, never block) ------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if mqtt.failed(reason_code):
            log.error("fleet broker %s:%d refused the connection: %s", self.broker.host, self.broker.port, reason_code)
            return
        log.info("fleet broker %s:%d connected", self.broker.host, self.broker.port)
        client.subscribe(command_topic(self.company), qos=1)
        with self._retained_lock:
            retained = list(self._retained.items())
        for topic, payload in retained:
            client.publish(topic, payload, qos=1, retain=True)
        self._generation += 1
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self._connected.is_set():
            log.warning("fleet broker connection lost (%s); events wait in the outbox", reason_code)
        self._connected.clear()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self._acks.put((mid, not mqtt.failed(reason_code)))
        self._wake.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._commands.put(bytes(message.payload))

    # Threads ---------------------------------------------------------------------------------

    def _publisher(self) -> None:
        inflight: dict[int, int] = {}  # mid -> outbox id
        generation, last_id = -1, 0
        while not self._stop.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            try:
                if generation != self._generation:
                    # A new connection: whatever was in flight may never have arrived; start over
                    # from the oldest undelivered event (the consumer drops any duplicate).
                    generation, last_id = self._generation, 0
                    inflight.clear()
                self._settle(inflight)
                if self._connected.is_set() and len(inflight) < self.window:
                    last_id = self._publish_more(inflight, last_id)
            except Exception:  # a database hiccup must not end the uplink; the next round retries
                log.exception("fleet publisher round failed")

    def _settle(self, inflight: dict[int, int]) -> None:
        done: list[int] = []
        while True:
            try:
                mid, ok = self._acks.get_nowait()
            except queue.Empty:
                break
            row = inflight.pop(mid, None)
            if row is None:
                continue  # retained state, or a message from before the last reconnect
            if ok:
                done.append(row)
            else:
                log.error("fleet broker refused event %d (check the station's ACL); kept for retry", row)
        if done:
            self.source.delivered(done)
            self.delivered_count += len(done)

    def _publish_more(self, inflight: dict[int, int], last_id: int) -> int:
        for event in self.source.pending(last_id, self.window - len(inflight)):
            topic = station_topic(self.company, self.station, "event", event.kind)
            info = self._client.publish(topic, event.payload, qos=1)
            if info.rc != 0:
                break  # not connected any more; the next connection starts over
            inflight[info.mid] = event.id
            last_id = event.id
        return last_id

    def _command_worker(self) -> None:
        while True:
            raw = self._commands.get()
            if self._stop.is_set():
                return
            try:
                reply = self.on_command(raw)
            except Exception:
                log.exception("fleet command handler failed")
                continue
            if reply is not None and self._client is not None:
                self._client.publish(station_topic(self.company, self.station, "reply"), encode(reply), qos=1)
