"""The loop guard: a thread of its own that closes a lane's valve when the lane's control loop has
stopped coming round (a deadlock, a driver call that never returns) while the valve is on.

It does not wait for the systemd watchdog (WatchdogSec) or a relay lease. The bound is
max(stall_factor x (poll_period_s + the scale's timeout_s), floor_s): a healthy loop comes round
at least once per poll period plus one read that times out, so a loop late by that multiple is
hung; the floor keeps a busy machine's scheduling from looking like a hang.

Its path to the relay, by transport:
- Modbus TCP: a second TCP connection of its own, opened only when it trips, so a control thread
  stuck inside a request on the lane's connection (holding that bus's lock) cannot stop it. The
  lane's own relay is tried as well, for boards that accept one connection only.
- GPIO: the lane's relay object; a line can be written from any thread.
- Modbus RTU: an RS-485 bus has one owner, so the guard can only queue its OFF behind the lane's
  bus lock. If the hung call holds that lock (a request that never returns), the OFF waits with
  it; what closes the valve then is the relay's lease, the systemd watchdog's restart, or the
  hardware safeguards. The guard still locks the lane and says so in the log.

Each OFF runs in a thread of its own, so a relay write that hangs never stops the guard from
watching the other lanes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from drivers.base import DeviceError, Relay
from interlock.reasons import Reason

from ..lanes.lane import Lane
from .notify import Periodic

log = logging.getLogger(__name__)

CHECK_S = 0.05


class Guard(Periodic):
    def __init__(
        self, lanes: dict[str, Lane], own_paths: dict[str, Relay], stall_factor: float, floor_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("loop-guard", CHECK_S)
        self.lanes, self.own_paths, self.clock = lanes, own_paths, clock
        self.stall_factor, self.floor_s = stall_factor, floor_s
        self.trips: dict[str, float] = {}  # lane id -> monotonic time the guard drove its valve off

    def bound_s(self, lane: Lane) -> float:
        scale = lane.config.scale
        return max(self.stall_factor * (scale.poll_period_s + scale.timeout_s), self.floor_s)

    def tick(self) -> None:
        for lane in self.lanes.values():
            self.check(lane)

    def check(self, lane: Lane) -> bool:
        """Trip the lane if its valve is on and its loop is late by more than the bound."""
        # Only a commanded-on valve needs the guard: with the valve off a hung loop opens nothing,
        # and the systemd watchdog restarts the daemon.
        if lane.guard_cause is not None or not lane.state.relay_on or not lane.loop_stalled(self.bound_s(lane)):
            return False
        late = time.monotonic() - lane.loop_seen
        lane.guard_trip(Reason.LOOP_STALLED)
        self.trips[lane.id] = self.clock()
        log.critical(
            "lane %s: control loop stalled %.2f s (bound %.2f s) with the valve on; guard drives it off and locks the lane",
            lane.id, late, self.bound_s(lane),
        )
        paths = [("own connection", self.own_paths[lane.id])] if lane.id in self.own_paths else []
        paths.append(("lane's relay", lane.relay))
        for name, relay in paths:
            threading.Thread(target=_drive_off, args=(lane.id, name, relay), name=f"guard-off-{lane.id}", daemon=True).start()
        return True


def _drive_off(lane_id: str, path: str, relay: Relay) -> None:
    try:
        relay.off()
    except DeviceError as exc:
        log.error("lane %s: guard OFF through the %s failed: %s", lane_id, path, exc)
        return
    log.warning("lane %s: valve driven off by the guard through the %s", lane_id, path)
