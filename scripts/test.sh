#!/usr/bin/env bash
# Set up if needed, then run the whole test suite (real Keras training, real TFLite, real Mosquitto).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
