#!/usr/bin/env bash
# The inspection-line chain for every model, end to end, with the edge side in an environment that has no torch
# and no anomalib:
#
#   bash benchmarks/edge_deployment.sh [CATEGORY] [EPOCHS]     (defaults: weave, each config's own max_epochs)
#
# 1. a fresh virtual environment with only the edge install (`pip install .`: OpenVINO, numpy, OpenCV), and a
#    check that torch and anomalib are not importable there;
# 2. for GANomaly, EGBAD and AnoGAN (Γ = 0): `ganad train --config configs/<model>.yaml` on sample_data/CATEGORY
#    (in the training environment, .venv), then `ganad export` to OpenVINO FP32, FP16 and INT8 (INT8 with its
#    accuracy check; --max_drop 1 so that the report is printed rather than the model refused);
# 3. `ganad infer` from the edge environment on the category's test folder with each IR, and a check that
#    results.jsonl has one valid line per test image and that overlays were written.
# Prints one line per model and precision: images, NG count, images per second (from ganad infer's summary).
# Needs the package index for the edge install (or a local wheel cache). With EPOCHS=2 (the chain, not accuracy)
# it took 9.5 minutes on 2 cores; with the configs' epochs add about 12 minutes of training.
set -euo pipefail
cd "$(dirname "$0")/.."
CATEGORY=${1:-weave}
EPOCHS=${2:-}
TRAIN_PY=.venv/bin/python
OUT=results/edge_deployment/$CATEGORY
EDGE=$OUT/edge-venv
test -x "$TRAIN_PY" || make venv
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== edge-only environment: $EDGE"
python3.11 -m venv "$EDGE"
"$EDGE/bin/pip" install --quiet --upgrade pip
"$EDGE/bin/pip" install --quiet .
for module in torch anomalib lightning; do
    if "$EDGE/bin/python" -c "import $module" 2>/dev/null; then
        echo "FAIL: $module is importable in the edge environment" >&2
        exit 1
    fi
done
echo "torch, anomalib and lightning are not installed there"

TEST_IMAGES=$(find "sample_data/$CATEGORY/test" -name '*.png' | wc -l)
for MODEL in GANomaly EGBAD AnoGAN; do
    lower=$(echo "$MODEL" | tr '[:upper:]' '[:lower:]')
    run=$OUT/$lower
    epochs=()
    if [ -n "$EPOCHS" ]; then
        epochs=(--trainer.max_epochs "$EPOCHS" --trainer.check_val_every_n_epoch "$EPOCHS")
    fi
    echo "== $MODEL: train on sample_data/$CATEGORY (log: $run/train.log)"
    mkdir -p "$run"
    "$TRAIN_PY" -m ganad_plugin.cli train --config "configs/$lower.yaml" --data.root sample_data \
        --data.category "$CATEGORY" --default_root_dir "$run/train" --trainer.enable_progress_bar false \
        "${epochs[@]}" > "$run/train.log" 2>&1
    ckpt=$(find "$run/train" -name model.ckpt | head -n 1)
    for precision in FP32 FP16 INT8; do
        extra=()
        case $precision in
            FP16) extra=(--compression_type FP16) ;;
            INT8) extra=(--compression_type INT8_PTQ --data anomalib.data.MVTecAD --data.root sample_data
                         --data.category "$CATEGORY" --data.num_workers 0 --max_drop 1.0) ;;
        esac
        "$TRAIN_PY" -m ganad_plugin.cli export --model "ganad_plugin.models.$MODEL" --export_type openvino \
            --ckpt_path "$ckpt" --default_root_dir "$run/$precision" "${extra[@]}" > "$run/export_$precision.log" 2>&1
        xml=$(find "$run/$precision" -name model.xml | head -n 1)
        if [ "$precision" = INT8 ]; then
            grep "INT8 vs FP32" "$run/export_$precision.log" | tail -n 1
        fi
        "$EDGE/bin/ganad" infer --model "$xml" --input "sample_data/$CATEGORY/test" --output "$run/infer_$precision" \
            > "$run/infer_$precision.log" 2>&1
        "$EDGE/bin/python" - "$run/infer_$precision" "$TEST_IMAGES" "$MODEL $precision" <<'EOF'
import json, sys
from pathlib import Path
out, expected, name = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
fields = {"path", "score", "label", "threshold", "regions"}
bad = [line.get("path") for line in lines if not fields <= set(line)]
overlays = list((out / "overlays").rglob("*.png"))
if len(lines) != expected or bad or not overlays:
    sys.exit(f"FAIL {name}: {len(lines)} results for {expected} images, {len(bad)} without {sorted(fields)}, "
             f"{len(overlays)} overlays")
print(f"{name:16s} ok: {len(lines)} images, {sum(line['label'] for line in lines)} NG, {len(overlays)} overlays")
EOF
        tail -n 1 "$run/infer_$precision.log"
    done
done
echo "== all models: trained, exported FP32/FP16/INT8 and inspected from the edge-only environment"
