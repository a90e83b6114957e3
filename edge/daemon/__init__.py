"""The running station (`edge run`): the assembly that builds devices from config and starts the
lanes with every valve off first (station.py, assembly.py), the one-daemon-per-station lock
(instance.py), the control socket that `edge lane reset|ack` talk to (control.py), systemd's notify
protocol and watchdog (notify.py), the loop guard that closes a hung lane's valve (guard.py), the
store watch (storewatch.py), and the background services: the city link (city.py) and the company
fleet uplink (fleet.py). The lanes themselves are in edge.lanes; the daemon imports them, never
the other way round."""
