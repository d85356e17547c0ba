#!/usr/bin/env bash
# Turns a finished training run into the artifacts shipped in models/ (models/MODEL_CARD.md cites this):
# the Keras model, its val evaluation and confusion heatmap, the int8 and float16 TFLite files and the
# conversion report, the int8 model's val score with flip averaging, the recipe ablation, and the curves.
# Usage: scripts/release_model.sh RUN_DIR DATA VERSION   (e.g. emo7ion-edge-1.3: a new release names itself)
# With TFLITE_RUNTIME_EMO7ION set to the emo7ion command of a TensorFlow-free venv with tflite-runtime
# (python3 -m venv V && V/bin/pip install 'numpy<2' tflite-runtime==2.14.0 -e '.[edge]'), the int8 model is also
# evaluated under that interpreter. The card's tables are then rewritten from
# the JSON files (scripts/card_figures.py); its prose stays yours to update.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: scripts/release_model.sh RUN_DIR DATA VERSION}
DATA=${2:-../shared/data/fer2013/fer2013.tar.gz}
VERSION=${3:?usage: scripts/release_model.sh RUN_DIR DATA VERSION (the release name, e.g. emo7ion-edge-1.3)}
ABLATION=${ABLATION:-runs/ablation/ablation.json}  # scripts/ablate_recipe.py's table, when it was run
EMO7ION=.venv/bin/emo7ion

cp "$RUN/model.keras" models/emo7ion-edge.keras
cp "$RUN/curves.png" models/training-curves.png
$EMO7ION --log-level WARNING evaluate models/emo7ion-edge.keras "$DATA" --split val --batch-size 256 \
    --plot models/confusion-val.png --json | tail -n 1 > models/eval-keras-val.json
rm -rf runs/release-convert
$EMO7ION --log-level WARNING convert models/emo7ion-edge.keras --data "$DATA" --out runs/release-convert \
    --model-version "$VERSION"
cp runs/release-convert/emo7ion-edge-int8.tflite runs/release-convert/emo7ion-edge-float16.tflite models/
cp runs/release-convert/report.md models/conversion-report.md
cp runs/release-convert/report.json models/conversion-report.json
$EMO7ION --log-level WARNING evaluate models/emo7ion-edge-int8.tflite "$DATA" --split val --json \
    | tail -n 1 > models/eval-int8-val.json
# As the agent runs it by default: each face averaged with its mirror image (one batch of 2N).
$EMO7ION --log-level WARNING evaluate models/emo7ion-edge-int8.tflite "$DATA" --split val --flip --json \
    | tail -n 1 > models/eval-int8-flip-val.json
if [[ -f "$ABLATION" ]]; then cp "$ABLATION" models/ablation-val.json; fi
rm -f models/eval-int8-val-tflite-runtime.json
if [[ -n "${TFLITE_RUNTIME_EMO7ION:-}" ]]; then
    "$TFLITE_RUNTIME_EMO7ION" --log-level WARNING evaluate models/emo7ion-edge-int8.tflite "$DATA" --split val \
        --interpreter tflite_runtime --json | tail -n 1 > models/eval-int8-val-tflite-runtime.json
fi
.venv/bin/python scripts/card_figures.py models
echo "released $VERSION from $RUN into models/"
