#!/bin/sh
# System packages: libzbar0 for pyzbar (camera decoding); Debian's chromium and its chromedriver
# for the status page's browser test; mosquitto (broker and mosquitto_passwd) for the fleet tests,
# which run their own broker process on a free port (the system service is not used); postgresql
# for the fleet collector's test, which runs a throwaway cluster of its own; the openssl command,
# which makes the staff web app's certificate; fonts-wqy-microhei, the CJK font of the lane screens
# and the PDF daily report; LibreOffice Calc (headless) and poppler-utils, with which the tests
# render the ledger and the report to pages; espeak-ng, the offline Mandarin voice of the lane
# screens (语音播报, `espeak-ng -v cmn`); openssh-server, whose sshd the backup tests run on a
# loopback port as the off-box SFTP target.
# Installs them where we can (root, or passwordless sudo); otherwise prints the command to run.
set -eu
missing=""
if ! ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0'; then
  missing="$missing libzbar0"
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  missing="$missing chromium chromium-driver"
fi
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ] || ! command -v mosquitto_passwd >/dev/null 2>&1; then
  missing="$missing mosquitto"
fi
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  missing="$missing postgresql"
fi
if [ ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then
  missing="$missing fonts-wqy-microhei"
fi
if ! command -v soffice >/dev/null 2>&1; then
  missing="$missing libreoffice-calc-nogui"
fi
if ! command -v pdftoppm >/dev/null 2>&1 || ! command -v pdftotext >/dev/null 2>&1; then
  missing="$missing poppler-utils"
fi
if ! command -v openssl >/dev/null 2>&1; then
  missing="$missing openssl"
fi
if ! command -v espeak-ng >/dev/null 2>&1; then
  missing="$missing espeak-ng"
fi
if [ ! -x /usr/sbin/sshd ]; then
  missing="$missing openssh-server"
fi
[ -z "$missing" ] && exit 0

command="apt-get install -y --no-install-recommends$missing"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: please install:$missing (no apt-get here)" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "system-deps: installing$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive $command -qq >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "system-deps: installing$missing with sudo"
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive $command -qq >/dev/null
else
  echo "system-deps: missing$missing; run:  sudo apt-get update && sudo $command" >&2
  exit 1
fi
