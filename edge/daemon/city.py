"""The daemon's link to the city system: the client built from config, and two background threads
(the uploader draining the outbox, the refresher keeping the cache fresh).

Both threads use their own database connection: SQLite's WAL lets lanes read the cache while a
page of cylinders is being written, so a lane never waits on the network or on a sync write.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, tzinfo

from sync.client import CityClient, Credentials, SyncError, Tls
from sync.refresh import LAST_FULL, Refresher
from sync.uploader import RetryPolicy, Uploader

from ..config import Config
from ..config.city import CityConfig
from ..lanes.lane import Clock, utc_now
from ..store import Store, StoreUnavailable
from ..store.outbox import Outbox

log = logging.getLogger(__name__)

# An in-flight HTTP call is abandoned after this long at stop: its row stays pending and is sent
# again (same idempotency key) after the restart.
STOP_JOIN_S = 2.0


def build_client(city: CityConfig, tz: tzinfo) -> CityClient:
    """The city client; `tz` is the station's zone, the city's unless its profile names one."""
    verify: bool | str = str(city.ca_bundle) if city.ca_bundle is not None else True
    cert: str | tuple[str, str] | None = None
    if city.client_cert is not None:
        cert = (str(city.client_cert), str(city.client_key)) if city.client_key else str(city.client_cert)
    assert city.url is not None
    return CityClient(
        city.profile,
        city.url,
        Credentials(city.username, city.secret()),
        Tls(verify, cert),
        (city.connect_timeout_s, city.read_timeout_s),
        tz=tz,
    )


def retry_policy(city: CityConfig, paced: bool = True) -> RetryPolicy:
    upload = city.upload
    rate = upload.max_rate_per_s if paced else None
    return RetryPolicy(upload.backoff_initial_s, upload.backoff_max_s, upload.jitter_s, upload.malformed_window_h * 3600, rate)


class SyncService:
    def __init__(self, config: Config, clock: Clock = utc_now) -> None:
        assert config.city is not None
        self.config, self.city, self.clock = config, config.city, clock
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.threads: list[threading.Thread] = []
        self.uploader: Uploader | None = None

    def start(self) -> None:
        self.city.secret()  # a missing password file or variable stops start-up with its name
        if self.city.upload.enabled:
            self.threads.append(threading.Thread(target=self._upload, name="uploader", daemon=True))
        if self.city.refresh.enabled:
            self.threads.append(threading.Thread(target=self._refresh, name="refresher", daemon=True))
        for thread in self.threads:
            thread.start()
        log.info("city sync (%s at %s): %s", self.city.profile.name, self.city.url, ", ".join(t.name for t in self.threads))

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(STOP_JOIN_S)
            if thread.is_alive():
                log.info("%s still in an HTTP call at stop; its record stays pending", thread.name)

    def _upload(self) -> None:
        store, client = Store(self.config.store.path, durable=False), build_client(self.city, self.config.tz)
        try:
            self.uploader = Uploader(client, Outbox(store), retry_policy(self.city), self.clock)
            self.uploader.run(self.stop_event, self.city.upload.idle_s, self.wake)
        finally:
            client.close()
            store.close()

    def _refresh(self) -> None:
        store, client = Store(self.config.store.path, durable=False), build_client(self.city, self.config.tz)
        refresher = Refresher(client, store, self.config.tz, self.city.refresh.page_size, self.clock)
        settings = self.city.refresh
        try:
            while not self.stop_event.is_set():
                wait = settings.interval_s
                try:
                    refresher.refresh(full=self._full_due(store))
                except SyncError as exc:
                    # Lanes keep filling from the cache; its age, not this thread, decides when
                    # they must stop. Try again sooner than a full interval.
                    log.warning("cache refresh failed: %s", exc)
                    wait = min(settings.interval_s, 60.0)
                except StoreUnavailable as exc:  # a full disk: the cache stays as it was, and ages
                    log.warning("cache refresh not stored: %s", exc)
                    wait = min(settings.interval_s, 60.0)
                except Exception:  # a bug must not end refreshes for good
                    log.exception("cache refresh failed")
                    wait = min(settings.interval_s, 60.0)
                self.stop_event.wait(wait)
        finally:
            client.close()
            store.close()

    def _full_due(self, store: Store) -> bool:
        last = store.get_meta(LAST_FULL)
        if last is None:
            return True
        return self.clock() - datetime.fromisoformat(last) >= timedelta(hours=self.city.refresh.full_every_h)
