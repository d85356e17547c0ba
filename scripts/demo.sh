#!/usr/bin/env bash
# Set up if needed, then run the demo: a local broker, simulated cameras, the aggregator and the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/emo7ion demo "$@"
