#!/usr/bin/env bash
# The default driller model's whole recipe: renders, the keypoint network and the detector, and
# (ABLATION=1) the ablation runs of docs/training.md, side by side on the same data and epochs.
# Every step resumes where it stopped (run it again); CUDA is used when present, else the CPU.
#
#   scripts/train_driller_model.sh                 # renders + keypoints + detector
#   ABLATION=1 scripts/train_driller_model.sh      # + scratch / frozen / partly frozen / hourglass
#   RUNS="keypoints ablation_partly_frozen" scripts/train_driller_model.sh   # just these runs
#   RUNS=none scripts/train_driller_model.sh       # the renders alone
#
# Settings (environment): RUNS (names above), PYTHON (default python3),
# RENDER_WORKERS (default: all cores),
# TRAIN_V2 / TRAIN_V3 / VAL_V2 image counts (8000 / 6000 / 400), EPOCHS (each config's),
# TRAIN_WORKERS (data-loading processes per training; each config's),
# DEADLINE_S (stop each training after this many seconds, keeping its last saved checkpoint;
# 0: none). Outputs: data/, runs/ (logs in runs/logs/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WORKERS="${RENDER_WORKERS:-$(nproc)}"
EPOCH_ARGS=()
[[ -n "${EPOCHS:-}" ]] && EPOCH_ARGS=(--epochs "$EPOCHS")
[[ -n "${TRAIN_WORKERS:-}" ]] && EPOCH_ARGS+=(--set "workers=$TRAIN_WORKERS")
POSE_KP=("$PY" -m pose_kp_ros.tools.cli)
pose_kp() { "${POSE_KP[@]}" "$@"; }

render() {  # settings, output folder, count, seed
  pose_kp render --object objects/driller.yaml --settings "$1" --out "$2" --count "$3" \
    --workers "$WORKERS" --seed "$4"
}
render config/render_driller.yaml data/driller_train_v2 "${TRAIN_V2:-8000}" 10
render config/render_driller_v3.yaml data/driller_train_v3 "${TRAIN_V3:-6000}" 20
render config/render_driller.yaml data/driller_val_v2 "${VAL_V2:-400}" 11

KEYPOINTS=config/train_driller_mobilenet.yaml
runs=()
LIMIT=()  # DEADLINE_S counts from this script's start; the renders used some of it
if [[ "${DEADLINE_S:-0}" -gt 0 ]]; then
  LIMIT=(timeout "$((DEADLINE_S > SECONDS + 60 ? DEADLINE_S - SECONDS : 60))")
fi
start() {  # log name, pose-kp arguments...
  local name="$1"; shift
  mkdir -p runs/logs
  "${LIMIT[@]}" "${POSE_KP[@]}" "$@" >"runs/logs/$name.log" 2>&1 &
  runs+=($!)
  echo "[recipe] $name: pid $! (log runs/logs/$name.log)"
}
runs_to_start="${RUNS:-keypoints detector}"
[[ "${ABLATION:-0}" == 1 ]] && runs_to_start+=" ablation_scratch ablation_frozen \
ablation_partly_frozen ablation_hourglass"
scratch=(--set imagenet=false --set encoder_warmup_epochs=0 --set encoder_lr_scale=1.0)
ablation() {  # run name, --set overrides...
  local name="$1"; shift
  start "$name" train --config "$KEYPOINTS" --resume "${EPOCH_ARGS[@]}" \
    --set "output_dir=../runs/$name" "$@"
}
for run in $runs_to_start; do
  case "$run" in
    none) ;;
    keypoints) start keypoints train --config "$KEYPOINTS" --resume "${EPOCH_ARGS[@]}" ;;
    detector) start detector train-detector --config config/train_detector_driller_mobilenet.yaml \
      --resume "${EPOCH_ARGS[@]}" ;;
    ablation_scratch) ablation "$run" "${scratch[@]}" ;;
    ablation_frozen) ablation "$run" --set frozen_encoder_blocks=14 --set encoder_bn=frozen ;;
    ablation_partly_frozen) ablation "$run" --set frozen_encoder_blocks=7 --set encoder_bn=frozen ;;
    ablation_hourglass) ablation "$run" --set preset=cpu "${scratch[@]}" ;;
    *) echo "[recipe] unknown run '$run'" >&2; exit 2 ;;
  esac
done

status=0
for pid in "${runs[@]}"; do wait "$pid" || status=$?; done
[[ "$status" == 124 ]] && echo "[recipe] deadline reached: run again to resume"
[[ ${#runs[@]} -gt 0 ]] && tail -n 3 runs/logs/*.log
exit "$status"
