#!/usr/bin/env bash
# Train the shipped classifiers on a lent GPU machine that has JAX (and PyTorch) but no TensorFlow and
# reaches no package registry, in one call sized to a 15-minute device budget (machine start included).
#
#   scripts/train_on_gpu.sh prepare [DATA]   # here: wheels for keras, namex, optree + the FER2013 archive
#                                            #   into .gpu/ (in .gitignore; the device tool carries it)
#   scripts/train_on_gpu.sh run [EPOCHS] [MINUTES] [MODEL:SEED ...]
#                                            # there: Keras 3 on JAX trains each MODEL:SEED (default edge:7)
#                                            #   side by side on the one GPU, for at most EPOCHS (default 80);
#                                            #   `train --time-budget MINUTES` (default 8.2) ends each cosine in
#                                            #   time. Each run comes back as $OUT/MODEL-sSEED.tar.gz (best.keras,
#                                            #   history, summary, curves, log)
#
# With the device tool: run(command="bash scripts/train_on_gpu.sh run 80 8.2 edge:7 edge:8 edge-l:7",
# carry=[".gpu"], timeout_s=600). Then, here: `tar xzf` each into a run folder, rename best.keras to
# model.keras and run scripts/release_model.sh on it (the converter needs TensorFlow).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
GPU_DIR=${GPU_DIR:-.gpu}

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
  local epochs=${1:-80} minutes=${2:-8.2}
  shift $(($# < 2 ? $# : 2))
  local specs=("$@")
  [ ${#specs[@]} -gt 0 ] || specs=(edge:7)
  local out=${OUT:-runs/gpu-out} work=${GPU_WORK:-/tmp/emo7ion-runs}
  local data=${GPU_DATA:-$GPU_DIR/fer2013.tar.gz}
  [ -d "$GPU_DIR/wheels" ] || { echo "train_on_gpu: $GPU_DIR/wheels missing; run 'prepare' here first" >&2; exit 2; }
  mkdir -p "$out" "$work"
  data=$(realpath "$data") out=$(realpath "$out")
  local site=/tmp/emo7ion-site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$GPU_DIR"/wheels/*.whl
  # The project itself, without its dependencies (numpy, OpenCV, matplotlib, tqdm are on that machine).
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$site" .
  export PYTHONPATH="$site" XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
  # One call is all the budget allows: if Keras cannot train on JAX's GPU there, use PyTorch's instead.
  local backend
  for backend in ${GPU_BACKENDS:-jax torch}; do
    if KERAS_BACKEND=$backend python3 scripts/gpu_smoke.py; then break; fi
    echo "train_on_gpu: Keras cannot train on $backend's GPU here" >&2
    backend=
  done
  [ -n "$backend" ] || { echo "train_on_gpu: no backend trains on a GPU here" >&2; exit 3; }
  export KERAS_BACKEND=$backend
  # Side by side: one small net leaves most of the GPU idle. --time-budget ends each cosine in time;
  # `timeout` is only the backstop (best.keras is saved whenever val improves).
  local spec model seed names=()
  for spec in "${specs[@]}"; do
    model=${spec%%:*}; seed=${spec##*:}
    [ "$seed" != "$spec" ] || seed=7
    names+=("$model-s$seed")
    # From $work: in the checkout's root, `-m emo7ion` would find the source tree, not the installed package.
    (cd "$work" && exec timeout --signal=INT "$(awk "BEGIN { print int($minutes * 60 + 20) }")" python3 -m emo7ion \
      train --data "$data" --model "$model" --seed "$seed" --epochs "$epochs" --patience "$epochs" \
      --time-budget "$minutes" --out "$work/$model-s$seed" ${GPU_SUBSET:+--subset "$GPU_SUBSET"} \
      >"$work/$model-s$seed.log" 2>&1) &
  done
  local failed=0 name
  wait || true
  for name in "${names[@]}"; do
    echo "== $name: last lines of its log"; tail -n 4 "$work/$name.log"
    if [ -f "$work/$name/best.keras" ]; then
      cp "$work/$name.log" "$work/$name/train.log"
      local files=(best.keras train.log)
      for file in history.json summary.json state.json curves.png; do
        [ -f "$work/$name/$file" ] && files+=("$file")
      done
      tar czf "$out/$name.tar.gz" -C "$work/$name" "${files[@]}"
    else
      echo "train_on_gpu: $name left no best.keras" >&2; failed=1
      cp "$work/$name.log" "$out/$name.log"
    fi
  done
  echo "train_on_gpu: files in $out:"; ls -la "$out"
  return $failed
}

case "$mode" in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
