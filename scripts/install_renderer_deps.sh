#!/usr/bin/env bash
# Install what `pose-kp render` and `pose-kp new-object` need (idempotent: checks before installing).
#
#   scripts/install_renderer_deps.sh            # uses python3's pip
#   PYTHON=/path/to/venv/bin/python scripts/install_renderer_deps.sh
#
# System packages (Debian 12): libosmesa6 (CPU OpenGL for pyrender), opencv-doc (background photos).
# Python packages (pinned): pyrender-maintained, PyOpenGL, trimesh, scikit-image (background photos).
# Set SKIP_APT=1 to skip the system packages (e.g. without root; the renderer then needs them present).
set -euo pipefail

PY="${PYTHON:-python3}"
APT_PACKAGES=(libosmesa6 opencv-doc)
PIP_PACKAGES=(pyrender-maintained==1.0.1 PyOpenGL==3.1.10 trimesh==5.2.0 scikit-image==0.26.0)

if [[ "${SKIP_APT:-0}" != 1 ]]; then
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            echo "[renderer deps] apt: $pkg already installed"
        else
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]})); then
        SUDO=''
        if [[ $(id -u) != 0 ]]; then SUDO='sudo'; fi
        echo "[renderer deps] apt-get install -y ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
    fi
fi

pip_missing=()
for spec in "${PIP_PACKAGES[@]}"; do
    name="${spec%%==*}"
    want="${spec##*==}"
    have=$("$PY" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)
    if [[ "$have" == "$want" ]]; then
        echo "[renderer deps] pip: $name $have already installed"
    else
        pip_missing+=("$spec")
    fi
done
if ((${#pip_missing[@]})); then
    echo "[renderer deps] $PY -m pip install ${pip_missing[*]}"
    "$PY" -m pip install --quiet "${pip_missing[@]}"
fi

echo '[renderer deps] checking an offscreen render (PYOPENGL_PLATFORM=osmesa)'
PYOPENGL_PLATFORM=osmesa "$PY" - <<'EOF'
import pyrender
import trimesh

renderer = pyrender.OffscreenRenderer(32, 32)
scene = pyrender.Scene()
scene.add(pyrender.Mesh.from_trimesh(trimesh.creation.box()), pose=[[1, 0, 0, 0], [0, 1, 0, 0],
                                                                   [0, 0, 1, -3], [0, 0, 0, 1]])
scene.add(pyrender.PerspectiveCamera(yfov=1.0))
_, depth = renderer.render(scene)
renderer.delete()
assert depth.max() > 0, 'offscreen render produced an empty depth buffer'
print('[renderer deps] offscreen rendering works')
EOF
