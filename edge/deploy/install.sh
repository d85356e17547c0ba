#!/usr/bin/env bash
# Installs the Emo7ion edge agent on Raspberry Pi OS Bookworm (Python 3.11, Picamera2 from apt).
# Usage: sudo edge/deploy/install.sh [path-to-emo7ion-checkout-or-wheel]
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }
SOURCE=${1:-$(cd "$(dirname "$0")/../.." && pwd)}

apt-get update -qq
# Picamera2 and libcamera come from the OS; the venv sees them through --system-site-packages.
apt-get install -y -qq python3-venv python3-picamera2 python3-libcamera

id emo7ion >/dev/null 2>&1 || useradd --system --home /var/lib/emo7ion --shell /usr/sbin/nologin emo7ion
usermod -aG video emo7ion
install -d -o emo7ion -g emo7ion -m 0750 /var/lib/emo7ion
install -d -m 0755 /etc/emo7ion /opt/emo7ion

python3 -m venv --system-site-packages /opt/emo7ion/venv
/opt/emo7ion/venv/bin/pip install -q --upgrade pip
# The edge extra only: LiteRT, OpenCV (headless), paho-mqtt, onnxruntime. No TensorFlow on the device.
# The detector weights ship inside the package, so this one install is complete.
/opt/emo7ion/venv/bin/pip install -q "${SOURCE}[edge]"

[ -f /etc/emo7ion/edge.toml ] || install -m 0640 -g emo7ion "$(dirname "$0")/edge.toml.example" /etc/emo7ion/edge.toml
[ -f /etc/emo7ion/edge.env ] || { install -m 0600 /dev/null /etc/emo7ion/edge.env; \
  echo "EMO7ION_EDGE__BROKER__PASSWORD=" > /etc/emo7ion/edge.env; }
install -m 0644 "$(dirname "$0")/emo7ion-edge.service" /etc/systemd/system/emo7ion-edge.service
systemctl daemon-reload

cat <<TXT
Installed. Next:
  1. edit /etc/emo7ion/edge.toml (venue, camera, broker) and put the camera's password in /etc/emo7ion/edge.env
  2. sudo -u emo7ion /opt/emo7ion/venv/bin/emo7ion edge check --config /etc/emo7ion/edge.toml
  3. sudo systemctl enable --now emo7ion-edge && journalctl -u emo7ion-edge -f
TXT
