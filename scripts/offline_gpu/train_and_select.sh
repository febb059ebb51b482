#!/usr/bin/env bash
# One command for a GPU session (docs/training.md, "The full schedule"): the pretrained-encoder
# driller keypoint network trained and chosen by pose accuracy, within DEADLINE_S seconds.
#  1. renders (scripts/train_driller_model.sh with RUNS=none; skipped where already there);
#  2. CONFIG (config/train_driller_mobilenet.yaml): one epoch that times this machine, then as many
#     epochs as fit before the selection's reserve (at most EPOCHS; the last PLAIN_MSE_EPOCHS
#     with plain squared error, plain_mse_last_epochs), each epoch's checkpoint kept;
#  3. benchmarks/select_epoch.py: the last SELECT_LAST epochs on the held-out renders (ground-
#     truth boxes and detector), then max_reprojection_error_px x confidence_power, ONNX export,
#     the chosen pipeline scored on renders (and on LM-O where its photos are installed);
#  4. into $OUT: train_and_select.log, selection.json, results.tgz.part-* (15 MB pieces of the
#     run folder: selection/ with keypoints.onnx, keypoints.pt and pipeline.yaml, last.pt with
#     its resume state, metrics.json, curves, logs; `cat results.tgz.part-* | tar xz -C DIR`).
# Every step resumes: the same command again continues (the planned epochs stay in the run).
# Exit 0: all done; 124: the deadline came first (run again); others: a step failed.
#
#   DEADLINE_S=540 scripts/offline_gpu/train_and_select.sh      # on the GPU machine, as root,
#                                                              # with .offline_bundle/ (BUNDLE)
# Settings (environment, default): PYTHON (python3), BUNDLE (.offline_bundle), OUT (/tmp/out),
# CONFIG (config/train_driller_mobilenet.yaml; config/train_driller_mobilenet_lite.yaml: the
# 64-feature network), RUN (runs/driller_mobilenet_gpu), DEADLINE_S (540: from start to packed
# results), EPOCHS (20), PLAIN_MSE_EPOCHS (4), PLAN_EPOCHS (1: fit the epochs to the deadline;
# 0: EPOCHS as given), SELECT_LAST (6), SELECT_RESERVE_S (170: kept for step 3), TRAIN_WORKERS
# (cores - 1), BATCH_SIZE (the config's), EVAL_DEVICE (cuda where there is one, else cpu),
# EVAL_FRAMES (0: all), GRID_REPROJECTION ("12 20 30"), GRID_POWER ("2 4 8"), and for the
# renders TRAIN_V2 / TRAIN_V3 / VAL_V2 (8000 / 6000 / 400) and RENDER_WORKERS (cores).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHON="${PYTHON:-python3}"
PY="$PYTHON" OUT="${OUT:-/tmp/out}" RUN="${RUN:-runs/driller_mobilenet_gpu}"
DEADLINE_S="${DEADLINE_S:-540}" EPOCHS="${EPOCHS:-20}" PLAIN="${PLAIN_MSE_EPOCHS:-4}"
RESERVE="${SELECT_RESERVE_S:-170}" PACK_S=30
mkdir -p "$OUT" "$RUN/logs"
left() { echo $((DEADLINE_S - SECONDS)); }
until_reserve() {  # command...: run it until the selection's reserve begins (124: stopped)
  local seconds=$(($(left) - RESERVE - PACK_S))
  ((seconds > 0)) || return 124
  timeout "$seconds" "$@"
}
say() { echo "[train_and_select ${SECONDS}s] $*"; }
source scripts/offline_gpu/offline_env.sh

