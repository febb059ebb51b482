#!/usr/bin/env bash
# One command for a GPU session (docs/training.md, "Training data of the eight LM-O objects"): the
# renders of the eight LM-O objects, one keypoint network for all of them
# (config/train_lmo_all.yaml) and their detector (config/train_detector_lmo_all.yaml) side by
# side, within DEADLINE_S seconds; then both exported to ONNX and packed.
#  1. renders: data/lmo_all_train (TRAIN_COUNT, seed 30) and data/lmo_all_val (VAL_COUNT, seed
#     31), config/render_lmo_all.yaml, every core (resumable: existing images are kept);
#  2. the two trainings together (--resume; each saves last.pt every 5 minutes and per epoch), stopped
#     PACK_S before the deadline;
#  3. into $OUT: train_lmo_all.log, results.tgz.part-* (15 MB pieces: keypoints/ and detector/,
#     each with best.pt without optimizer state, its ONNX export, metrics.json and curves, and
#     last.pt to resume elsewhere; `cat results.tgz.part-* | tar xz -C DIR`).
# The same command again continues (exit 124: the deadline came first; 0: both runs finished).
#
#   DEADLINE_S=540 scripts/offline_gpu/train_lmo_all.sh     # on the GPU machine, as root, with
#                                                           # .offline_bundle/ (BUNDLE)
# Settings (environment, default): PYTHON (python3), BUNDLE (.offline_bundle), OUT (/tmp/out),
# DEADLINE_S (540), PACK_S (60), TRAIN_COUNT (12000), VAL_COUNT (400), RENDER_WORKERS (cores),
# EPOCHS (8) and DETECTOR_EPOCHS (8), KEYPOINT_WORKERS (two thirds of the cores) and
# DETECTOR_WORKERS (the rest), BATCH_SIZE (the config's), LAST_IN_RESULTS (1: pack last.pt too).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHON="${PYTHON:-python3}"
PY="$PYTHON" OUT="${OUT:-/tmp/out}" DEADLINE_S="${DEADLINE_S:-540}" PACK_S="${PACK_S:-60}"
KEYPOINTS=runs/lmo_all_keypoints DETECTOR=runs/detector_lmo_all
mkdir -p "$OUT" runs/lmo_all_logs
left() { echo $((DEADLINE_S - SECONDS - PACK_S)); }
say() { echo "[train_lmo_all ${SECONDS}s] $*"; }
source scripts/offline_gpu/offline_env.sh

epochs_done() {  # run folder
  "$PY" -c "import json, sys; print(len(json.load(open(sys.argv[1]))))" "$1/metrics.json" \
    2>/dev/null || echo 0
}

main() {
offline_setup || return $?
status=0
cores=$(nproc)
objects=()
for name in ape can cat driller duck eggbox glue holepuncher; do
  objects+=(--object "objects/$name.yaml")
done

# 1. Renders (validation first: small, and both trainings need it).
for job in "data/lmo_all_val ${VAL_COUNT:-400} 31" "data/lmo_all_train ${TRAIN_COUNT:-12000} 30"; do
  read -r folder count seed <<< "$job"
  (($(left) > 0)) || { status=124; break; }
  timeout "$(left)" "$PY" -m pose_kp_ros.tools.cli render --settings config/render_lmo_all.yaml \
    --out "$folder" --count "$count" --seed "$seed" --workers "${RENDER_WORKERS:-$cores}" \
    "${objects[@]}" > "runs/lmo_all_logs/render_$(basename "$folder").log" 2>&1
  rc=$?
  say "renders $folder: exit $rc, $(find "$folder/images" -type f 2>/dev/null | wc -l) images"
  [[ $rc != 0 ]] && { status=$rc; break; }
done

# 2. Both trainings side by side until the deadline.
if [[ $status == 0 ]]; then
  keypoint_workers="${KEYPOINT_WORKERS:-$((cores * 2 / 3))}"
  detector_workers="${DETECTOR_WORKERS:-$((cores - keypoint_workers))}"
  batch=(); [[ -n "${BATCH_SIZE:-}" ]] && batch=(--set "batch_size=$BATCH_SIZE")
  timeout "$(left)" "$PY" -m pose_kp_ros.tools.cli train --config config/train_lmo_all.yaml \
    --resume --epochs "${EPOCHS:-8}" --set "workers=$keypoint_workers" "${batch[@]}" \
    >> runs/lmo_all_logs/keypoints.log 2>&1 &
  keypoints_pid=$!
  timeout "$(left)" "$PY" -m pose_kp_ros.tools.cli train-detector \
    --config config/train_detector_lmo_all.yaml --resume --epochs "${DETECTOR_EPOCHS:-8}" \
    --set "workers=$detector_workers" >> runs/lmo_all_logs/detector.log 2>&1 &
  detector_pid=$!
  wait "$keypoints_pid"; rc_keypoints=$?
  wait "$detector_pid"; rc_detector=$?
  say "keypoints: exit $rc_keypoints, $(epochs_done $KEYPOINTS) epochs; detector: exit" \
    "$rc_detector, $(epochs_done $DETECTOR) epochs"
  for rc in $rc_keypoints $rc_detector; do
    [[ $rc != 0 && $status == 0 ]] && status=$rc
  done
  for log in keypoints detector; do
    tr '\r' '\n' < "runs/lmo_all_logs/$log.log" | grep -E '^epoch [0-9]+:|rror' | tail -n 12
  done
fi

# 3. Exports and results.
rm -rf /tmp/lmo_all_pack "$OUT"/results.tgz.part-*
for run in "$KEYPOINTS keypoints" "$DETECTOR detector"; do
  read -r folder name <<< "$run"
  [[ -f "$folder/best.pt" ]] || continue
  mkdir -p "/tmp/lmo_all_pack/$name"
  "$PY" - "$folder/best.pt" "/tmp/lmo_all_pack/$name/best.pt" <<'PY'
"""Copy a best.pt without its optimizer state."""
import sys

import torch

data = torch.load(sys.argv[1], map_location='cpu', weights_only=True)
data['training'] = None
torch.save(data, sys.argv[2])
PY
  "$PY" -m pose_kp_ros.tools.cli export "/tmp/lmo_all_pack/$name/best.pt" \
    --out "/tmp/lmo_all_pack/$name/$name.onnx" > "/tmp/lmo_all_pack/$name/export.log" 2>&1 \
    || say "export of $name failed (see $name/export.log)"
  cp "$folder"/metrics.json "$folder"/*.png "/tmp/lmo_all_pack/$name/" 2>/dev/null
  [[ "${LAST_IN_RESULTS:-1}" == 1 ]] && cp "$folder/last.pt" "/tmp/lmo_all_pack/$name/"
done
cp -r runs/lmo_all_logs /tmp/lmo_all_pack/logs
tar czf - -C /tmp/lmo_all_pack . | split -b 15M - "$OUT/results.tgz.part-"
say "exit $status ($([[ $status == 124 ]] && echo 'deadline: run again to continue' || echo done))"
ls -l "$OUT"
return "$status"
}

main 2>&1 | tee -a "$OUT/train_lmo_all.log"
exit "${PIPESTATUS[0]}"
