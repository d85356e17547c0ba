#!/usr/bin/env bash
# Train the shipped classifier on a lent GPU machine that has JAX (and PyTorch) but no TensorFlow and
# reaches no package registry, in one call sized to a 15-minute device budget (machine start included).
#
#   scripts/train_on_gpu.sh prepare [DATA]   # here: wheels for keras, namex, optree + the FER2013 archive
#                                            #   into .gpu/ (in .gitignore; the device tool carries it)
#   scripts/train_on_gpu.sh run [EPOCHS] [MINUTES]
#                                            # there: Keras 3 on JAX trains `edge` for EPOCHS (default 80),
#                                            #   stopped after MINUTES (default 10) of training at the latest;
#                                            #   best.keras, history and the log land in $OUT
#
# With the device tool: run(command="bash scripts/train_on_gpu.sh run 80 10", carry=[".gpu"], timeout_s=600).
# Then, here: scripts/release_model.sh on the returned run folder (the converter needs TensorFlow).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
GPU_DIR=.gpu

prepare() {
  local data=${1:-../shared/data/fer2013/fer2013.tar.gz}
  [ -f "$data" ] || { echo "train_on_gpu: dataset $data not found" >&2; exit 2; }
  rm -rf "$GPU_DIR"; mkdir -p "$GPU_DIR/wheels"
  local python=${PYTHON:-.venv/bin/python}
  # The device runs Python 3.12 on x86-64; take the versions this checkout trains with.
  local keras optree namex
  keras=$("$python" -c 'import importlib.metadata as m; print(m.version("keras"))')
  optree=$("$python" -c 'import importlib.metadata as m; print(m.version("optree"))')
  namex=$("$python" -c 'import importlib.metadata as m; print(m.version("namex"))')
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$GPU_DIR/wheels" "keras==$keras" "optree==$optree" "namex==$namex"
  cp "$data" "$GPU_DIR/fer2013.tar.gz"
  du -sh "$GPU_DIR"
}

run() {
  local epochs=${1:-80} minutes=${2:-10}
  local out=${OUT:-runs/gpu-out}
  local data=${GPU_DATA:-$GPU_DIR/fer2013.tar.gz}
  [ -d "$GPU_DIR/wheels" ] || { echo "train_on_gpu: $GPU_DIR/wheels missing; run 'prepare' here first" >&2; exit 2; }
  mkdir -p "$out"
  local site=/tmp/emo7ion-site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$GPU_DIR"/wheels/*.whl
  # The project itself, without its dependencies (numpy, OpenCV, matplotlib, tqdm are on that machine).
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$site" .
  export PYTHONPATH="$site" KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
  python3 -c 'import jax, keras; print("keras", keras.__version__, "on", keras.backend.backend(), jax.devices())'
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
  # A hard stop at MINUTES keeps the call inside the budget; best.keras is saved every time val improves.
  set +e
  timeout --signal=INT "$((minutes * 60))" python3 -m emo7ion train --data "$data" \
    --model edge --epochs "$epochs" --patience "$epochs" --out "$out/run" 2>&1 | tee "$out/train.log"
  local status=${PIPESTATUS[0]}
  set -e
  for file in best.keras history.json summary.json state.json curves.png; do
    [ -f "$out/run/$file" ] && cp "$out/run/$file" "$out/$file"
  done
  rm -rf "$out/run"  # checkpoints with optimizer state are large; best.keras is what comes back
  echo "train_on_gpu: training exited with $status; files in $out:"; ls -la "$out"
  [ -f "$out/best.keras" ]
}

case "$mode" in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
