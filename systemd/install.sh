#!/bin/sh
# Install station-edge as a systemd service on Debian or Raspberry Pi OS. Run as root from a clone:
#
#   sudo sh systemd/install.sh [--extras gpiod,hid] [--prefix /opt/station-edge]
#
# It installs the package into PREFIX/venv, the unit into /etc/systemd/system, a config skeleton
# into /etc/station-edge (never overwriting one that exists), the udev rule for FTDI adapters,
# a system user station-edge in whichever of dialout, gpio, input and video exist here, and its
# state directory /var/lib/station-edge (group-readable: managers in group station-edge read the
# records). It enables the unit but does not start it: edit the config, check it, then start.
set -eu

prefix=/opt/station-edge
extras=""
python=${PYTHON:-python3}
usage() {
  cat <<USAGE
usage: $0 [--prefix DIR] [--extras LIST]

  --prefix DIR    where the virtual environment goes (default /opt/station-edge)
  --extras LIST   comma-separated optional parts, as the config needs them (check-config names
                  a missing one):
                    gpiod     GPIO through libgpiod (relay, stack light, buttons; any board)
                    rpi       GPIO through RPi.GPIO (rpi-lgpio on a Pi 5)
                    hid       keyboard-wedge (HID) scanners
                    camera    camera scanners (OpenCV, zbar, zxing-cpp)
                    sm3       SM3 request signing where OpenSSL lacks SM3
                    fleet     the company fleet uplink (MQTT) and the company's tools
                    fleet-pg  the company's event database on PostgreSQL
                  The shipped skeleton (config/station.example.yaml) needs gpiod,hid;
                  make install installs those unless EXTRAS= says otherwise.

PYTHON (default python3) is the interpreter the virtual environment is made from.
USAGE
}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --extras) extras="[$2]"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ "$extras" = "[]" ] && extras=""
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)
user=station-edge

if ! getent passwd "$user" >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/station-edge --no-create-home --shell /usr/sbin/nologin "$user"
fi
for group in dialout gpio input video; do
  if getent group "$group" >/dev/null; then usermod -a -G "$group" "$user"; fi
done

# A CJK font: the lane screens (status page) and the PDF daily report are in Chinese; without
# one every character is a box.
if ! fc-list 2>/dev/null | grep -qi "wqy-microhei"; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends -qq fonts-wqy-microhei >/dev/null
  else
    echo "install.sh: install a CJK font (fonts-wqy-microhei) for the lane screens and reports" >&2
  fi
fi

# The lane screens' voice (语音播报): espeak-ng speaks Mandarin on this PC, no cloud service.
if ! command -v espeak-ng >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends -qq espeak-ng >/dev/null
  else
    echo "install.sh: install espeak-ng for the lane screens' voice (or set voice.enabled: false per lane)" >&2
  fi
fi

mkdir -p "$prefix"
"$python" -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --quiet --upgrade pip
"$prefix/venv/bin/pip" install --quiet "$src$extras"
install -m 0644 "$src/README.md" "$prefix/README.md"

# The store's directory, made now so the first ledger import (run as station-edge, README) can
# create the store before the unit first starts; the unit's StateDirectory= keeps it so.
# Group-readable, and the unit's UMask=0027 keeps the store and its -wal/-shm files so: members of
# group station-edge (usermod -aG station-edge NAME) run the read-only commands.
install -d -m 0750 -o "$user" -g "$user" /var/lib/station-edge

install -d -m 0750 -g "$user" /etc/station-edge /etc/station-edge/profiles
if [ ! -e /etc/station-edge/station.yaml ]; then
  install -m 0640 -g "$user" "$src/config/station.example.yaml" /etc/station-edge/station.yaml
  echo "install.sh: wrote /etc/station-edge/station.yaml: edit it, then: $prefix/venv/bin/edge check-config /etc/station-edge/station.yaml"
fi

# The staff web app's HTTPS certificate: self-signed for this machine's addresses, unless one is
# there already (the manager's own, or one made by an earlier install). Staff compare the
# fingerprint printed here with the one their phone shows the first time it connects.
tls=/etc/station-edge/tls
if [ ! -e "$tls/webapp.pem" ]; then
  install -d -m 0750 -g "$user" "$tls"
  names="IP:127.0.0.1,DNS:$(hostname)"
  for ip in $(hostname -I 2>/dev/null); do names="$names,IP:$ip"; done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=station-edge \
    -addext "subjectAltName=$names" -keyout "$tls/webapp.key" -out "$tls/webapp.pem" 2>/dev/null
  # The service user's alone: the group also holds the managers who read the records.
  chown "$user:$user" "$tls/webapp.key" && chmod 0600 "$tls/webapp.key"
fi
echo "install.sh: staff web app certificate $tls/webapp.pem, SHA-256 fingerprint" \
  "$(openssl x509 -in "$tls/webapp.pem" -noout -fingerprint -sha256 | cut -d= -f2)"

install -D -m 0644 "$src/systemd/99-station-edge-serial.rules" /etc/udev/rules.d/99-station-edge-serial.rules
udevadm control --reload-rules 2>/dev/null || true

mkdir -p /etc/systemd/system
sed "s#/opt/station-edge#$prefix#g" "$src/systemd/station-edge.service" > /etc/systemd/system/station-edge.service
chmod 0644 /etc/systemd/system/station-edge.service
# The backup's unit and timer (enabled by the README's step once the config has a backup: section)
# and the reports' (the day's documents after midnight, enabled below).
for unit in station-edge-backup.service station-edge-backup.timer station-edge-reports.service station-edge-reports.timer; do
  sed "s#/opt/station-edge#$prefix#g" "$src/systemd/$unit" > "/etc/systemd/system/$unit" && chmod 0644 "/etc/systemd/system/$unit"
done
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable station-edge.service station-edge-reports.timer
  echo "install.sh: installed; start with: systemctl start station-edge && journalctl -u station-edge -f"
else
  echo "install.sh: installed, but systemd is not running here: enable station-edge.service once it is"
fi