main() {  # the four steps; returns the exit status
offline_setup || return $?
status=0

# 1. Renders (resumable: existing images are kept).
until_reserve env RUNS=none scripts/train_driller_model.sh > "$RUN/logs/renders.log" 2>&1
status=$?
[[ $status != 0 ]] && say "renders not finished: exit $status (log $RUN/logs/renders.log)"
tr '\r' '\n' < "$RUN/logs/renders.log" | grep -E 'rendered|rror' | tail -n 5

# 2. Training: a timed first epoch, then the planned epochs.
workers="${TRAIN_WORKERS:-$(($(nproc) > 1 ? $(nproc) - 1 : 0))}"
CONFIG="${CONFIG:-config/train_driller_mobilenet.yaml}"
train=("$PY" -m pose_kp_ros.tools.cli train --config "$CONFIG" --resume
       --set "output_dir=../$RUN" --set "plain_mse_last_epochs=$PLAIN"
       --set "keep_epoch_checkpoints=$EPOCHS" --set "workers=$workers")
[[ -n "${BATCH_SIZE:-}" ]] && train+=(--set "batch_size=$BATCH_SIZE")
train_until_reserve() { until_reserve "${train[@]}" "$@" >> "$RUN/logs/train.log" 2>&1; }
epochs_done() {
  "$PY" -c "import json, sys; print(len(json.load(open(sys.argv[1]))))" "$RUN/metrics.json" \
    2>/dev/null || echo 0
}
plan="$RUN/planned_epochs"
if [[ $status == 0 && ! -f $plan ]]; then
  if [[ "${PLAN_EPOCHS:-1}" == 1 ]]; then
    # Epoch 1 alone at the constant lr (a long cosine, which decays batch by batch, keeps
    # within 1% of lr over its first epoch; no warm-up; foreground-weighted), so it is the
    # first epoch of whatever plan follows.
    train_until_reserve --epochs 1 --set plain_mse_last_epochs=0 --set lr_schedule=constant
    rc=$?
    if [[ $rc == 0 ]]; then
      "$PY" - "$RUN/metrics.json" "$(($(left) - RESERVE - PACK_S - 20))" "$EPOCHS" "$PLAIN" \
        > "$plan" <<'PY'
"""Print how many epochs fit: the first one's seconds x 1.1 each in the time left."""
import json
import sys

seconds = json.load(open(sys.argv[1]))[0]['seconds']
fit = 1 + int(int(sys.argv[2]) / (1.1 * seconds))
most, plain = int(sys.argv[3]), int(sys.argv[4])
print(max(min(fit, most), min(most, plain + 2)))
PY
    else
      status=$rc
    fi
  else
    echo "$EPOCHS" > "$plan"
  fi
fi
if [[ $status == 0 && -f $plan ]]; then
  planned=$(cat "$plan")
  say "training: $planned epochs planned ($PLAIN with plain squared error), $(epochs_done) done"
  train_until_reserve --epochs "$planned"
  rc=$?
  [[ $rc != 0 ]] && status=$rc
  say "training: $(epochs_done) of $planned epochs (exit $rc; log $RUN/logs/train.log)"
fi
tr '\r' '\n' < "$RUN/logs/train.log" 2>/dev/null | grep -E '^epoch [0-9]+:|rror' | tail -n 25

# 3. Selection on the renders (its evaluations are kept: a rerun continues it).
eval_device="${EVAL_DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() \
else "cpu")')}"
if compgen -G "$RUN/epoch_*.pt" > /dev/null && (($(left) > PACK_S)); then
  say "selection: last ${SELECT_LAST:-6} epochs, $(nproc) at a time, keypoint net on $eval_device"
  # shellcheck disable=SC2086  # the grids are lists of numbers
  OMP_NUM_THREADS=1 OPENCV_FOR_THREADS_NUM=1 \
  timeout "$(($(left) - PACK_S))" "$PY" benchmarks/select_epoch.py --run "$RUN" \
    --last "${SELECT_LAST:-6}" --jobs "$(nproc)" --device "$eval_device" \
    --frames "${EVAL_FRAMES:-0}" --max-reprojection ${GRID_REPROJECTION:-12 20 30} \
    --confidence-power ${GRID_POWER:-2 4 8} > "$RUN/logs/select.log" 2>&1
  rc=$?
  [[ $rc != 0 && $status == 0 ]] && status=$rc
  say "selection exit $rc"; tail -n 30 "$RUN/logs/select.log"
fi

# 4. Results: the run without its per-epoch and best-PCK checkpoints, in 15 MB pieces.
[[ -f "$RUN/selection/selection.json" ]] && cp "$RUN/selection/selection.json" "$OUT/"
rm -f "$OUT"/results.tgz.part-*
tar czf - -C "$RUN" --exclude='epoch_*.pt' --exclude=best.pt --exclude='selection/evals/*.yaml' \
  . | split -b 15M - "$OUT/results.tgz.part-"
say "exit $status ($([[ $status == 124 ]] && echo 'deadline: run again to continue' || echo done))"
ls -l "$OUT"
return "$status"
}

main 2>&1 | tee -a "$OUT/train_and_select.log"
exit "${PIPESTATUS[0]}"
